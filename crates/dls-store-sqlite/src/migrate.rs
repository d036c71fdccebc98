//! [`MigrationStore`]: the whole database as the rows of [`dls_store::dump`], out and in.
//!
//! The export reads one snapshot (one read transaction), a table at a time, each row
//! handed on as it is read. The import writes in one `BEGIN IMMEDIATE` transaction, into
//! a database it first checks is empty; `sqlite_sequence` (the `AUTOINCREMENT` tables'
//! high-water marks) is set to the source's marks, so that no id is handed out again.

use dls_message::Item;
use dls_store::StoreError;
use dls_store::dump::{Kind, MigrationStore, Row, SEQUENCE_TABLES, SEQUENCES, TABLES, Table, Value};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::inventory::{ItemRef, decode_stored, encode_items};
use crate::sql::{Cached, Db, items_from_json, items_to_json};
use crate::store::SqliteStore;

/// `"a", "b"` of a table's columns.
fn columns(table: &Table) -> String {
    table.columns.iter().map(|c| format!("\"{}\"", c.name)).collect::<Vec<_>>().join(", ")
}

/// A column read back as the dump's value of its kind, or [`StoreError::Corrupt`].
fn value(table: &Table, i: usize, raw: ValueRef<'_>, key: &str) -> Result<Value, StoreError> {
    let column = &table.columns[i];
    let bad = || StoreError::Corrupt(format!("{}.{} of {key}: {:?}", table.name, column.name, raw.data_type()));
    Ok(match (column.kind, raw) {
        (_, ValueRef::Null) if column.nullable => Value::Null,
        (Kind::Int, ValueRef::Integer(n)) => Value::Int(n),
        (Kind::Bool, ValueRef::Integer(n @ (0 | 1))) => Value::Bool(n == 1),
        (Kind::Text, ValueRef::Text(t)) => Value::Text(std::str::from_utf8(t).map_err(|_| bad())?.to_owned()),
        (Kind::Bytes, ValueRef::Blob(b)) => Value::Bytes(b.to_vec()),
        (Kind::Items, ValueRef::Blob(_)) => {
            let items: Vec<Item> = decode_stored(raw, key)?.into_iter().map(ItemRef::to_item).collect();
            Value::Text(items_to_json(&items)?)
        }
        _ => return Err(bad()),
    })
}

/// A dump's value as a column of SQLite.
fn to_sql(kind: Kind, value: &Value, table: &Table) -> Result<Sql, StoreError> {
    Ok(match (kind, value) {
        (_, Value::Null) => Sql::Null,
        (Kind::Items, Value::Text(json)) => {
            let items = items_from_json(json)?;
            if items.iter().any(|i| i.status.is_some()) {
                return Err(StoreError::Corrupt(format!("an inventory item with a status in {}", table.name)));
            }
            Sql::Blob(encode_items(&items.iter().map(ItemRef::of).collect::<Vec<_>>()))
        }
        (_, Value::Int(n)) => Sql::Integer(*n),
        (_, Value::Bool(b)) => Sql::Integer(i64::from(*b)),
        (_, Value::Text(t)) => Sql::Text(t.clone()),
        (_, Value::Bytes(b)) => Sql::Blob(b.clone()),
    })
}

fn export_table(
    conn: &Connection,
    table: &'static Table,
    sink: &mut dyn FnMut(Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let order = table.key.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
    // Not cached: run once per export. Text keys compare as bytes (SQLite's BINARY).
    let mut stmt = conn.prepare(&format!("SELECT {} FROM \"{}\" ORDER BY {order}", columns(table), table.name)).db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        let key = match r.get_ref(0).db()? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(n) => n.to_string(),
            _ => String::new(),
        };
        let values = (0..table.columns.len())
            .map(|i| value(table, i, r.get_ref(i).db()?, &key))
            .collect::<Result<Vec<_>, _>>()?;
        sink(Row::new(table, values)?)?;
    }
    Ok(())
}

fn any_rows(conn: &Connection) -> Result<bool, StoreError> {
    for table in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{}\")", table.name);
        if conn.query_row(&sql, [], |r| r.get::<_, bool>(0)).db()? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl MigrationStore for SqliteStore {
    fn export(&self, sink: &mut dyn FnMut(Row) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.read(|conn| {
            for table in TABLES {
                export_table(conn, table, sink)?;
            }
            for name in SEQUENCE_TABLES {
                let last: Option<i64> = conn
                    .query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [name], |r| r.get(0))
                    .optional()
                    .db()?;
                sink(Row::new(SEQUENCES, vec![Value::Text((*name).to_owned()), Value::Int(last.unwrap_or(0))])?)?;
            }
            Ok(())
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|conn| Ok(!any_rows(conn)?))
    }

    fn import(&self, rows: &mut dyn Iterator<Item = Result<Row, StoreError>>) -> Result<(), StoreError> {
        self.write(|conn| {
            if any_rows(conn)? {
                return Err(StoreError::Conflict { what: "data in the target database".into() });
            }
            let mut position = 0;
            for row in rows {
                let row = row?;
                row.check()?;
                let table = row.table;
                let at = table.position();
                if at < position {
                    return Err(StoreError::Corrupt(format!("a row of {} after later tables", table.name)));
                }
                position = at;
                if table.name == SEQUENCES.name {
                    let (Some(Value::Text(name)), Some(Value::Int(last))) = (row.get("table"), row.get("last")) else {
                        return Err(StoreError::Corrupt("a row of sequences".into()));
                    };
                    if !SEQUENCE_TABLES.contains(&name.as_str()) {
                        return Err(StoreError::Corrupt(format!("the sequence of {name:?}")));
                    }
                    set_sequence(conn, name, *last)?;
                    continue;
                }
                let placeholders = (1..=table.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO \"{}\" ({}) VALUES ({placeholders})", table.name, columns(table));
                let values = table
                    .columns
                    .iter()
                    .zip(&row.values)
                    .map(|(c, v)| to_sql(c.kind, v, table))
                    .collect::<Result<Vec<_>, _>>()?;
                conn.cached(&sql).db()?.execute(params_from_iter(values)).db()?;
            }
            Ok(())
        })
    }
}

/// Sets an `AUTOINCREMENT` table's high-water mark to `last` unless its rows took it
/// higher already (SQLite keeps it at the highest id inserted).
fn set_sequence(conn: &Connection, table: &str, last: i64) -> Result<(), StoreError> {
    let changed =
        conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1", params![table, last]).db()?;
    if changed == 0 && last > 0 {
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)", params![table, last]).db()?;
    }
    Ok(())
}

//! [`MigrationStore`]: the whole database as the rows of [`dls_store::dump`], out and in.
//!
//! The export reads one snapshot (one `REPEATABLE READ` transaction), a table at a time
//! through a cursor, a batch of rows at a time. The import writes in one transaction,
//! which first locks every table against writers and checks they are empty; the ids are
//! written as they were (`OVERRIDING SYSTEM VALUE`), then every identity sequence is set
//! past the highest id copied and the source's high-water marks, so that no id is handed
//! out again.

use dls_store::StoreError;
use dls_store::dump::{Kind, MigrationStore, Row, SEQUENCE_TABLES, SEQUENCES, TABLES, Table, Value};
use postgres::types::ToSql;

use crate::sql::{Tx, get, items_from_json, items_to_json};
use crate::store::PostgresStore;

/// How many rows the export reads from a cursor at once.
const BATCH: i32 = 512;

fn columns(table: &Table) -> String {
    table.columns.iter().map(|c| format!("\"{}\"", c.name)).collect::<Vec<_>>().join(", ")
}

/// An inventory's JSON in the dump's canonical form (as `Item`s serialise), checked.
fn canonical_items(json: &str, table: &Table) -> Result<String, StoreError> {
    let items = items_from_json(json)?;
    if items.iter().any(|i| i.status.is_some()) {
        return Err(StoreError::Corrupt(format!("an inventory item with a status in {}", table.name)));
    }
    items_to_json(&items)
}

fn value(table: &Table, i: usize, row: &postgres::Row) -> Result<Value, StoreError> {
    let column = &table.columns[i];
    let v = match column.kind {
        Kind::Int => get::<Option<i64>>(row, i)?.map(Value::Int),
        Kind::Bool => get::<Option<bool>>(row, i)?.map(Value::Bool),
        Kind::Text => get::<Option<String>>(row, i)?.map(Value::Text),
        Kind::Bytes => get::<Option<Vec<u8>>>(row, i)?.map(Value::Bytes),
        Kind::Items => get::<Option<&str>>(row, i)?.map(|j| canonical_items(j, table).map(Value::Text)).transpose()?,
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A dump's value as a parameter of its column's type (NULL typed too).
fn param(kind: Kind, value: &Value, table: &Table) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let wrong = || StoreError::Corrupt(format!("a value of {} of the wrong type", table.name));
    Ok(match (kind, value) {
        (Kind::Int, Value::Null) => Box::new(None::<i64>),
        (Kind::Bool, Value::Null) => Box::new(None::<bool>),
        (Kind::Text | Kind::Items, Value::Null) => Box::new(None::<String>),
        (Kind::Bytes, Value::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Int, Value::Int(n)) => Box::new(*n),
        (Kind::Bool, Value::Bool(b)) => Box::new(*b),
        (Kind::Text, Value::Text(t)) => Box::new(t.clone()),
        (Kind::Items, Value::Text(t)) => Box::new(canonical_items(t, table)?),
        (Kind::Bytes, Value::Bytes(b)) => Box::new(b.clone()),
        _ => return Err(wrong()),
    })
}

fn export_table(
    tx: &mut Tx<'_>,
    table: &'static Table,
    sink: &mut dyn FnMut(Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // Text keys compare as bytes, as SQLite's do.
    let order = table
        .key
        .iter()
        .map(|k| {
            let text = table.columns.iter().any(|c| c.name == *k && c.kind == Kind::Text);
            if text { format!("\"{k}\" COLLATE \"C\"") } else { format!("\"{k}\"") }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {} FROM \"{}\" ORDER BY {order}", columns(table), table.name);
    let portal = tx.bind(&sql, &[])?;
    loop {
        let rows = tx.query_portal(&portal, BATCH)?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            let values = (0..table.columns.len()).map(|i| value(table, i, row)).collect::<Result<Vec<_>, _>>()?;
            sink(Row::new(table, values)?)?;
        }
    }
}

fn any_rows(tx: &mut Tx<'_>) -> Result<bool, StoreError> {
    for table in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{}\")", table.name);
        if get::<bool>(&tx.query_one(&sql, &[])?, 0)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sequence of a table's identity column, as `regclass` SQL of parameters `$1, $2`.
const SEQUENCE_OF: &str = "pg_get_serial_sequence($1, $2)::regclass";

impl MigrationStore for PostgresStore {
    fn export(&self, sink: &mut dyn FnMut(Row) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.once(false, |tx| {
            for table in TABLES {
                export_table(tx, table, sink)?;
            }
            for name in SEQUENCE_TABLES {
                let id = TABLES.iter().find(|t| t.name == *name).and_then(|t| t.id).unwrap_or("id");
                let sql = format!("SELECT coalesce(pg_sequence_last_value({SEQUENCE_OF}), 0)");
                let last: i64 = get(&tx.query_one(&sql, &[name, &id])?, 0)?;
                sink(Row::new(SEQUENCES, vec![Value::Text((*name).to_owned()), Value::Int(last)])?)?;
            }
            Ok(())
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.once(false, |tx| Ok(!any_rows(tx)?))
    }

    fn import(&self, rows: &mut dyn Iterator<Item = Result<Row, StoreError>>) -> Result<(), StoreError> {
        self.once(true, |tx| {
            // No writer (a node started meanwhile) gets in between the check and the commit.
            let names = TABLES.iter().map(|t| format!("\"{}\"", t.name)).collect::<Vec<_>>().join(", ");
            tx.batch(&format!("LOCK TABLE {names} IN EXCLUSIVE MODE"))?;
            if any_rows(tx)? {
                return Err(StoreError::Conflict { what: "data in the target database".into() });
            }
            // The highest id of each table with one, and the high-water marks.
            let mut last = vec![0_i64; TABLES.len()];
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
                    let (Some(Value::Text(name)), Some(Value::Int(mark))) = (row.get("table"), row.get("last")) else {
                        return Err(StoreError::Corrupt("a row of sequences".into()));
                    };
                    let Some(i) = TABLES.iter().position(|t| t.name == name && SEQUENCE_TABLES.contains(&t.name))
                    else {
                        return Err(StoreError::Corrupt(format!("the sequence of {name:?}")));
                    };
                    last[i] = last[i].max(*mark);
                    continue;
                }
                if let Some(Value::Int(id)) = table.id.and_then(|id| row.get(id)) {
                    last[at] = last[at].max(*id);
                }
                let placeholders = (1..=table.columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let overriding = if table.id.is_some() { " OVERRIDING SYSTEM VALUE" } else { "" };
                let sql =
                    format!("INSERT INTO \"{}\" ({}){overriding} VALUES ({placeholders})", table.name, columns(table));
                let params = table
                    .columns
                    .iter()
                    .zip(&row.values)
                    .map(|(c, v)| param(c.kind, v, table))
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                tx.execute(&sql, &refs)?;
            }
            for (table, last) in TABLES.iter().zip(last) {
                if let (Some(id), true) = (table.id, last > 0) {
                    let sql = format!("SELECT setval({SEQUENCE_OF}, $3)");
                    tx.query_one(&sql, &[&table.name, &id, &last])?;
                }
            }
            Ok(())
        })
    }
}

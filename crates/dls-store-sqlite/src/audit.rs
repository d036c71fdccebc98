//! The audit log ([`AuditStore`]): the devices' security events and the administrative
//! changes in one table, listed newest first by `seq` with the filters of the audit page,
//! each by an index (`audit_by_mac`, `audit_by_actor`, `audit_by_kind`, `audit_by_time`).

use dls_engine::UnixTime;
use dls_store::rules::accounts::{actor_match, audit_limit, audit_record};
use dls_store::{AuditFilter, AuditRecord, AuditStore, NewAuditRecord, StoreError};
use rusqlite::params_from_iter;
use rusqlite::types::Value;

use crate::SqliteStore;
use crate::sql::{Cached, Db, mac_from_sql, time_from_sql, time_to_sql};

/// A time bound as SQLite's integer (no stored time is later than `i64::MAX`).
fn bound(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// The statement of a listing and its parameters: one statement per combination of the
/// filters set (prepared once each), so that each is planned with its index.
fn listing(filter: &AuditFilter, limit: usize) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let param = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    if let Some(mac) = filter.mac {
        conditions.push(format!("mac = {}", param(&mut values, Value::Text(mac.to_string()))));
    }
    if let Some(actor) = actor_match(filter) {
        let exact = param(&mut values, Value::Text(actor.exact));
        conditions.push(match actor.tokens {
            Some((from, to)) => {
                let (from, to) = (param(&mut values, Value::Text(from)), param(&mut values, Value::Text(to)));
                format!("(actor = {exact} OR (actor >= {from} AND actor < {to}))")
            }
            None => format!("actor = {exact}"),
        });
    }
    if let Some(kind) = filter.kind {
        conditions.push(format!("kind = {}", param(&mut values, Value::Text(kind.as_str().to_owned()))));
    }
    if let Some(since) = filter.since {
        conditions.push(format!("at >= {}", param(&mut values, Value::Integer(bound(since)))));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("at < {}", param(&mut values, Value::Integer(bound(until)))));
    }
    if let Some(before) = filter.before {
        conditions.push(format!("seq < {}", param(&mut values, Value::Integer(before))));
    }
    let limit = param(&mut values, Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (format!("SELECT seq, at, mac, actor, kind, detail FROM audit{filter} ORDER BY seq DESC LIMIT {limit}"), values)
}

type AuditRow = (i64, i64, Option<String>, Option<String>, String, String);

impl AuditStore for SqliteStore {
    fn record_audit(&self, record: &NewAuditRecord) -> Result<(), StoreError> {
        let r = audit_record(record)?;
        let at = time_to_sql(r.at)?;
        self.write(|tx| {
            tx.cached("INSERT INTO audit (at, mac, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)")
                .db()?
                .execute(rusqlite::params![at, r.mac.map(|m| m.to_string()), r.actor, r.kind.as_str(), r.detail])
                .db()?;
            Ok(())
        })
    }

    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = audit_limit(filter);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, values) = listing(filter, limit);
        let rows: Vec<AuditRow> = self.read(|conn| {
            let mut stmt = conn.cached(&sql).db()?;
            let rows = stmt
                .query_map(params_from_iter(values), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })?;
        rows.into_iter()
            .map(|(id, at, mac, actor, kind, detail)| {
                Ok(AuditRecord {
                    id,
                    at: time_from_sql(at)?,
                    actor,
                    mac: mac.as_deref().map(mac_from_sql).transpose()?,
                    kind: dls_store::columns::event_kind_from_sql(&kind)?,
                    detail,
                })
            })
            .collect()
    }
}

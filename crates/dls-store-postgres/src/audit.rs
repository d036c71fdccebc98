//! The audit log ([`AuditStore`]): the devices' security events and the administrative
//! changes in one table, listed newest first by `seq` with the filters of the audit page,
//! each by an index (`audit_by_mac`, `audit_by_actor`, `audit_by_kind`, `audit_by_time`).

use dls_engine::UnixTime;
use dls_store::rules::accounts::{actor_match, audit_limit, audit_record};
use dls_store::{AuditFilter, AuditRecord, AuditStore, NewAuditRecord, StoreError};
use postgres::types::ToSql;

use crate::PostgresStore;
use crate::sql::{get, int, mac_from_sql, time_from_sql, time_to_sql};

/// A time bound as a `BIGINT` (no stored time is later than `i64::MAX`).
fn bound(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// The statement of a listing and its parameters: one statement per combination of the
/// filters set (prepared once each per connection), so that each is planned with its index.
fn listing(filter: &AuditFilter, limit: usize) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut conditions = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let param = |values: &mut Vec<Box<dyn ToSql + Sync>>, v: Box<dyn ToSql + Sync>| {
        values.push(v);
        format!("${}", values.len())
    };
    if let Some(mac) = filter.mac {
        conditions.push(format!("mac = {}", param(&mut values, Box::new(mac.to_string()))));
    }
    if let Some(actor) = actor_match(filter) {
        let exact = param(&mut values, Box::new(actor.exact));
        conditions.push(match actor.tokens {
            Some((from, to)) => {
                let (from, to) = (param(&mut values, Box::new(from)), param(&mut values, Box::new(to)));
                format!("(actor = {exact} OR (actor >= {from} AND actor < {to}))")
            }
            None => format!("actor = {exact}"),
        });
    }
    if let Some(kind) = filter.kind {
        conditions.push(format!("kind = {}", param(&mut values, Box::new(kind.as_str().to_owned()))));
    }
    if let Some(since) = filter.since {
        conditions.push(format!("at >= {}", param(&mut values, Box::new(bound(since)))));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("at < {}", param(&mut values, Box::new(bound(until)))));
    }
    if let Some(before) = filter.before {
        conditions.push(format!("seq < {}", param(&mut values, Box::new(before))));
    }
    let limit = param(&mut values, Box::new(int(limit)));
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (format!("SELECT seq, at, mac, actor, kind, detail FROM audit{filter} ORDER BY seq DESC LIMIT {limit}"), values)
}

impl AuditStore for PostgresStore {
    fn record_audit(&self, record: &NewAuditRecord) -> Result<(), StoreError> {
        let r = audit_record(record)?;
        let (at, mac) = (time_to_sql(r.at)?, r.mac.map(|m| m.to_string()));
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit (at, mac, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
                &[&at, &mac, &r.actor, &r.kind.as_str(), &r.detail],
            )?;
            Ok(())
        })
    }

    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = audit_limit(filter);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, values) = listing(filter, limit);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
        let rows = self.read(|tx| tx.query(&sql, &refs))?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: get(r, 0)?,
                    at: time_from_sql(get(r, 1)?)?,
                    mac: get::<Option<&str>>(r, 2)?.map(mac_from_sql).transpose()?,
                    actor: get(r, 3)?,
                    kind: dls_store::columns::event_kind_from_sql(get(r, 4)?)?,
                    detail: get(r, 5)?,
                })
            })
            .collect()
    }
}

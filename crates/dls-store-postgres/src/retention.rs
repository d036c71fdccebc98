//! Retention: old audit records and old jobs that are over are deleted by age, by indexes
//! on their times (`audit.at`; `jobs.updated_at` of the jobs over), at most
//! [`PRUNE_BATCH`] rows per transaction, so that no transaction holds many rows locked for
//! long and a large backlog never holds up the protocol path.

use dls_engine::UnixTime;
use dls_store::{MaintenanceStore, Pruned, StoreError};

use crate::PostgresStore;
use crate::jobs;
use crate::sql::int;

/// The most rows one transaction of `prune` deletes.
pub(crate) const PRUNE_BATCH: usize = 1000;

/// Deletes at most `$2` audit records from before `$1`, by the index `audit_by_time`.
const PRUNE_AUDIT: &str = "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE at < $1 LIMIT $2)";

impl PostgresStore {
    /// Runs `delete` (a statement deleting at most `$2` rows from before `$1`) in
    /// transactions of at most [`PRUNE_BATCH`] rows until it deletes fewer. Returns how
    /// many rows were deleted.
    fn delete_in_batches(&self, delete: &str, before: UnixTime) -> Result<u64, StoreError> {
        // No stored time is later than `i64::MAX`: a later bound deletes everything too.
        let before = i64::try_from(before.0).unwrap_or(i64::MAX);
        let limit = int(PRUNE_BATCH);
        let mut total = 0_u64;
        loop {
            let deleted = self.write(|tx| tx.execute(delete, &[&before, &limit]))?;
            total = total.saturating_add(deleted);
            if deleted < u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX) {
                return Ok(total);
            }
        }
    }
}

impl MaintenanceStore for PostgresStore {
    /// Batches of at most `PRUNE_BATCH` (1,000) rows, the audit log's first. Rows only: the
    /// deployment files a deleted job referred to stay (`jobs.file_id` is no foreign key;
    /// nothing refers to a job).
    fn prune(&self, audit_before: Option<UnixTime>, jobs_before: Option<UnixTime>) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        if let Some(before) = audit_before {
            pruned.audit_records = self.delete_in_batches(PRUNE_AUDIT, before)?;
        }
        if let Some(before) = jobs_before {
            pruned.jobs = self.delete_in_batches(jobs::PRUNE, before)?;
        }
        Ok(pruned)
    }

    fn try_lease(&self, name: &str, node: &str, now: UnixTime, until: UnixTime) -> Result<bool, StoreError> {
        self.lease(name, node, now, until)
    }

    fn release_lease(&self, name: &str, node: &str) -> Result<(), StoreError> {
        self.unlease(name, node)
    }

    fn database_round_trips(&self) -> Option<u64> {
        Some(self.round_trips())
    }
}

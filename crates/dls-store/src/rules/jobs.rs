//! What happens to jobs besides the engine's updates: an administrator's cancellation, a
//! deleted deployment file; which jobs are pending; the limits of the job calls.

use dls_engine::JobState;

use crate::StoreError;
use crate::model::{JobFilter, JobRecord, NewFile};

/// The most open jobs given to the engine per message (the oldest).
pub const OPEN_JOBS_LOADED: usize = 256;

/// The most jobs one listing returns.
pub const MAX_JOB_LIST: usize = 10_000;

/// The jobs a listing returns when its filter gives no limit.
pub const DEFAULT_JOB_LIST: usize = 1000;

/// The most jobs queued in one call.
pub const MAX_JOBS_ADDED: usize = 100_000;

/// How a job ends outside the engine: its new state and the answer recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobEnd {
    /// The final state.
    pub state: JobState,
    /// The job's answer, in words.
    pub answer: &'static str,
}

/// Whether the DLS still has to send a job: queued, waiting for a busy phone's callback,
/// or sent and not accepted (the connection broke before the phone answered). An accepted
/// deployment is waiting for the phone, not for the DLS.
#[must_use]
pub fn is_pending(state: JobState, accepted: bool) -> bool {
    match state {
        JobState::Queued | JobState::BusyRetry => true,
        JobState::Sent => !accepted,
        JobState::Done | JobState::Failed | JobState::Cancelled => false,
    }
}

/// An administrator's cancellation of `job`.
///
/// # Errors
/// [`StoreError::Conflict`] if the job is over already.
pub fn cancel(job: &JobRecord) -> Result<JobEnd, StoreError> {
    if job.state.is_final() {
        return Err(StoreError::Conflict { what: format!("job {} is {} already; it", job.id, job.state) });
    }
    Ok(JobEnd { state: JobState::Cancelled, answer: "cancelled by an administrator" })
}

/// What deleting a deployment file does to a job in `state` that deploys it: a job that
/// is not over fails (the phone could no longer download the file); one that is over
/// stays as it is (`None`).
#[must_use]
pub fn file_deleted(state: JobState) -> Option<JobEnd> {
    (!state.is_final()).then_some(JobEnd { state: JobState::Failed, answer: "the file was deleted" })
}

/// Checks the size of a batch of jobs to queue.
///
/// # Errors
/// [`StoreError::Invalid`] beyond [`MAX_JOBS_ADDED`].
pub fn check_batch(count: usize) -> Result<(), StoreError> {
    if count > MAX_JOBS_ADDED {
        return Err(StoreError::Invalid(format!("at most {MAX_JOBS_ADDED} jobs at once")));
    }
    Ok(())
}

/// How many jobs a listing with `filter` returns at most.
#[must_use]
pub fn list_limit(filter: &JobFilter) -> usize {
    filter.limit.unwrap_or(DEFAULT_JOB_LIST).min(MAX_JOB_LIST)
}

/// Checks a deployment file to record: its name and type
/// ([`check_file_text`](super::check_file_text)), its size (a database integer).
///
/// # Errors
/// [`StoreError::Invalid`] naming what is wrong.
pub fn check_new_file(file: &NewFile) -> Result<(), StoreError> {
    super::check_file_text("name", &file.name)?;
    super::check_file_text("type", &file.file_type)?;
    if i64::try_from(file.size).is_err() {
        return Err(StoreError::Invalid("file too large".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dls_engine::JobState;

    use super::{file_deleted, is_pending};

    #[test]
    fn pending_and_file_deletion_by_state() {
        let pending: Vec<(JobState, bool)> = JobState::ALL
            .into_iter()
            .flat_map(|s| [(s, false), (s, true)])
            .filter(|(s, accepted)| is_pending(*s, *accepted))
            .collect();
        assert_eq!(
            pending,
            [
                (JobState::Queued, false),
                (JobState::Queued, true),
                (JobState::Sent, false),
                (JobState::BusyRetry, false),
                (JobState::BusyRetry, true)
            ]
        );
        let failing: Vec<JobState> = JobState::ALL.into_iter().filter(|s| file_deleted(*s).is_some()).collect();
        assert_eq!(failing, [JobState::Queued, JobState::Sent, JobState::BusyRetry]);
    }
}

//! Running jobs inside an interaction: which action each job sends, and what the phone's
//! answer does to it.

use std::collections::{HashMap, VecDeque};

use dls_message::{Action, Item, ItemList, Reason, ReplyStatus};

use crate::device::{Change, Note};
use crate::diff::to_write;
use crate::engine::{Answer, Collected, Planned, Run, not_sent_text, split_writes};
use crate::jobs::{FACTORY_RESET_PASSWORD, FileRef, Job, JobKind, JobState, JobUpdate};
use crate::security::{AuditKind, BootstrapState, SecurityMode};
use crate::session::{Awaiting, Session};

/// A job waiting for the phone's answer to its action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct JobStep {
    pub(crate) job: Job,
    pub(crate) stage: Stage,
}

/// Where a job is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Stage {
    /// `ReadAllItems` sent (a `read` of everything, or the first half of `reassert-config`).
    ReadAll,
    /// `ReadItems` sent.
    Read,
    /// `WriteItems` sent: `sent`, then `rest`; items refused so far, and how many accepted.
    Write { sent: ItemList, rest: VecDeque<ItemList>, refused: Vec<Item>, accepted: usize, not_sent: NotSent },
    /// `Restart` sent.
    Restart,
    /// `FileDeployment` or `SoftwareDeployment` sent.
    Deploy,
}

impl Stage {
    /// The first `WriteItems` of a job, `sent`, with the `rest` to follow and the items
    /// that could not be sent.
    fn first_write(sent: ItemList, rest: VecDeque<ItemList>, not_sent: NotSent) -> Self {
        Self::Write { sent, rest, refused: Vec::new(), accepted: 0, not_sent }
    }
}

impl JobStep {
    /// The action whose reply this step waits for.
    pub(crate) fn action(&self) -> Action {
        match (&self.stage, &self.job.kind) {
            (Stage::ReadAll, _) => Action::ReadAllItems,
            (Stage::Read, _) => Action::ReadItems,
            (Stage::Write { .. }, _) => Action::WriteItems,
            (Stage::Restart, _) => Action::Restart,
            (Stage::Deploy, JobKind::DeployFirmware { .. }) => Action::SoftwareDeployment,
            (Stage::Deploy, _) => Action::FileDeployment,
        }
    }
}

/// The state a job is in after `updates` (the newest wins).
fn current(job: &Job, updates: &[Change]) -> (JobState, bool) {
    updates
        .iter()
        .rev()
        .find_map(|c| match c {
            Change::Job(u) if u.id == job.id => Some((u.state, u.accepted)),
            _ => None,
        })
        .unwrap_or((job.state, job.accepted))
}

impl Run<'_> {
    pub(crate) fn job_update(
        &mut self,
        job: &Job,
        state: JobState,
        answer: impl Into<String>,
        items: Option<Vec<Item>>,
    ) {
        let accepted = state == JobState::Sent && job.accepted;
        self.changes.push(Change::Job(JobUpdate {
            id: job.id,
            at: self.now,
            state,
            unanswered: false,
            accepted,
            answer: Some(answer.into()),
            items,
        }));
    }

    /// Whether jobs may run on this connection: never over the unauthenticated port for a
    /// device that is to be managed in secure mode.
    pub(crate) fn may_run_jobs(&self) -> bool {
        let (mode, _) = self.engine.security_of(self.device);
        mode == SecurityMode::Default || *self.channel != crate::security::Channel::Default
    }

    /// Whether a job remains to be run (after this message's changes): then every
    /// `CleanUp` asks the phone to call back.
    pub(crate) fn work_remains(&self) -> bool {
        self.may_run_jobs()
            && self.device.jobs.iter().any(|j| {
                let (state, accepted) = current(j, &self.changes);
                crate::jobs::runnable(state, accepted)
            })
    }

    /// The jobs to run in an interaction that opens now. A job that was sent before and
    /// never answered counts one more attempt, and fails after the configured number.
    pub(crate) fn pick_jobs(&mut self) -> VecDeque<Job> {
        let mut picked = VecDeque::new();
        let runnable: Vec<Job> = self.device.jobs.iter().filter(|j| j.runnable()).cloned().collect();
        for job in runnable {
            if picked.len() == self.engine.config().max_jobs_per_interaction {
                break;
            }
            if job.state == JobState::Sent {
                let attempts = job.attempts + 1;
                if attempts >= self.engine.config().max_job_attempts {
                    self.job_update(&job, JobState::Failed, format!("no answer after {attempts} attempts"), None);
                    continue;
                }
                self.changes.push(Change::Job(JobUpdate {
                    id: job.id,
                    at: self.now,
                    state: JobState::Sent,
                    unanswered: true,
                    ..JobUpdate::default()
                }));
            }
            picked.push_back(job);
        }
        picked
    }

    /// At a start-up: a firmware deployment the phone accepted is complete when the phone
    /// runs the new version, and failed when it runs another.
    pub(crate) fn complete_firmware(&mut self, reported: &[Item]) {
        let Some(version) = reported.iter().find(|i| i.name == "software-version").map(|i| i.value.trim().to_owned())
        else {
            return;
        };
        let waiting: Vec<Job> = self
            .device
            .jobs
            .iter()
            .filter(|j| j.state == JobState::Sent && j.accepted && matches!(j.kind, JobKind::DeployFirmware { .. }))
            .cloned()
            .collect();
        for job in waiting {
            let JobKind::DeployFirmware { sw_version, .. } = &job.kind else { continue };
            if crate::firmware::same_version(&version, sw_version) {
                self.job_update(&job, JobState::Done, format!("the phone started with {version}"), None);
            } else {
                self.job_update(
                    &job,
                    JobState::Failed,
                    format!("the phone started with {version}, not {sw_version}"),
                    None,
                );
            }
        }
    }

    /// A `status` report: completes or fails the deployment it is about.
    pub(crate) fn deployment_status(&mut self, report: &[Item]) {
        let get = |n: &str| report.iter().find(|i| i.name == n).map(|i| i.value.trim());
        let (Some(name), Some(status)) = (get("file-deployment-name"), get("file-deployment-status")) else {
            return;
        };
        let file_type = get("file-deployment-type");
        let ok = status.eq_ignore_ascii_case("ok");
        let job = self
            .device
            .jobs
            .iter()
            .find(|j| {
                j.state == JobState::Sent
                    && j.accepted
                    && j.kind.file().is_some_and(|f| {
                        f.name == name && file_type.is_none_or(|t| t.eq_ignore_ascii_case(&f.file_type))
                    })
                    // A firmware job completes at the start-up with the new version; a report
                    // of a failed download fails it.
                    && (matches!(j.kind, JobKind::DeployFile { .. }) || !ok)
            })
            .cloned();
        if let Some(job) = job {
            let (state, words) = if ok { (JobState::Done, "ok") } else { (JobState::Failed, "failed") };
            self.job_update(&job, state, format!("the phone reported the deployment {words}"), Some(report.to_vec()));
        }
    }

    /// Sends the next job's action, or ends the interaction.
    pub(crate) fn next_job(&mut self, mut session: Session) -> Answer {
        while let Some(job) = session.jobs.pop_front() {
            let (stage, action, items) = match &job.kind {
                JobKind::Read { items } if items.is_empty() => (Stage::ReadAll, Action::ReadAllItems, None),
                JobKind::ReassertConfig => (Stage::ReadAll, Action::ReadAllItems, None),
                JobKind::MobilityLogon { .. } | JobKind::MobilityLogoff { .. } => {
                    match self.start_mobility_job(&mut session, &job) {
                        Some((action, items)) => return (self.reply(action, Some(items)), Some(session)),
                        None => continue,
                    }
                }
                JobKind::Read { items } => {
                    let wanted = items
                        .iter()
                        .map(|k| Item { name: k.name.clone(), index: k.index, ..Item::default() })
                        .collect();
                    (Stage::Read, Action::ReadItems, Some(wanted))
                }
                JobKind::Write { items } => {
                    // A job's writes are one-offs: what cannot be sent is noted and named in
                    // the job's answer, not recorded as the item's write outcome.
                    let (mut parts, not_sent) = self.plan_job_writes(&session, items.clone(), false);
                    match parts.pop_front() {
                        Some(sent) => {
                            (Stage::first_write(sent.clone(), parts, not_sent), Action::WriteItems, Some(sent))
                        }
                        None if not_sent.is_empty() => {
                            self.job_update(&job, JobState::Done, "nothing to write", None);
                            continue;
                        }
                        None => {
                            self.job_update(&job, JobState::Failed, write_answer(0, 0, &not_sent), None);
                            continue;
                        }
                    }
                }
                JobKind::Restart => (Stage::Restart, Action::Restart, None),
                JobKind::FactoryReset => (
                    Stage::Restart,
                    Action::Restart,
                    Some(vec![
                        Item::new("restart-password", FACTORY_RESET_PASSWORD),
                        Item::new("restart-type", "FactoryReset"),
                    ]),
                ),
                JobKind::DeployFile { file } => match self.deployment_items(file, None) {
                    Some(items) => (Stage::Deploy, Action::FileDeployment, Some(items)),
                    None => {
                        self.job_update(&job, JobState::Failed, "no download URL configured (files base URL)", None);
                        continue;
                    }
                },
                JobKind::DeployFirmware { file, sw_type, sw_version } => {
                    match self.deployment_items(file, Some((sw_type.as_deref(), sw_version))) {
                        Some(items) => (Stage::Deploy, Action::SoftwareDeployment, Some(items)),
                        None => {
                            self.job_update(
                                &job,
                                JobState::Failed,
                                "no download URL configured (files base URL)",
                                None,
                            );
                            continue;
                        }
                    }
                }
            };
            self.changes.push(Change::Job(JobUpdate {
                id: job.id,
                at: self.now,
                state: JobState::Sent,
                ..JobUpdate::default()
            }));
            session.awaiting = Awaiting::Job(Box::new(JobStep { job, stage }));
            return (self.reply(action, items), Some(session));
        }
        self.clean_up(false)
    }

    /// `items` split within the phone's limits, and what cannot be sent, named (noted, and
    /// recorded as write outcomes when `record`).
    fn plan_job_writes(&mut self, session: &Session, items: ItemList, record: bool) -> (VecDeque<ItemList>, NotSent) {
        let Planned { parts, not_sent } = split_writes(session.max_items, items);
        self.record_not_sent(&not_sent, record);
        let named = not_sent.iter().take(NotSent::NAMED).map(|(i, e)| not_sent_text(i, e)).collect();
        (parts, NotSent { count: not_sent.len(), named })
    }

    fn deployment_items(&self, file: &FileRef, firmware: Option<(Option<&str>, &str)>) -> Option<ItemList> {
        let base = self.engine.config().files_base_url.as_deref()?;
        let sep = if base.ends_with('/') { "" } else { "/" };
        let mut items = vec![
            Item::new("file-type", if firmware.is_some() { "APP" } else { file.file_type.as_str() }),
            Item::new("file-name", file.name.clone()),
            Item::new("file-https-base-url", format!("{base}{sep}{}/", file.token)),
            Item::new("file-priority", file.priority.clone()),
        ];
        if let Some((sw_type, sw_version)) = firmware {
            if let Some(t) = sw_type {
                items.push(Item::new("file-sw-type", t));
            }
            items.push(Item::new("file-sw-version", sw_version));
        }
        Some(items)
    }

    /// The phone's answer to a job's action.
    pub(crate) fn job_reply(&mut self, mut session: Session, step: JobStep, status: Option<&ReplyStatus>) -> Answer {
        let JobStep { job, stage } = step;
        match status {
            Some(ReplyStatus::Accepted) | None => {}
            Some(ReplyStatus::Busy) => {
                self.notes.push(Note::Busy);
                self.job_update(&job, JobState::BusyRetry, "busy", None);
                return self.clean_up(true);
            }
            Some(other) => {
                let refused: Vec<Item> =
                    self.message.items.iter().flatten().filter(|i| i.status.is_some()).cloned().collect();
                self.notes.push(Note::ActionFailed(format!("job {} ({}): {other}", job.id, job.kind.name())));
                self.job_update(&job, JobState::Failed, format!("the phone answered {other}"), Some(refused));
                return self.next_job(session);
            }
        }
        match stage {
            Stage::ReadAll | Stage::Read => self.job_read_reply(session, job, stage),
            Stage::Write { sent, rest, refused, accepted, not_sent } => {
                self.job_write_reply(session, job, sent, rest, (refused, accepted, not_sent))
            }
            Stage::Restart => {
                let answer = if matches!(job.kind, JobKind::FactoryReset) {
                    self.factory_reset_accepted(&job)
                } else {
                    "restart accepted".to_owned()
                };
                self.job_update(&job, JobState::Done, answer, None);
                // The phone reboots: the rest waits for its start-up.
                session.jobs.clear();
                self.clean_up(false)
            }
            Stage::Deploy => {
                self.changes.push(Change::Job(JobUpdate {
                    id: job.id,
                    at: self.now,
                    state: JobState::Sent,
                    accepted: true,
                    answer: Some("accepted; the phone downloads the file".into()),
                    ..JobUpdate::default()
                }));
                self.next_job(session)
            }
        }
    }

    /// The phone accepted a factory reset: it forgets its configuration (read again at its
    /// next start-up, write-only items written again) and its client certificate, the CAs
    /// and its secure-mode settings, so a device that is (or is to be) in secure mode returns
    /// to not bootstrapped, in the same transaction as the job's end. Returns the job's answer.
    fn factory_reset_accepted(&mut self, job: &Job) -> String {
        // Whatever the mode: the phone's configuration is gone.
        self.changes.push(Change::ForgetConfiguration);
        let security = &self.device.security;
        if security.mode == SecurityMode::Default
            && security.state == BootstrapState::NotBootstrapped
            && security.certificate.is_none()
        {
            return "factory reset accepted".to_owned();
        }
        let (mode, certificate) = (security.mode, security.certificate.clone());
        // A `pin` device may have completed its bootstrap earlier in this interaction.
        let bootstrapped_now = self.changes.iter().any(|c| matches!(c, Change::Bootstrapped { .. }));
        let was = if bootstrapped_now { BootstrapState::Secured } else { security.state };
        self.changes.push(Change::SecurityReset { at: self.now });
        self.audit(
            AuditKind::DeviceReset,
            format!("factory-reset job {} accepted: reset to not-bootstrapped (was {})", job.id, was.as_str()),
        );
        if let Some(serial) = certificate {
            self.audit(AuditKind::CertificateRevoked, format!("serial {serial}: factory reset (job {})", job.id));
        }
        match mode {
            SecurityMode::Pin => "factory reset accepted; the device must be bootstrapped again (a new PIN is needed)",
            SecurityMode::Nopin => "factory reset accepted; the device is bootstrapped again at its next start-up",
            SecurityMode::Default => "factory reset accepted; its secure-mode state was cleared",
        }
        .to_owned()
    }

    fn job_read_reply(&mut self, mut session: Session, job: Job, stage: Stage) -> Answer {
        let items = match self.collect_reply(&mut session) {
            Collected::OverLimits => {
                self.job_update(&job, JobState::Failed, "reply larger than the limits", None);
                return self.refuse_keeping_changes(crate::refusal::Refusal::FragmentsOverLimits);
            }
            Collected::More => {
                session.awaiting = Awaiting::Job(Box::new(JobStep { job, stage }));
                return (self.reply(Action::GetNextFragment, None), Some(session));
            }
            Collected::All(items) => items,
        };
        match (stage, &job.kind) {
            (Stage::ReadAll, JobKind::ReassertConfig) => {
                // Everything that differs, write-only items included: forget what was written.
                let writes =
                    to_write(&self.desired.items, &items, &HashMap::new(), &self.engine.config().fingerprint_key);
                self.changes.push(Change::ReplaceInventory { items, at: self.now });
                // The desired configuration: what cannot be sent is recorded like the
                // configuration's writes.
                let (mut parts, not_sent) = self.plan_job_writes(&session, writes, true);
                match parts.pop_front() {
                    Some(sent) => {
                        let stage = Stage::first_write(sent.clone(), parts, not_sent);
                        session.awaiting = Awaiting::Job(Box::new(JobStep { job, stage }));
                        (self.reply(Action::WriteItems, Some(sent)), Some(session))
                    }
                    None if not_sent.is_empty() => {
                        self.job_update(&job, JobState::Done, "inventory read; nothing differs", None);
                        self.next_job(session)
                    }
                    None => {
                        let answer = format!("inventory read; {}", write_answer(0, 0, &not_sent));
                        self.job_update(&job, JobState::Failed, answer, None);
                        self.next_job(session)
                    }
                }
            }
            (Stage::ReadAll, _) => {
                let n = items.len();
                self.changes.push(Change::ReplaceInventory { items, at: self.now });
                self.job_update(&job, JobState::Done, format!("{n} items read"), None);
                self.next_job(session)
            }
            _ => {
                let values: Vec<Item> = items.iter().filter(|i| i.status.is_none()).cloned().collect();
                let unreadable = items.len() - values.len();
                if !values.is_empty() {
                    self.changes.push(Change::MergeInventory(values.clone()));
                }
                let answer = format!("{} items read, {unreadable} refused", values.len());
                let state = if values.is_empty() && unreadable > 0 { JobState::Failed } else { JobState::Done };
                self.job_update(&job, state, answer, Some(items));
                self.next_job(session)
            }
        }
    }

    fn job_write_reply(
        &mut self,
        mut session: Session,
        job: Job,
        sent: ItemList,
        mut rest: VecDeque<ItemList>,
        so_far: (Vec<Item>, usize, NotSent),
    ) -> Answer {
        let (mut refused, mut accepted, not_sent) = so_far;
        let outcome = self.write_outcome(&sent);
        accepted += sent.len() - outcome.refused.len();
        refused.extend(outcome.refused);
        if outcome.refusals_reported > 0 {
            self.notes.push(Note::ItemsRefused(outcome.refusals_reported));
        }
        // A reassert writes the desired configuration: its values are recorded like the
        // configuration's; a job's own writes are one-offs.
        if matches!(job.kind, JobKind::ReassertConfig) && !outcome.records.is_empty() {
            self.changes.push(Change::Written(outcome.records));
        }
        let applied = outcome.applied;
        if !applied.is_empty() {
            self.changes.push(Change::MergeInventory(applied));
        }
        if let Some(next) = rest.pop_front() {
            let stage = Stage::Write { sent: next.clone(), rest, refused, accepted, not_sent };
            session.awaiting = Awaiting::Job(Box::new(JobStep { job, stage }));
            return (self.reply(Action::WriteItems, Some(next)), Some(session));
        }
        let answer = write_answer(accepted, refused.len(), &not_sent);
        let state = if accepted == 0 && !(refused.is_empty() && not_sent.is_empty()) {
            JobState::Failed
        } else {
            JobState::Done
        };
        let items = (!refused.is_empty()).then_some(refused);
        self.job_update(&job, state, answer, items);
        self.next_job(session)
    }

    /// The phone ended the interaction while a job waited for its answer: the job fails
    /// (a phone does this when it could not parse what it got).
    pub(crate) fn job_abandoned(&mut self, session: &Session) {
        let job = match &session.awaiting {
            Awaiting::Job(step) => Some(step.job.clone()),
            Awaiting::Mobility(step) => step.job().cloned(),
            _ => None,
        };
        if let Some(job) = job {
            let reason = self.message.item("cleanup-reason").unwrap_or("none given");
            self.job_update(
                &job,
                JobState::Failed,
                format!("the phone ended the interaction (reason: {reason})"),
                None,
            );
        }
    }
}

/// The items of a write job that were not sent: how many, and the first few named with why
/// (bounded, as it is kept in the session).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct NotSent {
    pub(crate) count: usize,
    pub(crate) named: Vec<String>,
}

impl NotSent {
    /// How many are named.
    const NAMED: usize = 3;

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A write job's answer: how many items the phone took and refused, and which were not sent.
fn write_answer(accepted: usize, refused: usize, not_sent: &NotSent) -> String {
    let mut answer = format!("{accepted} items written, {refused} refused");
    if !not_sent.is_empty() {
        answer.push_str(&format!(", {} not sent: {}", not_sent.count, not_sent.named.join("; ")));
        if not_sent.count > not_sent.named.len() {
            answer.push_str(&format!("; and {} more", not_sent.count - not_sent.named.len()));
        }
    }
    answer
}

/// Whether this reason opens an interaction in which jobs run.
pub(crate) fn runs_jobs(reason: &Reason) -> bool {
    matches!(reason, Reason::StartUp | Reason::Solicited)
}

//! Mobility jobs: the forced logoff (`mobility-logoff`: a logon elsewhere, or `dls user
//! logoff`) and the administrator's logon (`mobility-logon`, `dls user logon`), run like
//! every job at the device's next interaction.

use dls_message::{Action, Item, ItemList, ReplyStatus};

use super::data::{as_item, check_all, split_data};
use super::flows::{OrEmpty, sent_data, shown};
use super::{
    MobilityChange, MobilityStep, MobilityUser, PhoneState, USERDATA_NAMES, identity_items, normalise_number,
    user_writes,
};
use crate::device::{Change, Note};
use crate::engine::{Answer, Collected, Planned, Run, split_writes};
use crate::jobs::{Job, JobKind, JobState, JobUpdate};
use crate::security::AuditKind;
use crate::session::{Awaiting, Session};

impl Run<'_> {
    /// The value of an item the current message reports, else the one stored.
    fn known_value(&self, name: &str) -> Option<String> {
        super::reported(self.message, name)
            .or_else(|| {
                self.device.inventory.iter().find(|i| i.name == name && i.status.is_none()).map(|i| i.value.as_str())
            })
            .map(|v| v.trim().to_owned())
    }

    fn job_sent(&mut self, job: &Job) {
        self.changes.push(Change::Job(JobUpdate {
            id: job.id,
            at: self.now,
            state: JobState::Sent,
            ..JobUpdate::default()
        }));
    }

    /// Sends a mobility job's first action (`Some`), or ends the job at once and records
    /// why (`None`).
    pub(crate) fn start_mobility_job(&mut self, session: &mut Session, job: &Job) -> Option<(Action, ItemList)> {
        let Some(input) = self.mobility else {
            self.job_update(job, JobState::Failed, "the users' state was not loaded for this message", None);
            return None;
        };
        match &job.kind {
            JobKind::MobilityLogoff { number } => {
                if input.here.as_ref().is_some_and(|h| &h.number == number) {
                    self.job_sent(job);
                    let step = MobilityStep::ForcedRead { job: job.clone(), number: number.clone() };
                    session.awaiting = Awaiting::Mobility(Box::new(step));
                    let read = USERDATA_NAMES.iter().map(|n| Item::new(*n, "")).collect();
                    return Some((Action::ReadItems, read));
                }
                self.forced_identity(session, job, None)
            }
            JobKind::MobilityLogon { number } => self.job_logon(session, job, number),
            _ => None,
        }
    }

    /// A forced logoff's `WriteItems` of the device's basic identity: `sip-mobility-state`
    /// = `1`, `e164` = its `basic-e164`, and its own desired items that the user's profiles
    /// override. `number`: the user to log off when the phone accepts.
    fn forced_identity(
        &mut self,
        session: &mut Session,
        job: &Job,
        number: Option<String>,
    ) -> Option<(Action, ItemList)> {
        let input = self.mobility.unwrap_or_default_ref();
        let JobKind::MobilityLogoff { number: of } = &job.kind else { return None };
        let basic = self.known_value("basic-e164").filter(|b| !b.is_empty());
        let own = match (&basic, self.known_value("e164")) {
            (Some(b), Some(e)) => *b == e || normalise_number(b).is_some_and(|b| Some(b) == normalise_number(&e)),
            _ => false,
        };
        let state = self.known_value("sip-mobility-state").as_deref().and_then(PhoneState::parse);
        if number.is_none() && state == Some(PhoneState::LoggedOff) && own {
            self.job_update(
                job,
                JobState::Done,
                format!("user {of} is not logged on here; the phone is in its own identity"),
                None,
            );
            return None;
        }
        if number.is_none() && matches!(self.layer, Some(super::Layer::Identity { .. })) {
            // This interaction's configuration wrote the basic identity already.
            self.job_update(
                job,
                JobState::Done,
                format!("user {of} is not logged on here; the phone's basic identity written back"),
                None,
            );
            return None;
        }
        let user: Option<&MobilityUser> = input.job_user(of).or(input.here.as_ref().filter(|h| &h.number == of));
        let mut items = identity_items(basic.as_deref().unwrap_or_default());
        if basic.is_none() {
            items.retain(|i| i.name != "e164");
        }
        if let Some(user) = user {
            let overridden = |i: &Item| user.items.iter().any(|u| u.name == i.name && u.index == i.index);
            items.extend(
                self.own_desired
                    .items
                    .iter()
                    .filter(|i| overridden(i) && i.name != "e164" && i.name != "sip-mobility-state")
                    .cloned(),
            );
        }
        let Planned { mut parts, not_sent } = split_writes(session.max_items, items);
        self.record_not_sent(&not_sent, false);
        let sent = parts.pop_front()?;
        self.job_sent(job);
        let step = MobilityStep::ForcedWrite { job: job.clone(), number, sent: sent.clone(), rest: parts };
        session.awaiting = Awaiting::Mobility(Box::new(step));
        Some((Action::WriteItems, sent))
    }

    /// An administrator's logon: the user's configuration and saved data, in `WriteItems`
    /// within the phone's limits; recorded when the phone has accepted them all.
    fn job_logon(&mut self, session: &mut Session, job: &Job, number: &str) -> Option<(Action, ItemList)> {
        let input = self.mobility.unwrap_or_default_ref();
        let Some(user) = input.job_user(number) else {
            self.job_update(job, JobState::Failed, format!("user {number} does not exist"), None);
            return None;
        };
        if let Some(there) = user.device.filter(|d| *d != session.mac) {
            self.job_update(job, JobState::Failed, format!("user {number} is logged on at {there}"), None);
            return None;
        }
        if let Some(other) = input.here.as_ref().filter(|h| h.number != number) {
            let answer = format!("user {} is logged on here; log it off first", other.number);
            self.job_update(job, JobState::Failed, answer, None);
            return None;
        }
        // The configuration's items that can be sent, and the data: in one `WriteItems` when
        // they fit the phone's limits.
        let Planned { parts, not_sent } = split_writes(session.max_items, user_writes(user));
        self.record_not_sent(&not_sent, false);
        let mut items: Vec<Item> = parts.into_iter().flatten().collect();
        items.extend(user.data.iter().filter_map(|d| d.value.as_deref().map(|v| as_item(&d.name, v))));
        let mut parts = split_data(session.max_items, items);
        let sent = parts.pop_front()?;
        self.job_sent(job);
        let step =
            MobilityStep::JobLogon { job: job.clone(), number: number.to_owned(), sent: sent.clone(), rest: parts };
        session.awaiting = Awaiting::Mobility(Box::new(step));
        Some((Action::WriteItems, sent))
    }

    /// The phone's answer to a mobility job's step.
    pub(crate) fn mobility_job_reply(
        &mut self,
        mut session: Session,
        step: MobilityStep,
        status: Option<&ReplyStatus>,
    ) -> Answer {
        let Some(job) = step.job().cloned() else { return self.clean_up(false) };
        match status {
            Some(ReplyStatus::Accepted) | None => {}
            Some(ReplyStatus::Busy) => {
                self.notes.push(Note::Busy);
                self.job_update(&job, JobState::BusyRetry, "busy", None);
                return self.clean_up(true);
            }
            Some(other) => {
                self.notes.push(Note::ActionFailed(format!("job {} ({}): {other}", job.id, job.kind.name())));
                self.job_update(&job, JobState::Failed, format!("the phone answered {other}"), None);
                return self.next_job(session);
            }
        }
        let (next, step) = match step {
            MobilityStep::ForcedRead { job, number } => return self.forced_read_reply(session, job, number),
            MobilityStep::ForcedWrite { job, number, sent, mut rest } => {
                self.record_mobility_writes(&sent);
                let Some(next) = rest.pop_front() else { return self.forced_done(session, &job, number.as_deref()) };
                (next.clone(), MobilityStep::ForcedWrite { job, number, sent: next, rest })
            }
            MobilityStep::JobLogon { job, number, sent, mut rest } => {
                self.record_mobility_writes(&sent);
                let Some(next) = rest.pop_front() else { return self.job_logon_done(session, &job, &number) };
                (next.clone(), MobilityStep::JobLogon { job, number, sent: next, rest })
            }
            _ => return self.clean_up(false),
        };
        session.awaiting = Awaiting::Mobility(Box::new(step));
        (self.reply(Action::WriteItems, Some(next)), Some(session))
    }

    fn forced_read_reply(&mut self, mut session: Session, job: Job, number: String) -> Answer {
        let limits = self.engine.config().mobility.clone();
        let items = match self.collect_reply_within(&mut session, limits.max_reply_bytes()) {
            Collected::OverLimits => {
                self.job_update(&job, JobState::Failed, "the user's data is larger than the limits", None);
                let detail =
                    format!("forced logoff of user {number} (job {}): its data is larger than the limits", job.id);
                self.audit(AuditKind::MobilityRefused, detail);
                session.collected.clear();
                session.collected_bytes = 0;
                return self.next_job(session);
            }
            Collected::More => {
                session.awaiting = Awaiting::Mobility(Box::new(MobilityStep::ForcedRead { job, number }));
                return (self.reply(Action::GetNextFragment, None), Some(session));
            }
            Collected::All(items) => items,
        };
        let input = self.mobility.unwrap_or_default_ref();
        let Some(here) = input.here.as_ref().filter(|h| h.number == number) else {
            // Logged off meanwhile: only the identity is left to write.
            return match self.forced_identity(&mut session, &job, None) {
                Some((action, items)) => (self.reply(action, Some(items)), Some(session)),
                None => self.next_job(session),
            };
        };
        let sent = sent_data(&items, |n| USERDATA_NAMES.contains(&n));
        match check_all(&sent, &here.data, &limits) {
            Err(e) => {
                self.job_update(&job, JobState::Failed, format!("bad user data: {e}"), None);
                let detail = format!("forced logoff of user {number} (job {}): bad user data: {e}", job.id);
                self.audit(AuditKind::MobilityRefused, detail);
                self.next_job(session)
            }
            Ok(data) => {
                if !data.is_empty() {
                    self.expect_user(here);
                    self.changes.push(Change::Mobility(MobilityChange::SaveData {
                        number: number.clone(),
                        items: data,
                        at: self.now,
                    }));
                }
                match self.forced_identity(&mut session, &job, Some(number)) {
                    Some((action, items)) => (self.reply(action, Some(items)), Some(session)),
                    None => self.next_job(session),
                }
            }
        }
    }

    fn forced_done(&mut self, session: Session, job: &Job, number: Option<&str>) -> Answer {
        let input = self.mobility.unwrap_or_default_ref();
        let answer = match number.and_then(|n| input.here.as_ref().filter(|h| h.number == n)) {
            Some(here) => {
                self.log_off(here);
                let detail =
                    format!("user {}: logged off by a forced logoff (job {}); its data saved", here.number, job.id);
                self.audit(AuditKind::MobilityLogoff, detail);
                format!("user {} logged off; the phone's basic identity written back", here.number)
            }
            None => {
                let basic = self.known_value("basic-e164").map_or_else(|| "-".to_owned(), |b| shown(&b));
                self.audit(
                    AuditKind::MobilityLogoff,
                    format!("the phone's basic identity ({basic}) written back (job {})", job.id),
                );
                "the phone's basic identity written back".to_owned()
            }
        };
        self.job_update(job, JobState::Done, answer, None);
        self.next_job(session)
    }

    fn job_logon_done(&mut self, session: Session, job: &Job, number: &str) -> Answer {
        let input = self.mobility.unwrap_or_default_ref();
        match input.job_user(number) {
            Some(user) if user.device.is_none_or(|d| d == session.mac) => {
                if let Some(other) = input.here.as_ref().filter(|h| h.number != number) {
                    self.log_off(other);
                }
                self.expect_user(user);
                self.changes.push(Change::Mobility(MobilityChange::LogOn { number: number.to_owned(), at: self.now }));
                let detail = format!("user {number}: logged on by an administrator (job {})", job.id);
                self.audit(AuditKind::MobilityLogon, detail);
                self.job_update(job, JobState::Done, format!("user {number} logged on"), None);
            }
            Some(user) => {
                let there = user.device.map(|d| d.to_string()).unwrap_or_default();
                self.job_update(job, JobState::Failed, format!("user {number} logged on at {there} meanwhile"), None);
            }
            None => self.job_update(job, JobState::Failed, format!("user {number} was deleted meanwhile"), None),
        }
        self.next_job(session)
    }
}

//! The phone's mobility requests — logon, restore, logoff — and what an ordinary message's
//! report says of the user logged on at the phone (`docs/mobility.md`).

use dls_message::{Action, Item, ReplyStatus};

use super::data::{as_item, check_all, split_data};
use super::{
    Layer, MobilityChange, MobilityStep, MobilityUser, PhoneState, Request, Verdict, classify, is_userdata,
    listed_names, normalise_number, reported, reported_password, reported_state, user_writes,
};
use crate::device::{Change, Note};
use crate::engine::{Answer, Collected, Planned, Run, split_writes};
use crate::refusal::Refusal;
use crate::security::{AuditKind, Channel, SecurityMode};
use crate::session::{Awaiting, Session};

/// A phone-reported number as the audit log shows it: normalised, or a placeholder.
pub(super) fn shown(text: &str) -> String {
    normalise_number(text).unwrap_or_else(|| "(not a number)".to_owned())
}

impl Run<'_> {
    /// Counts the user's revision as the one the engine decided on (once per message).
    pub(crate) fn expect_user(&mut self, user: &MobilityUser) {
        let already = self
            .changes
            .iter()
            .any(|c| matches!(c, Change::Mobility(MobilityChange::Expect { number, .. }) if *number == user.number));
        if !already {
            self.changes.push(Change::Mobility(MobilityChange::Expect {
                number: user.number.clone(),
                revision: user.revision,
            }));
        }
    }

    /// Logs `user` off (its revision checked).
    pub(crate) fn log_off(&mut self, user: &MobilityUser) {
        self.expect_user(user);
        self.changes.push(Change::Mobility(MobilityChange::LogOff { number: user.number.clone() }));
    }

    fn attempt(&mut self, number: &str, success: bool) {
        self.changes.push(Change::Mobility(MobilityChange::Attempt {
            number: number.to_owned(),
            success,
            at: self.now,
        }));
    }

    /// Refuses a mobility request: nothing changes but the throttle's count (`attempt`) and
    /// the audit record saying why.
    pub(crate) fn mobility_refuse(&mut self, why: Refusal, detail: String, attempt: Option<(&str, bool)>) -> Answer {
        self.changes.clear();
        if let Some((number, success)) = attempt {
            self.attempt(number, success);
        }
        self.audit(AuditKind::MobilityRefused, detail);
        self.refuse_keeping_changes(why)
    }

    /// The mobility request a message that opens an interaction makes, if it makes one
    /// ([`Self::mobility_request`] answers it); for any other message,
    /// [`Self::phone_report`] records what its report says.
    pub(crate) fn mobility_request_of(&self) -> Option<Request> {
        classify(self.message).filter(|r| *r != Request::None)
    }

    /// What an ordinary message's `sip-mobility-state` says: the phone reports no user while
    /// one is recorded here (it logged off without us, or the logoff's reply was lost) —
    /// the user is logged off without its data; or no user is logged on here while the
    /// phone carries another number — its basic identity is written back (the layer).
    pub(crate) fn phone_report(&mut self) {
        let Some(input) = self.mobility else { return };
        if reported_state(self.message).flatten() == Some(PhoneState::LoggedOff)
            && let Some(here) = &input.here
        {
            self.log_off(here);
            let detail =
                format!("user {}: logged off, the phone reports no user logged on (data not saved)", here.number);
            self.audit(AuditKind::MobilityLogoff, detail);
        }
        if let Some(Layer::Identity { basic_e164 }) = &self.layer {
            let detail = format!(
                "no user is logged on here: the phone's basic identity ({}) is written back",
                shown(basic_e164)
            );
            self.audit(AuditKind::MobilityLogoff, detail);
        }
    }

    /// A logon, restore or logoff the phone asks for.
    pub(crate) fn mobility_request(&mut self, session: Session, request: Request, reported: &[Item]) -> Answer {
        let (mode, _) = self.engine.security_of(self.device);
        if mode != SecurityMode::Default && *self.channel == Channel::Default {
            return self.refuse_audited(
                Refusal::SecuredOnDefaultPort,
                Some((
                    AuditKind::MobilityRefused,
                    "mobility request on the default-mode port of a device to be secured".into(),
                )),
            );
        }
        let Some(input) = self.mobility else { return self.refuse(Refusal::MobilityBusy) };
        if !reported.is_empty() {
            self.changes.push(Change::MergeInventory(reported.to_vec()));
        }
        match request {
            Request::Logon => self.logon(session, input.verdict),
            Request::Restore => self.restore(session),
            Request::Logoff => self.logoff(session, input.verdict),
            _ => self.mobility_refuse(Refusal::MobilityBadState, "sip-mobility-state is not 0, 1 or 2".into(), None),
        }
    }

    /// State `0` with `user-pwd`: log on the user whose number the phone reports.
    fn logon(&mut self, mut session: Session, verdict: Verdict) -> Answer {
        let input = self.mobility.unwrap_or_default_ref();
        let Some(number) = reported(self.message, "e164").and_then(normalise_number) else {
            return self.mobility_refuse(
                Refusal::MobilityLogonRefused,
                "logon refused: the phone named no valid number".into(),
                None,
            );
        };
        let refused = |cause: &str| format!("logon of user {number} refused: {cause}");
        match verdict {
            Verdict::Right => {}
            Verdict::Throttled => {
                let detail = refused("too many wrong passwords lately; the password was not checked");
                return self.mobility_refuse(Refusal::MobilityThrottled, detail, None);
            }
            Verdict::UnknownUser => {
                let detail = refused("unknown user");
                return self.mobility_refuse(Refusal::MobilityLogonRefused, detail, Some((&number, false)));
            }
            Verdict::Wrong | Verdict::NotChecked => {
                let detail = refused("wrong password");
                return self.mobility_refuse(Refusal::MobilityLogonRefused, detail, Some((&number, false)));
            }
        }
        let Some(user) = input.named.as_ref().filter(|u| u.number == number) else {
            let detail = refused("unknown user");
            return self.mobility_refuse(Refusal::MobilityLogonRefused, detail, Some((&number, false)));
        };
        self.attempt(&number, true);
        // Another user recorded here: the phone has replaced it.
        if let Some(other) = input.here.as_ref().filter(|h| h.number != number) {
            self.log_off(other);
            let detail =
                format!("user {}: logged off, user {number} logged on at the phone (data not saved)", other.number);
            self.audit(AuditKind::MobilityLogoff, detail);
        }
        // The user logged on at another phone: logged off there first.
        if let Some(there) = user.device.filter(|d| *d != session.mac) {
            let grace = self.engine.config().mobility.logoff_grace_secs;
            match user.logoff_requested_at {
                Some(asked) if self.now.since(asked) >= grace => {
                    self.log_off(user);
                    let detail = format!(
                        "user {number}: logged off at {there} without its data, the phone did not finish the forced \
                         logoff within {grace} s (logon at this phone)"
                    );
                    self.audit(AuditKind::MobilityForcedLogoff, detail);
                }
                Some(_) => {
                    let detail = refused(&format!("logged on at {there}, whose forced logoff is under way"));
                    return self.mobility_refuse(Refusal::MobilityLoggedOnElsewhere, detail, Some((&number, true)));
                }
                None => {
                    self.changes.clear();
                    self.attempt(&number, true);
                    self.expect_user(user);
                    self.changes.push(Change::Mobility(MobilityChange::RequestLogoff {
                        number: number.clone(),
                        device: there,
                        at: self.now,
                    }));
                    let detail = format!(
                        "user {number}: logged on at {there}; its forced logoff there is asked for (logon here)"
                    );
                    self.audit(AuditKind::MobilityForcedLogoff, detail);
                    return self.refuse_keeping_changes(Refusal::MobilityLoggedOnElsewhere);
                }
            }
        }
        self.expect_user(user);
        self.changes.push(Change::Mobility(MobilityChange::LogOn { number: number.clone(), at: self.now }));
        let Planned { mut parts, not_sent } = split_writes(session.max_items, user_writes(user));
        self.record_not_sent(&not_sent, false);
        let Some(sent) = parts.pop_front() else {
            self.audit(AuditKind::MobilityLogon, format!("user {number}: logged on"));
            return self.clean_up(false);
        };
        session.awaiting =
            Awaiting::Mobility(Box::new(MobilityStep::Logon { number, sent: sent.clone(), rest: parts }));
        (self.reply(Action::WriteItems, Some(sent)), Some(session))
    }

    /// State `0` with `requested-items`: the saved data of the user logged on here.
    fn restore(&mut self, mut session: Session) -> Answer {
        let input = self.mobility.unwrap_or_default_ref();
        let Some(here) = &input.here else {
            let detail = "restore refused: no user is logged on here".to_owned();
            return self.mobility_refuse(Refusal::MobilityNoUserHere, detail, None);
        };
        if let Some(named) = reported(self.message, "e164").and_then(normalise_number)
            && named != here.number
        {
            let detail = format!("restore for user {named} refused: user {} is logged on here", here.number);
            return self.mobility_refuse(Refusal::MobilityNoUserHere, detail, None);
        }
        let (names, _) = reported(self.message, "requested-items").map(listed_names).unwrap_or_default();
        let items: Vec<Item> = names
            .iter()
            .filter(|n| is_userdata(n))
            .filter_map(|n| here.data.iter().find(|d| &d.name == n))
            .filter_map(|d| d.value.as_deref().map(|v| as_item(&d.name, v)))
            .collect();
        let mut parts = split_data(session.max_items, items);
        let Some(first) = parts.pop_front() else { return self.clean_up(false) };
        session.awaiting = Awaiting::Mobility(Box::new(MobilityStep::Restore { rest: parts }));
        (self.reply(Action::WriteItems, Some(first)), Some(session))
    }

    /// State `1`: log off the user logged on here, reading its modified data first.
    fn logoff(&mut self, mut session: Session, verdict: Verdict) -> Answer {
        let input = self.mobility.unwrap_or_default_ref();
        let Some(here) = input.here.clone() else {
            let detail = "logoff refused: no user is logged on here".to_owned();
            return self.mobility_refuse(Refusal::MobilityNoUserHere, detail, None);
        };
        let number = here.number.clone();
        if reported_password(self.message).is_some() {
            match verdict {
                Verdict::Right => self.attempt(&number, true),
                Verdict::Throttled => {
                    let detail = format!(
                        "logoff of user {number} refused: too many wrong passwords lately; the password was not checked"
                    );
                    return self.mobility_refuse(Refusal::MobilityThrottled, detail, None);
                }
                _ => {
                    let detail = format!("logoff of user {number} refused: wrong password");
                    return self.mobility_refuse(Refusal::MobilityLogoffRefused, detail, Some((&number, false)));
                }
            }
        }
        let (names, more) = reported(self.message, "modified-items").map(listed_names).unwrap_or_default();
        if let Some(bad) = names.iter().find(|n| !is_userdata(n)) {
            let detail = format!(
                "logoff of user {number} refused: modified-items names {}, not a userdata-* item",
                dls_message::check::quoted(bad)
            );
            return self.mobility_refuse(Refusal::MobilityBadModifiedItems, detail, None);
        }
        if more {
            let detail = format!("logoff of user {number} refused: modified-items names more than 64 items");
            return self.mobility_refuse(Refusal::MobilityBadModifiedItems, detail, None);
        }
        if names.is_empty() {
            self.log_off(&here);
            self.audit(AuditKind::MobilityLogoff, format!("user {number}: logged off (no data to save)"));
            return self.clean_up(false);
        }
        let read = names.iter().map(|n| Item::new(n.clone(), "")).collect();
        session.awaiting = Awaiting::Mobility(Box::new(MobilityStep::LogoffRead { number, names }));
        (self.reply(Action::ReadItems, Some(read)), Some(session))
    }

    /// The phone's answer to a mobility step.
    pub(crate) fn mobility_reply(
        &mut self,
        session: Session,
        step: MobilityStep,
        status: Option<&ReplyStatus>,
    ) -> Answer {
        if self.mobility.is_none() {
            return self.refuse(Refusal::MobilityBusy);
        }
        match step {
            MobilityStep::Logon { number, sent, rest } => self.logon_reply(session, number, &sent, rest, status),
            MobilityStep::Restore { mut rest } => {
                if let Some(end) = self.mobility_unless_accepted(status, "restore WriteItems") {
                    return end;
                }
                self.notes_of_refusals();
                let mut session = session;
                match rest.pop_front() {
                    Some(next) => {
                        session.awaiting = Awaiting::Mobility(Box::new(MobilityStep::Restore { rest }));
                        (self.reply(Action::WriteItems, Some(next)), Some(session))
                    }
                    None => self.clean_up(false),
                }
            }
            MobilityStep::LogoffRead { number, names } => self.logoff_reply(session, number, names, status),
            step => self.mobility_job_reply(session, step, status),
        }
    }

    /// A reply's status: `None` to go on; otherwise the `CleanUp` that ends the interaction
    /// (the phone busy or failing: noted, nothing recorded).
    fn mobility_unless_accepted(&mut self, status: Option<&ReplyStatus>, what: &str) -> Option<Answer> {
        match status {
            Some(ReplyStatus::Accepted) | None => None,
            Some(ReplyStatus::Busy) => {
                self.notes.push(Note::Busy);
                Some(self.clean_up(false))
            }
            Some(other) => {
                self.notes.push(Note::ActionFailed(format!("{what}: {other}")));
                Some(self.clean_up(false))
            }
        }
    }

    /// Notes the items the phone refused in this reply.
    pub(crate) fn notes_of_refusals(&mut self) {
        let n = self.message.items.iter().flatten().filter(|i| i.status.is_some()).count();
        if n > 0 {
            self.notes.push(Note::ItemsRefused(n));
        }
    }

    /// Records how the phone took written items (never user data: that is the user's, not
    /// the device's configuration).
    pub(crate) fn record_mobility_writes(&mut self, sent: &[Item]) {
        let result = self.write_outcome(sent);
        if result.refusals_reported > 0 {
            self.notes.push(Note::ItemsRefused(result.refusals_reported));
        }
        let records: Vec<_> =
            result.records.into_iter().filter(|(k, _)| !k.name.starts_with(super::USERDATA_PREFIX)).collect();
        if !records.is_empty() {
            self.changes.push(Change::Written(records));
        }
        if !result.applied.is_empty() {
            self.changes.push(Change::MergeInventory(result.applied));
        }
    }

    fn logon_reply(
        &mut self,
        mut session: Session,
        number: String,
        sent: &[Item],
        mut rest: std::collections::VecDeque<Vec<Item>>,
        status: Option<&ReplyStatus>,
    ) -> Answer {
        match status {
            Some(ReplyStatus::Accepted) | None => {
                self.record_mobility_writes(sent);
                if let Some(next) = rest.pop_front() {
                    let step = MobilityStep::Logon { number, sent: next.clone(), rest };
                    session.awaiting = Awaiting::Mobility(Box::new(step));
                    return (self.reply(Action::WriteItems, Some(next)), Some(session));
                }
                self.audit(AuditKind::MobilityLogon, format!("user {number}: logged on"));
                self.clean_up(false)
            }
            Some(other) => {
                // Busy (in a call) or failed: the logon did not happen at the phone.
                if *other == ReplyStatus::Busy {
                    self.notes.push(Note::Busy);
                } else {
                    self.notes.push(Note::ActionFailed(format!("logon WriteItems: {other}")));
                }
                if let Some(here) = self.mobility.and_then(|i| i.here.as_ref()).filter(|h| h.number == number) {
                    self.log_off(here);
                }
                let detail = format!("logon of user {number} undone: the phone answered {other}");
                self.audit(AuditKind::MobilityRefused, detail);
                self.clean_up(false)
            }
        }
    }

    fn logoff_reply(
        &mut self,
        mut session: Session,
        number: String,
        names: Vec<String>,
        status: Option<&ReplyStatus>,
    ) -> Answer {
        if let Some(end) = self.mobility_unless_accepted(status, "logoff ReadItems") {
            return end;
        }
        let limits = self.engine.config().mobility.clone();
        let items = match self.collect_reply_within(&mut session, limits.max_reply_bytes()) {
            Collected::OverLimits => {
                let detail = format!("logoff of user {number} refused: its data is larger than the limits");
                return self.mobility_refuse(Refusal::MobilityBadUserData, detail, None);
            }
            Collected::More => {
                session.awaiting = Awaiting::Mobility(Box::new(MobilityStep::LogoffRead { number, names }));
                return (self.reply(Action::GetNextFragment, None), Some(session));
            }
            Collected::All(items) => items,
        };
        let input = self.mobility.unwrap_or_default_ref();
        let Some(here) = input.here.as_ref().filter(|h| h.number == number) else {
            let detail = format!("logoff of user {number}: no longer logged on here; its data was not saved");
            return self.mobility_refuse(Refusal::MobilityNoUserHere, detail, None);
        };
        let sent = sent_data(&items, |n| names.iter().any(|x| x == n));
        match check_all(&sent, &here.data, &limits) {
            Err(e) => {
                let detail = format!("logoff of user {number} refused: {e}");
                self.mobility_refuse(Refusal::MobilityBadUserData, detail, None)
            }
            Ok(data) => {
                let (count, bytes) = (data.len(), data.iter().map(|d| d.size).sum::<u64>());
                self.expect_user(here);
                if !data.is_empty() {
                    self.changes.push(Change::Mobility(MobilityChange::SaveData {
                        number: number.clone(),
                        items: data,
                        at: self.now,
                    }));
                }
                self.log_off(here);
                let detail = format!("user {number}: logged off; {count} data items saved ({bytes} bytes)");
                self.audit(AuditKind::MobilityLogoff, detail);
                self.clean_up(false)
            }
        }
    }
}

/// The user data items of a reply whose names `wanted` accepts (`(name, value)`; items with
/// a status — the phone has none — left out; of an item sent twice, the last).
pub(super) fn sent_data(items: &[Item], wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items.iter().filter(|i| i.status.is_none() && wanted(&i.name)) {
        match out.iter_mut().find(|(n, _)| *n == item.name) {
            Some(have) => have.1.clone_from(&item.value),
            None => out.push((item.name.clone(), item.value.clone())),
        }
    }
    out
}

/// `Option<&MobilityInput>` as a reference, an empty input when none was loaded.
pub(super) trait OrEmpty<'a> {
    fn unwrap_or_default_ref(self) -> &'a super::MobilityInput;
}

impl<'a> OrEmpty<'a> for Option<&'a super::MobilityInput> {
    fn unwrap_or_default_ref(self) -> &'a super::MobilityInput {
        static EMPTY: std::sync::OnceLock<super::MobilityInput> = std::sync::OnceLock::new();
        self.unwrap_or_else(|| EMPTY.get_or_init(super::MobilityInput::default))
    }
}

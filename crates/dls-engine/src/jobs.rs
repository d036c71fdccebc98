//! Server-initiated work: jobs an administrator queues for a device, which the engine runs
//! in the device's next `solicited` (or `start-up`) interaction, in order.
//!
//! A job moves `queued` → `sent` → `done` | `failed`; a phone that answers `busy` puts it
//! in `busy-retry` (it stays pending, and every `CleanUp` carries `send-solicited=true`
//! while work remains). A deployment job stays `sent` after the phone accepted it, until the
//! phone reports the file (`status`) or starts up with the new `software-version`.

use dls_message::Item;
use serde::{Deserialize, Serialize};

use crate::device::{ItemKey, UnixTime};

/// A job's identity (the store's row id).
pub type JobId = i64;

/// The password the protocol defines for a factory reset.
pub const FACTORY_RESET_PASSWORD: &str = "124816";

/// A job's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for the device to call.
    #[default]
    Queued,
    /// Sent to the device; for a deployment, accepted and waiting for its outcome.
    Sent,
    /// The phone was busy; the job runs at its callback.
    BusyRetry,
    /// Completed.
    Done,
    /// The phone refused it, or it could not be completed.
    Failed,
    /// Cancelled by an administrator before it completed.
    Cancelled,
}

impl JobState {
    /// Every state, for parsing and listings.
    pub const ALL: [Self; 6] = [Self::Queued, Self::Sent, Self::BusyRetry, Self::Done, Self::Failed, Self::Cancelled];

    /// The state's name as the admin API and the CLI spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::BusyRetry => "busy-retry",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`Self::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job is over (done, failed or cancelled).
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file a deployment job sends: the phone downloads it over HTTPS from
/// `<files base URL><token>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileRef {
    /// The file store's id of the file.
    pub file_id: i64,
    /// Its name (`file-name`).
    pub name: String,
    /// Its `file-type` (`APP` for firmware, `RINGTONE`, `LOGO`, …).
    pub file_type: String,
    /// `normal` (when idle) or `immediate` (`file-priority`).
    pub priority: String,
    /// The job's download token: unguessable, valid for this job only.
    pub token: String,
}

/// What a job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JobKind {
    /// Read items (`ReadItems`), or the whole inventory (`ReadAllItems`) when `items` is
    /// empty.
    Read {
        /// The items to read; empty: all.
        #[serde(default)]
        items: Vec<ItemKey>,
    },
    /// Write items (`WriteItems`, split within the phone's limits).
    Write {
        /// The items.
        items: Vec<Item>,
    },
    /// Reboot (`Restart`).
    Restart,
    /// Factory reset (`Restart` with `restart-password` and `restart-type=FactoryReset`).
    FactoryReset,
    /// Deploy a file (`FileDeployment`); completed by the phone's `status` report.
    DeployFile {
        /// The file.
        file: FileRef,
    },
    /// Deploy firmware (`SoftwareDeployment`); completed when the phone starts up with
    /// `sw_version`, failed when it starts up with another.
    DeployFirmware {
        /// The image.
        file: FileRef,
        /// `file-sw-type`, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sw_type: Option<String>,
        /// `file-sw-version`: the version the phone runs afterwards.
        sw_version: String,
    },
    /// Read the inventory afresh and write everything that differs from the desired
    /// configuration, write-only items (passwords) included.
    ReassertConfig,
    /// Log the mobility user `number` on at the device: its configuration and saved data
    /// in one `WriteItems`, the logon recorded when the phone accepts (`dls user logon`).
    MobilityLogon {
        /// The user's number.
        number: String,
    },
    /// Log the mobility user `number` off the device: its data read and saved, the
    /// device's own identity written back (`dls user logoff`, or a logon elsewhere).
    MobilityLogoff {
        /// The user's number.
        number: String,
    },
}

impl JobKind {
    /// The kind's name as the admin API and the CLI spell it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::Restart => "restart",
            Self::FactoryReset => "factory-reset",
            Self::DeployFile { .. } => "deploy-file",
            Self::DeployFirmware { .. } => "deploy-firmware",
            Self::ReassertConfig => "reassert-config",
            Self::MobilityLogon { .. } => "mobility-logon",
            Self::MobilityLogoff { .. } => "mobility-logoff",
        }
    }

    /// The deployment's file, for the deployment kinds.
    #[must_use]
    pub fn file(&self) -> Option<&FileRef> {
        match self {
            Self::DeployFile { file } | Self::DeployFirmware { file, .. } => Some(file),
            _ => None,
        }
    }
}

/// A pending job of a device, as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// Its state (the engine is given only jobs that are not final).
    pub state: JobState,
    /// Times it was sent without an answer (the connection broke before the reply).
    pub attempts: u32,
    /// Whether the phone accepted the action (a deployment in progress).
    pub accepted: bool,
}

impl Job {
    /// Whether the engine still has to send it (a deployment the phone accepted is only
    /// waiting for its outcome).
    #[must_use]
    pub fn runnable(&self) -> bool {
        runnable(self.state, self.accepted)
    }
}

/// Whether a job in `state` (`accepted` by the phone or not) still has to be sent.
pub(crate) fn runnable(state: JobState, accepted: bool) -> bool {
    match state {
        JobState::Queued | JobState::BusyRetry => true,
        JobState::Sent => !accepted,
        _ => false,
    }
}

/// A change of one job, persisted with the message's other changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job.
    pub id: JobId,
    /// When.
    pub at: UnixTime,
    /// Its new state.
    pub state: JobState,
    /// Count one more attempt that went unanswered.
    pub unanswered: bool,
    /// Whether the phone accepted the action.
    pub accepted: bool,
    /// What the phone answered, in words (`accepted`, `busy`, `2 items refused`, …).
    pub answer: Option<String>,
    /// Items the answer carried: values read, or items refused with their statuses.
    pub items: Option<Vec<Item>>,
}

//! The records the storage interface speaks in (also the admin API's JSON).

use dls_engine::{ItemKey, UnixTime, WriteOutcome};
use dls_message::{Item, MacAddr};
use serde::{Deserialize, Serialize};

/// Which devices to list. Every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFilter {
    /// Devices assigned this profile.
    pub profile: Option<String>,
    /// Devices reporting this `device-type`.
    pub device_type: Option<String>,
    /// Devices whose MAC or `e164` contains this text (case-insensitive).
    pub search: Option<String>,
    /// The most devices returned (default: all).
    pub limit: Option<usize>,
}

/// A device in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// The device.
    pub mac: MacAddr,
    /// Its reported `device-type`.
    pub device_type: Option<String>,
    /// Its reported `software-version`.
    pub software_version: Option<String>,
    /// Its reported `e164`.
    pub e164: Option<String>,
    /// Its assigned profiles, in order.
    pub profiles: Vec<String>,
    /// Its last contact.
    pub last_contact: Option<UnixTime>,
}

/// The last write of one item, without the fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSummary {
    /// The item.
    pub item: ItemKey,
    /// How the phone took it.
    pub outcome: WriteOutcome,
}

/// Everything known of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetails {
    /// The listing fields.
    #[serde(flatten)]
    pub summary: DeviceSummary,
    /// When it was registered.
    pub registered_at: UnixTime,
    /// Why it last called (`start-up`, …).
    pub last_reason: Option<String>,
    /// When its full inventory was last read.
    pub inventory_at: Option<UnixTime>,
    /// Its inventory: what it reported, last value each.
    pub inventory: Vec<Item>,
    /// Its own overrides of the desired configuration.
    pub overrides: Vec<Item>,
    /// The last write of each item.
    pub written: Vec<WrittenSummary>,
    /// Its last deployment status report (`file-deployment-*` items).
    pub last_deployment_status: Vec<Item>,
    /// The reason it gave the last time it ended an interaction itself.
    pub last_phone_cleanup_reason: Option<String>,
}

/// A device registered by an administrator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSpec {
    /// Profiles to assign, in order.
    pub profiles: Vec<String>,
    /// Item overrides.
    pub overrides: Vec<Item>,
}

/// Changes to a device; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceUpdate {
    /// Replace the assigned profiles.
    pub profiles: Option<Vec<String>>,
    /// Replace the overrides.
    pub overrides: Option<Vec<Item>>,
}

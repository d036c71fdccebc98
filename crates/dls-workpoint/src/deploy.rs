//! File and firmware deployments, the phone's side.
//!
//! In an interaction the DLS sends `FileDeployment` or `SoftwareDeployment` with the file's
//! items; [`Phone::interact`] checks them ([`DeploymentRequest::parse`]), answers `accepted`
//! or `failed`, and records the accepted files in [`Interaction::deployments`]. Nothing is
//! downloaded inside the interaction. Afterwards [`Phone::deploy`] downloads one file over
//! HTTPS ([`download`]: streamed and hashed, never held in memory, status `200`, the whole
//! `Content-Length`, within a time and a size limit) and installs it on the phone model;
//! the phone then reports it:
//!
//! * a file (`FileDeployment`): a `status` interaction ([`Phone::report_status`]) with
//!   `file-deployment-name`, `-type`, `-status` (`ok`/`failed`), `-date`, `-time` (UTC);
//! * firmware (`SoftwareDeployment`): on success the phone runs the new `software-version`,
//!   reboots and sends `start-up`; a failed download is reported as a file's (`status`,
//!   type `APP`, `failed`) and the phone keeps its version.
//!
//! [`Phone::run_deployments`] does all of that for a list of deployments.
//!
//! Conventions: one file per message carries no `index`; several files carry an `index` on
//! every `file-*` item and `file-action` (`deploy`, or `delete` to remove an installed
//! file). The download URL is `file-https-base-url` (a `/` is added when it does not end
//! with one) followed by `file-name` percent-encoded (every character but letters, digits and
//! `-._~`). Only HTTPS downloads are supported (no FTP). `file-priority` is `normal` (the
//! default: when the phone is idle) or `immediate`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use dls_message::{Action, Item, MacAddr, Reason};
use http_body_util::BodyExt;
use hyper::header;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::client::{ClientError, WpiClient};
use crate::http::{parse_url, percent_encode};
use crate::phone::{Interaction, Phone};
use crate::tls::ServerTrust;

/// When the phone installs a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// When the phone is idle (not in a call).
    #[default]
    Normal,
    /// At once.
    Immediate,
}

impl Priority {
    /// The word on the wire (`file-priority`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Immediate => "immediate",
        }
    }
}

/// What is deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentKind {
    /// A file (`FileDeployment`): ringtone, logo, LDAP template, …
    File,
    /// Firmware (`SoftwareDeployment`, `file-type` `APP`).
    Software {
        /// `file-sw-type`, when given: the phone's `software-type` afterwards.
        sw_type: Option<String>,
        /// `file-sw-version`: the phone's `software-version` afterwards.
        sw_version: String,
    },
}

/// One file the phone accepted to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// File or firmware.
    pub kind: DeploymentKind,
    /// The `index` of its items, when the message carried several files.
    pub index: Option<u32>,
    /// `file-type` (`APP` for firmware).
    pub file_type: String,
    /// `file-name`.
    pub file_name: String,
    /// `file-https-base-url`, ending with `/`.
    pub base_url: String,
    /// The download URL: the base URL and the percent-encoded name.
    pub url: String,
    /// `file-priority`.
    pub priority: Priority,
}

impl Deployment {
    /// The DLS action that asked for it.
    #[must_use]
    pub fn action(&self) -> Action {
        match self.kind {
            DeploymentKind::File => Action::FileDeployment,
            DeploymentKind::Software { .. } => Action::SoftwareDeployment,
        }
    }

    /// Whether it is firmware.
    #[must_use]
    pub fn is_software(&self) -> bool {
        matches!(self.kind, DeploymentKind::Software { .. })
    }
}

/// A `file-action` = `delete`: remove an installed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDeletion {
    /// `file-name`.
    pub file_name: String,
    /// `file-type`, when given (otherwise every installed file of that name).
    pub file_type: Option<String>,
}

/// What one `FileDeployment` / `SoftwareDeployment` message asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentRequest {
    /// Files to download.
    pub deploy: Vec<Deployment>,
    /// Files to remove.
    pub delete: Vec<FileDeletion>,
}

impl DeploymentRequest {
    /// Reads the `file-*` items of a deployment `action`, grouped by `index`.
    ///
    /// # Errors
    /// A one-line reason when the action is not a deployment, an item is missing or
    /// malformed, or the URL is not `https://` (the phone then answers `failed`).
    pub fn parse(action: &Action, items: &[Item]) -> Result<Self, String> {
        let software = match action {
            Action::FileDeployment => false,
            Action::SoftwareDeployment => true,
            other => return Err(format!("{other} is not a deployment")),
        };
        let mut groups: BTreeMap<Option<u32>, Vec<&Item>> = BTreeMap::new();
        for item in items.iter().filter(|i| i.name.starts_with("file-")) {
            groups.entry(item.index).or_default().push(item);
        }
        if groups.is_empty() {
            return Err("no file-* items".into());
        }
        let several = groups.len() > 1;
        let mut request = Self::default();
        for (index, group) in groups {
            let get =
                |name: &str| group.iter().find(|i| i.name == name).map(|i| i.value.trim()).filter(|v| !v.is_empty());
            let at = index.map_or_else(String::new, |i| format!(" (index {i})"));
            let missing = |name: &str| format!("{name} missing{at}");
            match get("file-action") {
                None if several => return Err(missing("file-action")),
                None | Some("deploy") => {}
                Some("delete") if !software => {
                    let file_name = get("file-name").ok_or_else(|| missing("file-name"))?.to_owned();
                    request.delete.push(FileDeletion { file_name, file_type: get("file-type").map(str::to_owned) });
                    continue;
                }
                Some(other) => return Err(format!("file-action {other:?} not supported{at}")),
            }
            let file_name = get("file-name").ok_or_else(|| missing("file-name"))?.to_owned();
            let file_type = match (get("file-type"), software) {
                (Some(t), false) => t.to_owned(),
                (None, false) => return Err(missing("file-type")),
                (Some("APP") | None, true) => "APP".to_owned(),
                (Some(t), true) => return Err(format!("file-type {t:?} in a SoftwareDeployment{at}")),
            };
            let Some(base) = get("file-https-base-url") else {
                return Err(format!("file-https-base-url missing{at} (only HTTPS downloads are supported)"));
            };
            if !base.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
                return Err(format!("file-https-base-url {base:?} is not an https:// URL{at}"));
            }
            let base_url = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
            let url = format!("{base_url}{}", percent_encode(&file_name));
            parse_url(&url).map_err(|e| format!("file-https-base-url: {e}{at}"))?;
            let priority = match get("file-priority") {
                None | Some("normal") => Priority::Normal,
                Some("immediate") => Priority::Immediate,
                Some(other) => return Err(format!("file-priority {other:?}{at}")),
            };
            let kind = if software {
                let sw_version = get("file-sw-version").ok_or_else(|| missing("file-sw-version"))?.to_owned();
                DeploymentKind::Software { sw_type: get("file-sw-type").map(str::to_owned), sw_version }
            } else {
                DeploymentKind::File
            };
            request.deploy.push(Deployment { kind, index, file_type, file_name, base_url, url, priority });
        }
        if software && request.deploy.len() > 1 {
            return Err("several images in one SoftwareDeployment".into());
        }
        Ok(request)
    }
}

/// A file installed on the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledFile {
    /// `file-name`.
    pub name: String,
    /// `file-type`.
    pub file_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// Limits of one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadLimits {
    /// The whole download, connecting included.
    pub timeout: Duration,
    /// Connecting, the TLS handshake and the response head, each; and the longest wait for
    /// more of the body.
    pub idle_timeout: Duration,
    /// The largest file accepted.
    pub max_bytes: u64,
}

impl Default for DownloadLimits {
    /// 10 minutes in all, 30 s without progress, 512 MiB.
    fn default() -> Self {
        Self { timeout: Duration::from_secs(600), idle_timeout: Duration::from_secs(30), max_bytes: 512 << 20 }
    }
}

/// A completed download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes received (equal to `Content-Length` when the server sent one).
    pub size: u64,
    /// Their SHA-256, lower-case hex.
    pub sha256: String,
}

/// Downloads `url` (`https://` only) as a phone does, trusting the server as `trust` says;
/// the body is streamed and hashed, never kept.
///
/// # Errors
/// A one-line reason: not HTTPS, connection or TLS failure, a status other than `200`, a
/// body shorter or longer than its `Content-Length`, over `limits.max_bytes`, too slow.
pub async fn download(url: &str, trust: &ServerTrust, limits: &DownloadLimits) -> Result<Downloaded, String> {
    let target = parse_url(url)?;
    if !target.tls {
        return Err(format!("{url:?} is not an https:// URL"));
    }
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let timed_out = || format!("the download took longer than {} s", limits.timeout.as_secs());
    let resp = tokio::time::timeout_at(deadline, crate::http::get(&target, trust, limits.idle_timeout))
        .await
        .map_err(|_| timed_out())??;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP {}", resp.status()));
    }
    let expected = match resp.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("malformed Content-Length {v:?}"))?,
        ),
    };
    if let Some(n) = expected.filter(|n| *n > limits.max_bytes) {
        return Err(format!("the file is too large ({n} bytes, at most {})", limits.max_bytes));
    }
    let mut body = resp.into_body();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let wait = deadline.min(tokio::time::Instant::now() + limits.idle_timeout);
        let frame = match tokio::time::timeout_at(wait, body.frame()).await {
            Err(_) if wait == deadline => return Err(timed_out()),
            Err(_) => return Err(format!("the download stalled after {size} bytes")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(format!("the download broke off after {size} bytes: {}", crate::http::chain(&e)));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > limits.max_bytes {
                return Err(format!("the file is larger than {} bytes", limits.max_bytes));
            }
            hasher.update(&data);
        }
    }
    if let Some(n) = expected.filter(|n| *n != size) {
        return Err(format!("received {size} of {n} bytes"));
    }
    Ok(Downloaded { size, sha256: hex::encode(hasher.finalize()) })
}

/// What became of one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentOutcome {
    /// The deployment.
    pub deployment: Deployment,
    /// The installed file, or why it failed (one line).
    pub result: Result<InstalledFile, String>,
}

impl DeploymentOutcome {
    /// Whether the file was installed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The items of the `status` report: `mac-addr`, `file-deployment-name`, `-type`,
    /// `-status` (`ok`/`failed`), `-date` (`YYYY-MM-DD`) and `-time` (`HH:MM:SS`), UTC at `at`.
    #[must_use]
    pub fn status_items(&self, mac: MacAddr, at: SystemTime) -> Vec<Item> {
        let (date, time) = utc_date_time(at);
        vec![
            Item::new("mac-addr", mac.colon_separated()),
            Item::new("file-deployment-name", self.deployment.file_name.clone()),
            Item::new("file-deployment-type", self.deployment.file_type.clone()),
            Item::new("file-deployment-status", if self.ok() { "ok" } else { "failed" }),
            Item::new("file-deployment-date", date),
            Item::new("file-deployment-time", time),
        ]
    }
}

/// One deployment run by [`Phone::run_deployments`]: its outcome and the interaction that
/// followed (the `status` report, or the `start-up` after new firmware).
#[derive(Debug)]
pub struct DeploymentRun {
    /// The outcome.
    pub outcome: DeploymentOutcome,
    /// The reason of the interaction that followed: `status` or `start-up`.
    pub reason: Reason,
    /// That interaction.
    pub follow_up: Result<Interaction, ClientError>,
}

/// `at` in UTC as `YYYY-MM-DD` and `HH:MM:SS` (times before 1970 count as 1970-01-01).
#[must_use]
pub fn utc_date_time(at: SystemTime) -> (String, String) {
    let at = OffsetDateTime::from(at.max(SystemTime::UNIX_EPOCH));
    let (date, time) = (at.date(), at.time());
    (
        format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()),
        format!("{:02}:{:02}:{:02}", time.hour(), time.minute(), time.second()),
    )
}

impl Phone {
    /// Downloads one accepted deployment and installs it on the phone model: a file joins
    /// [`Phone::installed`] (replacing one of the same name and type); firmware also sets
    /// `software-version` and `related-software-version` (and `software-type` when
    /// `file-sw-type` was given). A failed download changes nothing.
    pub async fn deploy(&mut self, d: &Deployment, trust: &ServerTrust, limits: &DownloadLimits) -> DeploymentOutcome {
        let result = download(&d.url, trust, limits).await.map(|got| InstalledFile {
            name: d.file_name.clone(),
            file_type: d.file_type.clone(),
            size: got.size,
            sha256: got.sha256,
        });
        if let Ok(file) = &result {
            self.installed.retain(|f| !(f.name == file.name && f.file_type == file.file_type));
            self.installed.push(file.clone());
            if let DeploymentKind::Software { sw_type, sw_version } = &d.kind {
                self.set("software-version", None, sw_version);
                self.set("related-software-version", None, sw_version);
                if let Some(t) = sw_type {
                    self.set("software-type", None, t);
                }
            }
        }
        DeploymentOutcome { deployment: d.clone(), result }
    }

    /// Removes installed files as a `file-action` = `delete` asks.
    pub fn delete_files(&mut self, deletions: &[FileDeletion]) {
        for del in deletions {
            self.installed
                .retain(|f| !(f.name == del.file_name && del.file_type.as_ref().is_none_or(|t| *t == f.file_type)));
        }
    }

    /// Reports a deployment's outcome in a `status` interaction (now, UTC).
    ///
    /// # Errors
    /// [`ClientError`] when an exchange fails or the DLS breaks the protocol.
    pub async fn report_status(
        &mut self,
        client: &mut WpiClient,
        outcome: &DeploymentOutcome,
    ) -> Result<Interaction, ClientError> {
        self.report_status_at(client, outcome, SystemTime::now()).await
    }

    /// Reports a deployment's outcome in a `status` interaction, dated `at` (UTC): the time
    /// the deployment ended, which a report sent again later keeps.
    ///
    /// # Errors
    /// [`ClientError`] when an exchange fails or the DLS breaks the protocol (the
    /// interaction did not end with the DLS's `CleanUp`: the report was not delivered).
    pub async fn report_status_at(
        &mut self,
        client: &mut WpiClient,
        outcome: &DeploymentOutcome,
        at: SystemTime,
    ) -> Result<Interaction, ClientError> {
        let items = outcome.status_items(self.mac(), at);
        self.interact_with(client, Reason::Status, items).await
    }

    /// Runs `deployments` in order on `client`'s DLS: downloads each ([`Phone::deploy`]),
    /// then reports a file, or a failed firmware download, in a `status` interaction; after
    /// new firmware the phone reboots (a new connection) and sends `start-up`.
    pub async fn run_deployments(
        &mut self,
        client: &mut WpiClient,
        deployments: &[Deployment],
        trust: &ServerTrust,
        limits: &DownloadLimits,
    ) -> Vec<DeploymentRun> {
        let mut runs = Vec::new();
        for d in deployments {
            let outcome = self.deploy(d, trust, limits).await;
            let (reason, follow_up) = if d.is_software() && outcome.ok() {
                client.close();
                (Reason::StartUp, self.interact(client, Reason::StartUp).await)
            } else {
                (Reason::Status, self.report_status(client, &outcome).await)
            };
            runs.push(DeploymentRun { outcome, reason, follow_up });
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_items(index: Option<u32>, name: &str) -> Vec<Item> {
        [
            ("file-type", "RINGTONE"),
            ("file-name", name),
            ("file-https-base-url", "https://dls.example.com:18443/files/t0k3n/"),
            ("file-priority", "immediate"),
        ]
        .into_iter()
        .map(|(n, v)| Item { index, ..Item::new(n, v) })
        .collect()
    }

    #[test]
    fn one_file_without_index() {
        let r = DeploymentRequest::parse(&Action::FileDeployment, &file_items(None, "ring tone#1.mp3")).expect("ok");
        assert_eq!(r.delete, []);
        assert_eq!(
            r.deploy,
            [Deployment {
                kind: DeploymentKind::File,
                index: None,
                file_type: "RINGTONE".into(),
                file_name: "ring tone#1.mp3".into(),
                base_url: "https://dls.example.com:18443/files/t0k3n/".into(),
                url: "https://dls.example.com:18443/files/t0k3n/ring%20tone%231.mp3".into(),
                priority: Priority::Immediate,
            }]
        );
    }

    #[test]
    fn several_files_by_index_need_file_action() {
        let mut items = file_items(Some(0), "a.png");
        items.extend(file_items(Some(1), "b.png"));
        assert!(DeploymentRequest::parse(&Action::FileDeployment, &items).is_err());
        items.push(Item::indexed("file-action", 0, "deploy"));
        items.push(Item::indexed("file-action", 1, "deploy"));
        let r = DeploymentRequest::parse(&Action::FileDeployment, &items).expect("ok");
        let names: Vec<_> = r.deploy.iter().map(|d| (d.index, d.file_name.as_str())).collect();
        assert_eq!(names, [(Some(0), "a.png"), (Some(1), "b.png")]);
        // A delete needs only the name.
        let items = vec![
            Item::indexed("file-action", 2, "delete"),
            Item::indexed("file-name", 2, "old.png"),
            Item::indexed("file-action", 3, "deploy"),
        ]
        .into_iter()
        .chain(file_items(Some(3), "new.png"))
        .collect::<Vec<_>>();
        let r = DeploymentRequest::parse(&Action::FileDeployment, &items).expect("ok");
        assert_eq!(r.delete, [FileDeletion { file_name: "old.png".into(), file_type: None }]);
        assert_eq!(r.deploy.len(), 1);
    }

    #[test]
    fn incomplete_or_not_https_is_refused() {
        let without = |name: &str| file_items(None, "x.mp3").into_iter().filter(|i| i.name != name).collect::<Vec<_>>();
        for name in ["file-type", "file-name", "file-https-base-url"] {
            assert!(DeploymentRequest::parse(&Action::FileDeployment, &without(name)).is_err(), "{name}");
        }
        let mut items = without("file-https-base-url");
        items.push(Item::new("file-https-base-url", "http://dls.example.com/files/"));
        assert!(DeploymentRequest::parse(&Action::FileDeployment, &items).is_err());
        assert!(DeploymentRequest::parse(&Action::FileDeployment, &[]).is_err());
        assert!(DeploymentRequest::parse(&Action::WriteItems, &file_items(None, "x")).is_err());
        // Firmware needs file-sw-version, and file-type APP.
        let mut fw = without("file-type");
        assert!(DeploymentRequest::parse(&Action::SoftwareDeployment, &fw).is_err());
        fw.push(Item::new("file-sw-version", "V3 R5.13.0"));
        let r = DeploymentRequest::parse(&Action::SoftwareDeployment, &fw).expect("ok");
        assert_eq!(r.deploy[0].file_type, "APP");
        assert!(r.deploy[0].is_software());
        fw.push(Item::new("file-type", "LOGO"));
        assert!(DeploymentRequest::parse(&Action::SoftwareDeployment, &fw).is_err());
    }

    #[test]
    fn a_base_url_without_slash_gets_one() {
        let items = vec![
            Item::new("file-type", "LOGO"),
            Item::new("file-name", "logo.png"),
            Item::new("file-https-base-url", "https://h/files"),
        ];
        let r = DeploymentRequest::parse(&Action::FileDeployment, &items).expect("ok");
        assert_eq!((r.deploy[0].url.as_str(), r.deploy[0].priority), ("https://h/files/logo.png", Priority::Normal));
    }

    #[test]
    fn civil_dates() {
        let at = |s: u64| utc_date_time(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), ("1970-01-01".into(), "00:00:00".into()));
        assert_eq!(at(951_782_400), ("2000-02-29".into(), "00:00:00".into()));
        assert_eq!(at(1_709_251_199), ("2024-02-29".into(), "23:59:59".into()));
        assert_eq!(at(4_102_444_800 + 3661), ("2100-01-01".into(), "01:01:01".into()));
    }
}

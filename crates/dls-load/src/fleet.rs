//! A fleet ready to run interactions, and one interaction of each [`LoadMode`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dls_message::{Action, Item, Reason};
use dls_secure_mode::Envelope;
use dls_workpoint::tls::client_config;
use dls_workpoint::{ClientError, Phone, PinOutcome, WpiClient};
use hyper::StatusCode;

use crate::items::{FleetTemplate, baseline_bodies, fleet_mac};
use crate::mobility::{self, Saved};
use crate::{
    BAD_SECURE_MODE_DATA, BASELINE_REQUESTS, CLEANUP_REASON_PREFIX, LoadConfig, LoadMode, NO_BOOTSTRAP, NO_CLEANUP,
    NO_PIN, WRONG_PIN,
};

/// What one successful interaction (for [`LoadMode::Bootstrap`], one whole bootstrap) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// Requests posted.
    pub exchanges: usize,
    /// Connections opened besides the task's own client (the secure port's).
    pub connections: u64,
    /// The PBKDF2 iteration count of the `secure-mode-data` received.
    pub pbkdf2_iterations: Option<u32>,
    /// How long opening `secure-mode-data` with the typed PIN took.
    pub pin_entry: Option<Duration>,
    /// A mobile phone ([`LoadConfig::mobility`]): how long its user's logon took (the logon,
    /// the interim start-up and the restore).
    pub logon: Option<Duration>,
    /// A mobile phone: how long the logoff took (the logoff and the start-up after it).
    pub logoff: Option<Duration>,
}

/// Why one interaction failed, and what it had seen by then.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The kind, as [`LoadReport::failures_by_kind`](crate::LoadReport::failures_by_kind) counts it.
    pub kind: Cow<'static, str>,
    /// The PBKDF2 iteration count of the `secure-mode-data` received before the failure.
    pub pbkdf2_iterations: Option<u32>,
}

impl From<&'static str> for Failure {
    fn from(kind: &'static str) -> Self {
        Self { kind: Cow::Borrowed(kind), pbkdf2_iterations: None }
    }
}

/// The failure kind of a client error on the secure port: `secure-` and its kind.
fn secure_kind(e: &ClientError) -> Cow<'static, str> {
    Cow::Owned(format!("secure-{}", e.kind()))
}

/// The failure kind of an interaction that ended with `CleanUp` but not as it should:
/// `cleanup: REASON` when the DLS gave one, `otherwise`.
fn cleanup_kind(reason: Option<&str>, otherwise: &'static str) -> Cow<'static, str> {
    match reason {
        Some(r) => Cow::Owned(format!("{CLEANUP_REASON_PREFIX}{r}")),
        None => Cow::Borrowed(otherwise),
    }
}

/// A fleet, ready to run interactions: the TLS configuration shared by every client, the
/// baseline bodies, and what the phones were written so far (when phones are reused).
#[derive(Debug)]
pub struct Fleet {
    config: LoadConfig,
    /// The phones' items.
    template: &'static FleetTemplate,
    tls: Arc<rustls::ClientConfig>,
    bodies: Vec<Vec<u8>>,
    /// Per phone, the items written to it, when phones are reused ([`LoadConfig::duration`]).
    written: Option<Vec<Mutex<Vec<Item>>>>,
    /// With a mobility mix: what the run saved per user.
    saved: Option<Saved>,
}

impl Fleet {
    /// A fleet as `config` says.
    ///
    /// # Errors
    /// [`ClientError::Tls`] for unusable CA certificates, [`ClientError::Connect`] for a
    /// malformed server address, [`ClientError::Protocol`] for a bootstrap run with a
    /// duration (or malformed built-in fleet data: [`FleetTemplate::builtin`]).
    pub fn new(config: LoadConfig) -> Result<Self, ClientError> {
        if config.mode == LoadMode::Bootstrap && config.duration.is_some() {
            return Err(ClientError::Protocol(
                "a bootstrap run has one bootstrap per phone: it takes no duration".into(),
            ));
        }
        let mut tls = (*client_config(&config.trust)?).clone();
        tls.resumption = rustls::client::Resumption::disabled();
        let tls = Arc::new(tls);
        // Checks the address once, here.
        WpiClient::with_tls(&config.server, tls.clone())?;
        if config.mode == LoadMode::Baseline && !(1..=BASELINE_REQUESTS).contains(&config.baseline_requests) {
            return Err(ClientError::Protocol(format!(
                "a baseline interaction posts 1 to {BASELINE_REQUESTS} requests, not {}",
                config.baseline_requests
            )));
        }
        let bodies = match config.mode {
            LoadMode::Baseline => {
                let mut bodies = baseline_bodies(config.first_mac)?;
                bodies.truncate(config.baseline_requests);
                bodies
            }
            LoadMode::Phones | LoadMode::Bootstrap => Vec::new(),
        };
        if let Some(mix) = &config.mobility {
            if config.mode != LoadMode::Phones {
                return Err(ClientError::Protocol("a mobility mix goes with start-up interactions only".into()));
            }
            if config.duration.is_some() && config.phones < config.concurrency {
                // Phones reused round-robin would then log the same user on twice at once.
                return Err(ClientError::Protocol(
                    "a timed run with a mobility mix needs at least as many phones as interactions in flight".into(),
                ));
            }
            if mix.users_needed(config.phones) == 0 {
                return Err(ClientError::Protocol(format!(
                    "{} % of {} phones is no phone: no user would log on",
                    mix.share_percent, config.phones
                )));
            }
        }
        let template = FleetTemplate::builtin().map_err(|e| ClientError::Protocol(e.to_string()))?;
        let written = (config.duration.is_some() && config.mode == LoadMode::Phones)
            .then(|| (0..config.phones).map(|_| Mutex::new(Vec::new())).collect());
        let saved = config.mobility.as_ref().map(|m| Saved::new(m.users_needed(config.phones)));
        Ok(Self { config, template, tls, bodies, written, saved })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// A client for one task of the run (no connection yet).
    ///
    /// # Errors
    /// [`ClientError::Connect`] for a malformed server address.
    pub fn client(&self) -> Result<WpiClient, ClientError> {
        let mut c = WpiClient::with_tls(&self.config.server, self.tls.clone())?;
        c.set_timeout(self.config.interaction_timeout);
        Ok(c)
    }

    /// Runs phone `index`'s interaction on `client` (without the overall timeout; for
    /// [`LoadMode::Bootstrap`] the whole bootstrap, see [`Fleet::bootstrap`]).
    ///
    /// # Errors
    /// The kind of failure: [`ClientError::kind`] or [`NO_CLEANUP`] (and those of
    /// [`Fleet::bootstrap`]).
    pub async fn interact(&self, client: &mut WpiClient, index: usize) -> Result<Outcome, Failure> {
        let done = |exchanges| Outcome { exchanges, ..Outcome::default() };
        match self.config.mode {
            LoadMode::Bootstrap => self.bootstrap(client, index).await,
            LoadMode::Baseline => {
                for body in &self.bodies {
                    let (status, _, body) = client.post(body.clone()).await.map_err(|e| Failure::from(e.kind()))?;
                    if status != StatusCode::OK {
                        let e = ClientError::Status {
                            status: status.as_u16(),
                            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                        };
                        return Err(e.kind().into());
                    }
                }
                Ok(done(self.bodies.len()))
            }
            LoadMode::Phones => {
                let written = self.written.as_ref().and_then(|w| w.get(index));
                let mut phone = match written {
                    Some(w) => {
                        let before = w.lock().map(|w| w.clone()).unwrap_or_default();
                        Phone::with_items(
                            fleet_mac(self.config.first_mac, index),
                            self.template.items(index).into_iter().chain(before),
                        )
                    }
                    None => self.template.phone(self.config.first_mac, index),
                };
                let r = phone.interact(client, Reason::StartUp).await.map_err(|e| Failure::from(e.kind()))?;
                if r.actions.last() != Some(&Action::CleanUp) {
                    return Err(NO_CLEANUP.into());
                }
                let mut outcome = done(r.exchanges);
                let mut new_items = r.written;
                let mobile = self.config.mobility.as_ref().and_then(|m| Some((m, m.user_index(index)?)));
                if let (Some((mix, k)), Some(saved)) = (mobile, self.saved.as_ref()) {
                    let round = mobility::round(mix, saved, &mut phone, client, k)
                        .await
                        .map_err(|kind| Failure { kind: Cow::Owned(kind), pbkdf2_iterations: None })?;
                    outcome.logon = round.logon;
                    outcome.logoff = round.logoff;
                    for i in round.interactions {
                        outcome.exchanges += i.exchanges;
                        new_items
                            .extend(i.written.into_iter().filter(|i| !dls_workpoint::mobility::is_userdata(&i.name)));
                    }
                    // What the phone ends with, whatever was written on the way.
                    for name in ["e164", "basic-e164", dls_workpoint::mobility::MOBILITY_STATE, "mobility-enabled"] {
                        if let Some(v) = phone.get(name, None) {
                            new_items.push(Item::new(name, v));
                        }
                    }
                }
                if let (Some(w), false) = (written, new_items.is_empty())
                    && let Ok(mut w) = w.lock()
                {
                    let mut at: HashMap<(String, Option<u32>), usize> =
                        w.iter().enumerate().map(|(n, i)| ((i.name.clone(), i.index), n)).collect();
                    for item in new_items {
                        match at.get(&(item.name.clone(), item.index)) {
                            Some(&n) => w[n] = item,
                            None => {
                                at.insert((item.name.clone(), item.index), w.len());
                                w.push(item);
                            }
                        }
                    }
                }
                Ok(outcome)
            }
        }
    }

    /// Phone `index`'s secure-mode bootstrap: the start-up on `client` (the default port)
    /// that brings the bootstrap; for `pin`, the phone's PIN typed (opening
    /// `secure-mode-data` on a blocking thread: PBKDF2 is deliberately slow); then the
    /// start-up on a new mutual-TLS connection to the secure port (the host of
    /// [`LoadConfig::server`], the port the bootstrap named), answering the TAN and the
    /// configuration, until `CleanUp`.
    ///
    /// # Errors
    /// [`ClientError::kind`] on the default port, `secure-` and the kind on the secure
    /// port, [`NO_CLEANUP`], [`NO_BOOTSTRAP`], [`NO_PIN`], [`WRONG_PIN`],
    /// [`BAD_SECURE_MODE_DATA`], or `cleanup: REASON` when the DLS refused with a reason.
    pub async fn bootstrap(&self, client: &mut WpiClient, index: usize) -> Result<Outcome, Failure> {
        let mut phone = self.template.phone(self.config.first_mac, index);
        let first = phone.interact(client, Reason::StartUp).await.map_err(|e| Failure::from(e.kind()))?;
        if first.actions.last() != Some(&Action::CleanUp) {
            return Err(NO_CLEANUP.into());
        }
        let mut out = Outcome { exchanges: first.exchanges, ..Outcome::default() };
        let fail = |kind: Cow<'static, str>, out: &Outcome| Failure { kind, pbkdf2_iterations: out.pbkdf2_iterations };
        match first.bootstrap.as_deref() {
            None => return Err(fail(cleanup_kind(first.cleanup_reason.as_deref(), NO_BOOTSTRAP), &out)),
            Some("pin") => {
                out.pbkdf2_iterations = phone
                    .pending_pin
                    .as_ref()
                    .and_then(|p| Envelope::parse(&p.secure_mode_data).ok())
                    .map(|e| e.header().iterations());
                let Some(pin) = self.config.pins.get(&phone.mac()) else {
                    return Err(fail(NO_PIN.into(), &out));
                };
                phone.pin_entries.push_back(pin.to_owned());
                let began = Instant::now();
                let (back, typed) = tokio::task::spawn_blocking(move || {
                    let typed = phone.enter_pin();
                    (phone, typed)
                })
                .await
                .map_err(|_| fail("pin-entry-task".into(), &out))?;
                out.pin_entry = Some(began.elapsed());
                phone = back;
                match typed {
                    Ok(PinOutcome::Opened) => {}
                    Ok(PinOutcome::Wrong { .. } | PinOutcome::RetriesExceeded) => {
                        return Err(fail(WRONG_PIN.into(), &out));
                    }
                    Err(_) => return Err(fail(BAD_SECURE_MODE_DATA.into(), &out)),
                }
            }
            // `nopin`: the material came in the clear.
            Some(_) => {}
        }
        let server = self.config.server.as_str();
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
        let mut secure = phone.secure_client(host).map_err(|e| fail(secure_kind(&e), &out))?;
        secure.set_timeout(self.config.interaction_timeout);
        let second = phone.interact(&mut secure, Reason::StartUp).await;
        out.connections = secure.connections_opened();
        secure.close();
        let second = second.map_err(|e| fail(secure_kind(&e), &out))?;
        out.exchanges += second.exchanges;
        if second.actions.last() != Some(&Action::CleanUp) {
            return Err(fail(NO_CLEANUP.into(), &out));
        }
        if let Some(reason) = second.cleanup_reason.as_deref() {
            return Err(fail(cleanup_kind(Some(reason), NO_CLEANUP), &out));
        }
        Ok(out)
    }
}

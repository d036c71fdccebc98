//! Bootstrap material: what the engine sends in the `WriteItems` that takes a device into
//! secure mode. Made here, in the shell, on a blocking thread: it issues a certificate (a
//! key pair) and, for `pin`, runs PBKDF2 — deliberately slow.
//!
//! Anyone on the default port can quote a MAC, so the costly part is bounded twice: the
//! engine asks for new material only when the device's kept material cannot be sent again
//! (and then at most once per device in `bootstrap-reissue-secs`), and at most
//! `bootstrap-concurrency` issuances run at once, with at most `bootstrap-queue` start-ups
//! waiting (10 s at most) for one — a start-up that finds the queue full, or waits in vain,
//! is answered with a `CleanUp` ("server busy"). Issued material is kept sealed
//! ([`SecretBox`], bound to the device's MAC): the private key is never stored in clear.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dls_engine::{
    Bootstrap, BootstrapKind, BootstrapNeed, BootstrapSupply, IssuedCertificate, SealedBootstrap, UnixTime,
};
use dls_message::{Item, MacAddr};
use dls_secure_mode::SealParams;
use dls_store::Store;
use tracing::warn;
use zeroize::{Zeroize, Zeroizing};

use crate::pki::Pki;
use crate::secrets::SecretBox;

/// Makes bootstrap material.
pub(crate) struct BootstrapMaker {
    pub(crate) pki: Arc<Pki>,
    /// The port phones are told to use for secure mode.
    pub(crate) secure_port: u16,
    pub(crate) pin_iterations: u32,
    pub(crate) max_pin_retries: u32,
    pub(crate) certificate_days: u32,
    pub(crate) key_type: crate::pki::DeviceKeyType,
    /// Seals the material kept at rest.
    pub(crate) secrets: Arc<SecretBox>,
    /// The bound on issuances running at once.
    pub(crate) permits: IssuePermits,
    /// Counts the store calls made here.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// Why bootstrap material could not be made (our fault: logged, answered `500`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootstrapError {
    #[error("store: {0}")]
    Store(#[from] dls_store::StoreError),
    #[error("{0}")]
    Pki(#[from] crate::ServerError),
    #[error("no PIN outstanding")]
    NoPin,
    #[error("sealing: {0}")]
    Seal(#[from] dls_secure_mode::Error),
    #[error("stored PIN does not open (or is not a PIN)")]
    PinUnusable,
    #[error("bootstrap material could not be sealed for keeping")]
    Keep,
}

/// How long a start-up waits at most for an issuance to free up.
const PERMIT_WAIT: Duration = Duration::from_secs(10);

/// A bound on issuances running at once, with a bounded number of waiters: a caller gets a
/// permit at once, or waits in a queue of at most `max_waiting` for at most
/// [`PERMIT_WAIT`], or (queue full, or no permit in time) gets none.
pub(crate) struct IssuePermits {
    max: usize,
    max_waiting: usize,
    state: Mutex<PermitState>,
    freed: Condvar,
    /// Issuances begun since the start (for tests).
    issued: AtomicUsize,
}

#[derive(Default)]
struct PermitState {
    in_use: usize,
    waiting: usize,
}

/// One unit of [`IssuePermits`], given back when dropped.
pub(crate) struct Permit<'a>(&'a IssuePermits);

impl IssuePermits {
    pub(crate) fn new(max: usize, max_waiting: usize) -> Self {
        Self {
            max: max.max(1),
            max_waiting,
            state: Mutex::new(PermitState::default()),
            freed: Condvar::new(),
            issued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PermitState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit, waiting (on this blocking thread) for one only if the queue has room.
    pub(crate) fn acquire(&self) -> Option<Permit<'_>> {
        let mut st = self.lock();
        if st.in_use >= self.max {
            if st.waiting >= self.max_waiting {
                return None;
            }
            st.waiting += 1;
            let (back, _) = self
                .freed
                .wait_timeout_while(st, PERMIT_WAIT, |s| s.in_use >= self.max)
                .unwrap_or_else(PoisonError::into_inner);
            st = back;
            st.waiting -= 1;
            if st.in_use >= self.max {
                return None;
            }
        }
        st.in_use += 1;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Some(Permit(self))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// The material as kept (sealed) at rest.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    serial: String,
    not_after: u64,
    /// `(name, index, value)`.
    items: Vec<(String, Option<u32>, String)>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        for (_, _, value) in &mut self.items {
            value.zeroize();
        }
    }
}

fn context(mac: MacAddr) -> String {
    format!("bootstrap:{mac}")
}

impl BootstrapMaker {
    /// What the engine asked for: the kept material opened again, or new material under
    /// the bound (none when the bound is reached). Kept material that does not open (the
    /// secrets key changed, a damaged row) is replaced by new material.
    pub(crate) fn supply(
        &self,
        need: BootstrapNeed,
        mac: MacAddr,
        store: &dyn Store,
        now: UnixTime,
    ) -> Result<BootstrapSupply, BootstrapError> {
        if let BootstrapNeed::Reuse(_) = need {
            match self.reopen(mac, store)? {
                Some(b) => return Ok(BootstrapSupply::Reused(b)),
                None => warn!(%mac, "kept bootstrap material does not open; issuing new material"),
            }
        }
        let Some(_permit) = self.permits.acquire() else {
            return Ok(BootstrapSupply::Unavailable);
        };
        let bootstrap = self.prepare(need.kind(), mac, store, now)?;
        let sealed = self.seal(mac, &bootstrap)?;
        Ok(BootstrapSupply::Issued { bootstrap, sealed })
    }

    fn seal(&self, mac: MacAddr, b: &Bootstrap) -> Result<SealedBootstrap, BootstrapError> {
        let kept = Kept {
            serial: b.certificate.serial.clone(),
            not_after: b.certificate.not_after.0,
            items: b.items.iter().map(|i| (i.name.clone(), i.index, i.value.clone())).collect(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&kept).map_err(|_| BootstrapError::Keep)?);
        self.secrets.seal(&context(mac), &json).map(SealedBootstrap).ok_or(BootstrapError::Keep)
    }

    /// The kept material, if any and if it opens.
    fn reopen(&self, mac: MacAddr, store: &dyn Store) -> Result<Option<Bootstrap>, BootstrapError> {
        let Some(sealed) = self.metrics.store("pending_bootstrap", store.pending_bootstrap(mac))? else {
            return Ok(None);
        };
        let Some(json) = self.secrets.open(&context(mac), &sealed) else { return Ok(None) };
        let Ok(kept) = serde_json::from_slice::<Kept>(&json) else { return Ok(None) };
        let items = kept
            .items
            .iter()
            .map(|(name, index, value)| Item { index: *index, ..Item::new(name.clone(), value.clone()) })
            .collect();
        Ok(Some(Bootstrap {
            items,
            certificate: IssuedCertificate { serial: kept.serial.clone(), not_after: UnixTime(kept.not_after) },
        }))
    }

    /// The items for `mac`: for `nopin` in the clear, for `pin` sealed with the device's
    /// outstanding PIN into `secure-mode-data`, with a new certificate.
    fn prepare(
        &self,
        kind: BootstrapKind,
        mac: MacAddr,
        store: &dyn Store,
        now: UnixTime,
    ) -> Result<Bootstrap, BootstrapError> {
        let cert = self.pki.issue_device_certificate(mac, self.certificate_days, self.key_type, now)?;
        let mut inner = vec![Item::new(
            "dls-client-certificate",
            format!("{}\n{}", cert.cert_pem.trim_end(), cert.key_pem.trim_end()),
        )];
        for (i, ca) in self.pki.ca_pems().into_iter().enumerate() {
            inner.push(Item::indexed("dls-server-ca", u32::try_from(i).unwrap_or(u32::MAX), ca));
        }
        inner.push(Item::new("dls-secure-port", self.secure_port.to_string()));
        let items = match kind {
            BootstrapKind::Nopin => {
                let mut items = vec![Item::new("goto-secure-mode", "nopin")];
                items.extend(inner);
                items
            }
            BootstrapKind::Pin => {
                // The PIN is opened for the moment of sealing, and wiped when dropped.
                let stored = self.metrics.store("pin", store.pin(mac))?.ok_or(BootstrapError::NoPin)?;
                let pin = self.secrets.open_pin(mac, &stored).ok_or(BootstrapError::PinUnusable)?;
                let sealed = dls_secure_mode::seal(&pin, &mac, &inner, &SealParams::new(self.pin_iterations)?);
                for item in &mut inner {
                    item.value.zeroize();
                }
                vec![
                    Item::new("goto-secure-mode", "pin"),
                    Item::new("secure-mode-data", sealed?),
                    Item::new("max-pin-retries", self.max_pin_retries.to_string()),
                ]
            }
        };
        Ok(Bootstrap {
            items,
            certificate: IssuedCertificate { serial: cert.serial, not_after: UnixTime(cert.not_after) },
        })
    }
}

#[cfg(test)]
mod tests {
    use dls_engine::{Change, SecurityMode};
    use dls_store::ProtocolStore;
    use dls_store_sqlite::SqliteStore;

    use super::*;

    /// The time the tests issue at: the certificate is valid from an hour before it.
    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn maker(dir: &std::path::Path) -> BootstrapMaker {
        let data = crate::DataDir::open(&dir.join("data")).expect("data dir");
        BootstrapMaker {
            pki: Arc::new(Pki::load_or_create(&data, &[]).expect("pki")),
            secure_port: 18444,
            pin_iterations: 100_000,
            max_pin_retries: 3,
            certificate_days: 30,
            key_type: crate::pki::DeviceKeyType::EcdsaP256,
            secrets: Arc::new(SecretBox::new(&[7; 32]).expect("key")),
            permits: IssuePermits::new(1, 0),
            metrics: Arc::new(crate::metrics::Metrics::new("test", &[])),
        }
    }

    #[test]
    fn issuance_is_bounded_and_kept_material_is_reused_sealed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = maker(dir.path());
        let store = SqliteStore::open_in_memory().expect("store");
        let mac = MacAddr::parse("001A2B3C4D5E").expect("mac");
        store.apply(mac, &[Change::Register { mode: SecurityMode::Nopin }]).expect("registers");
        let issue = BootstrapNeed::Issue(BootstrapKind::Nopin);

        // The bound reached: nothing is made, at once.
        let held = m.permits.acquire().expect("the only permit");
        assert_eq!(m.supply(issue, mac, &store, NOW).expect("answers"), BootstrapSupply::Unavailable);
        drop(held);
        let BootstrapSupply::Issued { bootstrap, sealed } = m.supply(issue, mac, &store, NOW).expect("issues") else {
            panic!("not issued")
        };
        assert_eq!(m.permits.issued.load(Ordering::Relaxed), 2, "two tries, one made");
        let key = bootstrap.items.iter().find(|i| i.name == "dls-client-certificate").expect("cert").value.clone();
        assert!(key.contains("PRIVATE KEY"));
        assert!(!sealed.0.windows(11).any(|w| w == b"PRIVATE KEY"), "sealed");
        let serial = bootstrap.certificate.serial.clone();
        let at = UnixTime(1);
        store
            .apply(
                mac,
                &[
                    Change::IssueCertificate { at, certificate: bootstrap.certificate.clone() },
                    Change::KeepBootstrap { at, serial: serial.clone(), sealed },
                ],
            )
            .expect("keeps");

        // Reused: the same items, no permit needed, nothing made.
        let held = m.permits.acquire().expect("permit");
        let reuse = BootstrapNeed::Reuse(BootstrapKind::Nopin);
        assert_eq!(m.supply(reuse, mac, &store, NOW).expect("reuses"), BootstrapSupply::Reused(bootstrap));
        drop(held);
        // Kept material another key sealed does not open: new material instead.
        let other = BootstrapMaker { secrets: Arc::new(SecretBox::new(&[8; 32]).expect("key")), ..maker(dir.path()) };
        let fresh = other.supply(reuse, mac, &store, NOW).expect("issues");
        assert!(
            matches!(fresh, BootstrapSupply::Issued { ref bootstrap, .. } if bootstrap.certificate.serial != serial)
        );
    }

    #[test]
    fn permits_bound_the_work_and_the_queue() {
        let p = IssuePermits::new(2, 0);
        let a = p.acquire().expect("first");
        let b = p.acquire().expect("second");
        assert!(p.acquire().is_none(), "the bound, and no queue");
        drop(a);
        let c = p.acquire().expect("given back");
        drop((b, c));
        assert_eq!((p.lock().in_use, p.issued.load(Ordering::Relaxed)), (0, 3));

        // One place in the queue: a waiter gets the permit when it is given back; a second
        // caller finds the queue full and gets none, at once.
        let p = IssuePermits::new(1, 1);
        let held = p.acquire().expect("the only permit");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| p.acquire().map(drop).is_some());
            while p.lock().waiting == 0 {
                std::thread::yield_now();
            }
            assert!(p.acquire().is_none(), "the queue is full");
            drop(held);
            assert!(waiter.join().expect("joins"), "the waiter got it");
        });
        assert_eq!(p.lock().in_use, 0);
    }
}

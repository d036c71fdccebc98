//! Bootstrap material: what the engine sends in the `WriteItems` that takes a device into
//! secure mode. Made here, in the shell, on a blocking thread: it issues a certificate (a
//! key pair) and, for `pin`, runs PBKDF2 — deliberately slow.
//!
//! Anyone on the default port can quote a MAC, so the costly part is bounded twice: the
//! engine asks for new material only when the device's kept material cannot be sent again
//! (and then at most once per device in `bootstrap-reissue-secs`), and at most
//! `bootstrap-concurrency` issuances run at once — a start-up that finds them all busy is
//! answered at once with a `CleanUp`, not queued. Issued material is kept sealed
//! ([`SecretBox`], bound to the device's MAC): the private key is never stored in clear.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A bound on work running at once that never waits: a caller gets a permit or nothing.
pub(crate) struct IssuePermits {
    max: usize,
    in_use: AtomicUsize,
    /// Issuances begun since the start (for the log and tests).
    issued: AtomicUsize,
}

/// One unit of [`IssuePermits`], given back when dropped.
pub(crate) struct Permit<'a>(&'a IssuePermits);

impl IssuePermits {
    pub(crate) fn new(max: usize) -> Self {
        Self { max: max.max(1), in_use: AtomicUsize::new(0), issued: AtomicUsize::new(0) }
    }

    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
        self.in_use.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).ok().map(
            |_| {
                self.issued.fetch_add(1, Ordering::Relaxed);
                Permit(self)
            },
        )
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
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
    ) -> Result<BootstrapSupply, BootstrapError> {
        if let BootstrapNeed::Reuse(_) = need {
            match self.reopen(mac, store)? {
                Some(b) => return Ok(BootstrapSupply::Reused(b)),
                None => warn!(%mac, "kept bootstrap material does not open; issuing new material"),
            }
        }
        let Some(_permit) = self.permits.try_acquire() else {
            return Ok(BootstrapSupply::Unavailable);
        };
        let bootstrap = self.prepare(need.kind(), mac, store)?;
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
        let Some(sealed) = store.pending_bootstrap(mac)? else { return Ok(None) };
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
    fn prepare(&self, kind: BootstrapKind, mac: MacAddr, store: &dyn Store) -> Result<Bootstrap, BootstrapError> {
        let cert = self.pki.issue_device_certificate(mac, self.certificate_days, self.key_type)?;
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
                let stored = store.pin(mac)?.ok_or(BootstrapError::NoPin)?;
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
    use dls_store::SqliteStore;

    use super::*;

    fn maker(dir: &std::path::Path) -> BootstrapMaker {
        let data = crate::DataDir::open(&dir.join("data")).expect("data dir");
        BootstrapMaker {
            pki: Arc::new(Pki::load_with(&data, &[], None).expect("pki")),
            secure_port: 18444,
            pin_iterations: 100_000,
            max_pin_retries: 3,
            certificate_days: 30,
            key_type: crate::pki::DeviceKeyType::EcdsaP256,
            secrets: Arc::new(SecretBox::new(&[7; 32]).expect("key")),
            permits: IssuePermits::new(1),
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
        let held = m.permits.try_acquire().expect("the only permit");
        assert_eq!(m.supply(issue, mac, &store).expect("answers"), BootstrapSupply::Unavailable);
        drop(held);
        let BootstrapSupply::Issued { bootstrap, sealed } = m.supply(issue, mac, &store).expect("issues") else {
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
        let held = m.permits.try_acquire().expect("permit");
        let reuse = BootstrapNeed::Reuse(BootstrapKind::Nopin);
        assert_eq!(m.supply(reuse, mac, &store).expect("reuses"), BootstrapSupply::Reused(bootstrap));
        drop(held);
        // Kept material another key sealed does not open: new material instead.
        let other = BootstrapMaker { secrets: Arc::new(SecretBox::new(&[8; 32]).expect("key")), ..maker(dir.path()) };
        let fresh = other.supply(reuse, mac, &store).expect("issues");
        assert!(
            matches!(fresh, BootstrapSupply::Issued { ref bootstrap, .. } if bootstrap.certificate.serial != serial)
        );
    }

    #[test]
    fn permits_bound_without_waiting() {
        let p = IssuePermits::new(2);
        let a = p.try_acquire().expect("first");
        let b = p.try_acquire().expect("second");
        assert!(p.try_acquire().is_none(), "the bound");
        drop(a);
        let c = p.try_acquire().expect("given back");
        assert!(p.try_acquire().is_none());
        drop((b, c));
        assert_eq!(p.in_use.load(Ordering::Relaxed), 0);
        assert_eq!(p.issued.load(Ordering::Relaxed), 3);
    }
}

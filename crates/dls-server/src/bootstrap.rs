//! Bootstrap material: what the engine sends in the `WriteItems` that takes a device into
//! secure mode. Made here, in the shell, on a blocking thread: it issues a certificate (a
//! key pair) and, for `pin`, runs PBKDF2 — deliberately slow.

use std::sync::Arc;

use dls_engine::{Bootstrap, BootstrapKind, IssuedCertificate, UnixTime};
use dls_message::{Item, MacAddr};
use dls_secure_mode::{Pin, SealParams};
use dls_store::Store;
use zeroize::Zeroize;

use crate::pki::Pki;

/// Makes bootstrap material.
pub(crate) struct BootstrapMaker {
    pub(crate) pki: Arc<Pki>,
    /// The port phones are told to use for secure mode.
    pub(crate) secure_port: u16,
    pub(crate) pin_iterations: u32,
    pub(crate) max_pin_retries: u32,
    pub(crate) certificate_days: u32,
    pub(crate) key_type: crate::pki::DeviceKeyType,
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
    #[error("stored PIN unusable: {0}")]
    Pin(#[from] dls_secure_mode::PinError),
}

impl BootstrapMaker {
    /// The items for `mac`: for `nopin` in the clear, for `pin` sealed with the device's
    /// outstanding PIN into `secure-mode-data`. A fresh certificate every time (a phone
    /// that restarts before its user types the PIN gets a freshly sealed bundle, same PIN).
    pub(crate) fn prepare(
        &self,
        kind: BootstrapKind,
        mac: MacAddr,
        store: &dyn Store,
    ) -> Result<Bootstrap, BootstrapError> {
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
                let digits = store.pin(mac)?.ok_or(BootstrapError::NoPin)?;
                let pin = Pin::parse(&digits)?;
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

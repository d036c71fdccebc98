//! The phone's side of secure mode: what the bootstrap delivered, opening
//! `secure-mode-data` with the PIN the user types, and the mutual-TLS client for the
//! secure port.

use std::sync::Arc;

use dls_message::{DlsMessage, Item, MacAddr};
use dls_secure_mode::Pin;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::ClientError;

/// What a phone keeps after bootstrapping: its certificate and key, the CAs it trusts
/// for the secure port, and the port.
#[derive(Clone)]
pub struct SecureMaterial {
    /// The device certificate, then any intermediates (PEM).
    pub certificate_chain: String,
    /// The device's private key (PEM PKCS#8).
    pub private_key: Zeroizing<String>,
    /// The CA certificates to trust (PEM), `dls-server-ca` index order.
    pub server_cas: Vec<String>,
    /// The secure port.
    pub port: u16,
}

impl std::fmt::Debug for SecureMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureMaterial")
            .field("server_cas", &self.server_cas.len())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SecureMaterial {
    /// Reads the bootstrap items (`dls-client-certificate`, `dls-server-ca`,
    /// `dls-secure-port`), from a `nopin` `WriteItems` or an opened `secure-mode-data`.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] when an item is missing or malformed.
    pub fn from_items(items: &[Item]) -> Result<Self, ClientError> {
        let get = |n: &str| items.iter().find(|i| i.name == n).map(|i| i.value.as_str());
        let bundle = get("dls-client-certificate").ok_or_else(|| missing("dls-client-certificate"))?;
        let split = bundle
            .find("-----BEGIN PRIVATE KEY-----")
            .ok_or_else(|| missing("the private key in dls-client-certificate"))?;
        let (chain, key) = bundle.split_at(split);
        let mut cas: Vec<(u32, String)> = items
            .iter()
            .filter(|i| i.name == "dls-server-ca")
            .map(|i| (i.index.unwrap_or(0), i.value.clone()))
            .collect();
        cas.sort_by_key(|(i, _)| *i);
        if cas.is_empty() {
            return Err(missing("dls-server-ca"));
        }
        let port = get("dls-secure-port")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .ok_or_else(|| missing("a valid dls-secure-port"))?;
        Ok(Self {
            certificate_chain: chain.trim().to_owned(),
            private_key: Zeroizing::new(key.trim().to_owned()),
            server_cas: cas.into_iter().map(|(_, c)| c).collect(),
            port,
        })
    }

    /// The TLS configuration for the secure port: verify the server against the delivered
    /// CAs, present the device certificate.
    ///
    /// # Errors
    /// [`ClientError::Tls`] when the certificates or key are unusable.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        let tls = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for pem in &self.server_cas {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
            }
        }
        let chain = CertificateDer::pem_slice_iter(self.certificate_chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.private_key.as_bytes()).map_err(|e| tls(&e))?;
        let mut cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

fn missing(what: &str) -> ClientError {
    ClientError::Protocol(format!("bootstrap without {what}"))
}

/// A `pin` bootstrap waiting for its PIN.
#[derive(Clone, Debug)]
pub struct PendingPin {
    /// The sealed bundle.
    pub secure_mode_data: String,
    /// How many wrong PINs the phone accepts.
    pub max_pin_retries: u32,
    /// Wrong PINs so far.
    pub failures: u32,
}

/// What typing a PIN did.
#[derive(Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// The bundle opened: the phone is ready for the secure port.
    Opened,
    /// A wrong PIN; tries remain.
    Wrong {
        /// Tries left.
        left: u32,
    },
    /// Too many wrong PINs: the phone sends `clean-up` (`password retries exceeded`).
    RetriesExceeded,
}

/// How typing the PINs ended ([`crate::Phone::enter_pins`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum PinsOutcome {
    /// A PIN opened the bundle: the phone is ready for the secure port.
    Opened,
    /// The PINs to type ran out before one opened the bundle and before the phone's retry
    /// limit: the bundle still waits for a PIN, and nothing was sent.
    NoPinLeft,
    /// Too many wrong PINs: the phone sent `clean-up` with `cleanup-reason`
    /// `password retries exceeded` ([`RETRIES_EXCEEDED`]), and the bundle is gone.
    RetriesExceeded {
        /// The DLS's answer to the `clean-up`.
        answer: DlsMessage,
    },
}

/// The `cleanup-reason` a phone sends when the user typed too many wrong PINs.
pub const RETRIES_EXCEEDED: &str = "password retries exceeded";

/// Why typing the PINs failed ([`crate::Phone::enter_pins`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinsError {
    /// A PIN could not be tried: no PIN requested, the typed text is not a PIN, or the
    /// bundle is malformed (as [`crate::Phone::enter_pin`]).
    #[error("secure-mode-data: {0}")]
    Open(ClientError),
    /// The retries ran out and sending the `clean-up` failed.
    #[error("wrong PIN: retries exceeded; sending clean-up failed: {0}")]
    CleanUp(ClientError),
}

impl PinsError {
    /// The underlying client error.
    #[must_use]
    pub fn client_error(&self) -> &ClientError {
        match self {
            Self::Open(e) | Self::CleanUp(e) => e,
        }
    }
}

/// Opens `secure-mode-data` with a typed PIN.
///
/// # Errors
/// [`ClientError::Protocol`] when the bundle is malformed (not a wrong PIN) or the typed
/// text is not a PIN.
pub fn open_bundle(
    pending: &PendingPin,
    mac: MacAddr,
    typed: &str,
) -> Result<Result<(SecureMaterial, String), ()>, ClientError> {
    let pin = Pin::parse(typed).map_err(|e| ClientError::Protocol(format!("not a PIN: {e}")))?;
    match dls_secure_mode::open(&pin, &mac, &pending.secure_mode_data) {
        Ok(items) => Ok(Ok((SecureMaterial::from_items(&items)?, pin.tan().to_owned()))),
        Err(e) if e.is_authentication() => Ok(Err(())),
        Err(e) => Err(ClientError::Protocol(format!("secure-mode-data: {e}"))),
    }
}

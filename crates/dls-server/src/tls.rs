//! TLS: the one place where the crypto provider (ring) and the protocol versions
//! (TLS 1.2 and 1.3) are chosen.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::error::ServerError;
use crate::pki::Pki;

/// The crypto provider of every TLS configuration in the service.
#[must_use]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The default-mode listener's TLS configuration: server certificate, no client
/// authentication, HTTP/1.1 only.
///
/// # Errors
/// [`ServerError::Pki`] if the certificate or key is unusable.
pub fn default_mode(pki: &Pki) -> Result<Arc<ServerConfig>, ServerError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(pki.server_chain()?, pki.server_key()?)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

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

/// The secure port's TLS configuration: the same server certificate, and a client
/// certificate required that chains to the device CA (checked with webpki, validity
/// included). Revocation is checked per request against the store.
///
/// # Errors
/// [`ServerError::Pki`] if the certificates or key are unusable.
pub fn secure_mode(pki: &Pki) -> Result<Arc<ServerConfig>, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in pki.ca_certs()? {
        roots.add(ca)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| ServerError::Pki(format!("client verifier: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain()?, pki.server_key()?)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

//! TLS to the database, with libpq's parameters in the URL: `sslmode` (`disable`, `prefer`,
//! `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert` and `sslkey`; on rustls
//! with the ring provider, through `tokio-postgres-rustls` (the `postgres` client's
//! connector for rustls, which also gives SCRAM its channel binding).
//!
//! The driver (`tokio-postgres`) knows `sslmode=disable|prefer|require` only, and none of
//! the files: [`split_url`] takes these parameters out of the URL, and the certificate's
//! checks are ours ([`Verifier`]), as libpq makes them:
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it | as `require` |
//! | `require` | always | not checked; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | always | issued by a CA of `sslrootcert` |
//! | `verify-full` | always | issued by a CA of `sslrootcert`, for the URL's host |
//!
//! Where this is stricter than libpq: `verify-ca` and `verify-full` need `sslrootcert` (no
//! `~/.postgresql/root.crt` is read behind the operator's back); a file named but missing or
//! unreadable is an error in every mode (libpq ignores a missing one outside the verify
//! modes); `prefer` never falls back to plain text after a failed handshake (only when the
//! server offers no TLS). `allow` (plain text first) is refused. Over a Unix socket no TLS
//! is used, as with libpq. A client certificate (`sslcert` and `sslkey`, both or neither)
//! is sent when the server asks; the key must not be readable by others (libpq's rule: at
//! most 0600 if the file is the process user's, 0640 if root's).

use std::error::Error as StdError;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dls_store::StoreError;
use percent_encoding::percent_decode_str;
use postgres::config::{Host, SslMode as DriverMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

/// The connector of every connection (used only as [`TlsParams::mode`] asks).
pub(crate) type Connector = MakeRustlsConnect;

/// The largest certificate or key file read (a CA bundle is a few hundred kilobytes).
const MAX_FILE: u64 = 1 << 20;

/// The parameters this module takes out of a URL.
const PARAMETERS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// libpq's `sslmode`, less `allow`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, StoreError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err(invalid(
                    "sslmode=allow (plain text first) is not supported: use prefer, require, verify-ca or verify-full",
                ));
            }
            _ => {
                return Err(invalid(
                    "sslmode must be disable, prefer, require, verify-ca or verify-full (the database URL)",
                ));
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// What a URL asks of TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: SslMode,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

/// Takes libpq's TLS parameters ([`PARAMETERS`]) out of a `postgres://` URL's query: the
/// URL the driver is given, and what they ask. Where the query begins is found as the
/// driver finds it (the first `?` after the credentials' `@`); the other parameters are
/// left as they are, for the driver.
///
/// # Errors
/// [`StoreError::Invalid`] for a parameter given twice, a value that is not
/// percent-encoded UTF-8, an unknown `sslmode`, a verify mode without `sslrootcert`, or
/// only one of `sslcert` and `sslkey`.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsParams), StoreError> {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let after_credentials = authority + url[authority..].find('@').map_or(0, |i| i + 1);
    let Some(query_at) = url[after_credentials..].find('?').map(|i| after_credentials + i) else {
        return Ok((url.to_owned(), TlsParams::default()));
    };
    let (base, query) = (&url[..query_at], &url[query_at + 1..]);
    let mut kept = Vec::new();
    let mut found: [Option<String>; 4] = Default::default();
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            kept.push(pair);
            continue;
        };
        let key = decode(key, "a parameter's name")?;
        let Some(slot) = PARAMETERS.iter().position(|p| *p == key) else {
            kept.push(pair);
            continue;
        };
        if found[slot].is_some() {
            return Err(invalid(format!("the database URL gives {key} twice")));
        }
        found[slot] = Some(decode(value, &key)?);
    }
    let [mode, root_cert, cert, key] = found;
    let params = TlsParams {
        mode: mode.as_deref().map_or(Ok(SslMode::default()), SslMode::parse)?,
        root_cert: root_cert.map(PathBuf::from),
        cert: cert.map(PathBuf::from),
        key: key.map(PathBuf::from),
    };
    params.check()?;
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, params))
}

fn decode(text: &str, what: &str) -> Result<String, StoreError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("the database URL: {what} is not percent-encoded UTF-8")))
}

impl TlsParams {
    fn check(&self) -> Result<(), StoreError> {
        for (path, name) in [(&self.root_cert, "sslrootcert"), (&self.cert, "sslcert"), (&self.key, "sslkey")] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(invalid(format!("{name} in the database URL is empty")));
            }
        }
        if self.root_cert.as_deref() == Some(Path::new("system")) {
            return Err(invalid(
                "sslrootcert=system (the system's CAs) is not supported: name the file of the CA that issued the database's certificate",
            ));
        }
        if self.mode.verifies() && self.root_cert.is_none() {
            return Err(invalid(format!(
                "sslmode={} needs sslrootcert=PATH, the CA certificate that issued the database's (the database URL)",
                self.mode
            )));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(invalid("sslcert needs sslkey, its private key (the database URL)")),
            (None, Some(_)) => Err(invalid("sslkey needs sslcert, its certificate (the database URL)")),
            _ => Ok(()),
        }
    }

    /// Sets the driver's `sslmode`: none over Unix sockets (as libpq: the server offers no
    /// TLS there), else `require` for every mode that insists on TLS.
    pub(crate) fn configure(&self, config: &mut postgres::Config) {
        let unix_only = !config.get_hosts().is_empty() && config.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
        config.ssl_mode(match self.mode {
            _ if unix_only => DriverMode::Disable,
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer => DriverMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
        });
    }

    /// The connector: rustls on ring, trusting `sslrootcert`'s CAs, with the client
    /// certificate if there is one. The files are read now (none for `disable`).
    ///
    /// # Errors
    /// [`StoreError::Invalid`], naming the file, for one that is missing, unreadable, too
    /// large, holds no certificate or key, or a key others may read.
    pub(crate) fn connector(&self) -> Result<Connector, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match (&self.root_cert, self.mode) {
            (Some(path), mode) if mode != SslMode::Disable => Some(Arc::new(read_roots(path)?)),
            _ => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match roots {
            Some(roots) if self.mode == SslMode::VerifyFull => {
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| invalid(format!("sslrootcert: {e}")))?
            }
            roots => Arc::new(Verifier { roots, algorithms: provider.signature_verification_algorithms }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&self.cert, &self.key, self.mode) {
            (Some(cert), Some(key), mode) if mode != SslMode::Disable => {
                let chain = read_certs(cert, "sslcert")?;
                builder.with_client_auth_cert(chain, read_key(key)?).map_err(|e| {
                    invalid(format!("sslkey {}: not the key of sslcert's certificate ({e})", key.display()))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        // What libpq 17 sends; PostgreSQL 17 requires it with sslnegotiation=direct.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The server's certificate checked as `prefer`, `require` (no `roots`: any certificate,
/// the handshake's signature still checked) and `verify-ca` (`roots`: issued by one of
/// them, whatever host it names) ask. `verify-full` is rustls' own [`WebPkiServerVerifier`].
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A file of at most [`MAX_FILE`] bytes, kept in memory that is wiped when dropped.
fn read_file(path: &Path, what: &str) -> Result<(File, Zeroizing<Vec<u8>>), StoreError> {
    let fail = |e: io::Error| invalid(format!("{what} {}: {e}", path.display()));
    let file = File::open(path).map_err(fail)?;
    let mut bytes = Zeroizing::new(Vec::new());
    (&file).take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(invalid(format!("{what} {}: larger than {MAX_FILE} bytes", path.display())));
    }
    Ok((file, bytes))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let (_, bytes) = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{what} {}: not PEM certificates ({e})", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("{what} {}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "sslrootcert")? {
        roots.add(cert).map_err(|e| invalid(format!("sslrootcert {}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    let (file, bytes) = read_file(path, "sslkey")?;
    let meta = file.metadata().map_err(|e| invalid(format!("sslkey {}: {e}", path.display())))?;
    check_key_permissions(path, &meta, rustix::process::geteuid().as_raw())?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        invalid(format!(
            "sslkey {}: no private key in it (PEM: PKCS#8, PKCS#1 or SEC1; an encrypted key is not supported)",
            path.display()
        ))
    })
}

/// libpq's rule for a client's key file: owned by the process's user with no access for
/// group and others (0600 or less), or by root with at most read access for the group
/// (0640 or less).
fn check_key_permissions(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let (uid, mode) = (meta.uid(), meta.mode());
    let too_open = if uid == euid {
        mode & 0o077 != 0
    } else if uid == 0 {
        mode & 0o037 != 0
    } else {
        return Err(invalid(format!(
            "sslkey {}: must belong to the user the service runs as, or to root",
            path.display()
        )));
    };
    if too_open {
        return Err(invalid(format!(
            "sslkey {}: others may access it (mode {:o}): it must be 0600 or less (0640 if owned by root)",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// The rustls error somewhere in a connection error's chain (rustls' errors reach the
/// driver wrapped in an [`io::Error`], whose `source` skips them).
fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()?.downcast_ref()) {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// Whether a connection failed because TLS could not be agreed: a certificate refused (by
/// either side), a handshake the server broke off, or a server without TLS under a mode
/// that requires it — the configuration's to fix, not a database that is away. A
/// connection cut during the handshake is not.
pub(crate) fn refused(e: &postgres::Error) -> bool {
    // The driver's errors of the TLS phase say so, and only they.
    if e.to_string() != "error performing TLS handshake" {
        return false;
    }
    rustls_error(e).is_some() || e.source().is_some_and(|s| s.downcast_ref::<io::Error>().is_none())
}

/// What a refused certificate or a server without TLS means, for the operator (empty for
/// other errors).
pub(crate) fn hint(e: &postgres::Error) -> &'static str {
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            " (the database's certificate is not issued by a CA of sslrootcert)"
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => " (the database's certificate does not name the URL's host: fix the host, or use sslmode=verify-ca)",
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => " (the database's certificate has expired)",
        Some(_) => "",
        // The driver's own words, when the server answers that it has no TLS.
        None if e.source().is_some_and(|s| s.to_string() == "server does not support TLS") => {
            " (turn ssl on in the server's postgresql.conf, or use sslmode=prefer)"
        }
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsParams) {
        split_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn the_tls_parameters_are_taken_out_of_the_url() {
        let (url, params) = split("postgres://u:p%3Fw@db.example/dls");
        assert_eq!((url.as_str(), params), ("postgres://u:p%3Fw@db.example/dls", TlsParams::default()));
        assert_eq!(TlsParams::default().mode, SslMode::Prefer, "libpq's default");

        let (url, params) = split(
            "postgres://u:pw@db.example:5433/dls?connect_timeout=2&sslmode=verify-full&sslrootcert=%2Fetc%2Fdls%2Fdb%20ca.pem&application_name=x",
        );
        assert_eq!(url, "postgres://u:pw@db.example:5433/dls?connect_timeout=2&application_name=x");
        assert_eq!(params.mode, SslMode::VerifyFull);
        assert_eq!(params.root_cert.as_deref(), Some(Path::new("/etc/dls/db ca.pem")));

        // A `?` in the password is not the query (the driver reads it so too).
        let (url, params) = split("postgres://u:a?b@db/dls?sslmode=disable");
        assert_eq!((url.as_str(), params.mode), ("postgres://u:a?b@db/dls", SslMode::Disable));
        let (url, params) = split("postgresql://db/dls?sslmode=require&sslcert=/c.pem&sslkey=/k.pem");
        assert_eq!(url, "postgresql://db/dls");
        assert_eq!((params.mode, params.cert.is_some(), params.key.is_some()), (SslMode::Require, true, true));
        // A name percent-encoded is still the name.
        assert_eq!(split("postgres://db/dls?ssl%6Dode=disable").1.mode, SslMode::Disable);
    }

    #[test]
    fn wrong_tls_parameters_are_refused_in_one_line_without_the_password() {
        for (url, want) in [
            ("postgres://u:hunter2@db/dls?sslmode=verify", "sslmode must be"),
            ("postgres://u:hunter2@db/dls?sslmode=allow", "allow"),
            ("postgres://u:hunter2@db/dls?sslmode=verify-full", "needs sslrootcert"),
            ("postgres://u:hunter2@db/dls?sslmode=verify-ca", "needs sslrootcert"),
            ("postgres://u:hunter2@db/dls?sslmode=require&sslmode=disable", "twice"),
            ("postgres://u:hunter2@db/dls?sslcert=/c.pem", "sslcert needs sslkey"),
            ("postgres://u:hunter2@db/dls?sslkey=/k.pem", "sslkey needs sslcert"),
            ("postgres://u:hunter2@db/dls?sslrootcert=", "empty"),
            ("postgres://u:hunter2@db/dls?sslrootcert=system", "system"),
            ("postgres://u:hunter2@db/dls?sslrootcert=%FF", "UTF-8"),
        ] {
            match split_url(url) {
                Err(StoreError::Invalid(m)) => {
                    assert!(m.contains(want) && !m.contains("hunter2") && !m.contains('\n'), "{url}: {m}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_driver_is_told_the_mode_and_a_unix_socket_uses_no_tls() {
        let mode = |url: &str| {
            let (url, params) = split(url);
            let mut config: postgres::Config = url.parse().expect("parses");
            params.configure(&mut config);
            config.get_ssl_mode()
        };
        assert_eq!(mode("postgres://db/dls"), DriverMode::Prefer);
        assert_eq!(mode("postgres://db/dls?sslmode=disable"), DriverMode::Disable);
        assert_eq!(mode("postgres://db/dls?sslmode=require"), DriverMode::Require);
        assert_eq!(mode("postgres://db/dls?sslmode=verify-ca&sslrootcert=/ca.pem"), DriverMode::Require);
        assert_eq!(mode("postgres://%2Frun%2Fpostgresql/dls?sslmode=require"), DriverMode::Disable);
    }

    #[test]
    fn missing_or_unusable_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'x'; (MAX_FILE + 1) as usize]).expect("write");
        for (file, want) in [
            (dir.path().join("missing.pem"), "No such file"),
            (dir.path().to_path_buf(), "directory"),
            (garbage.clone(), "no PEM certificate"),
            (big, "larger than"),
        ] {
            let url = format!("postgres://db/dls?sslmode=verify-full&sslrootcert={}", file.display());
            let (_, params) = split(&url);
            match params.connector() {
                Err(StoreError::Invalid(m)) => {
                    assert!(m.contains("sslrootcert") && m.contains(want), "{m}");
                    assert!(m.contains(&file.display().to_string()), "the file is named: {m}");
                }
                other => panic!("{file:?}: {:?}", other.map(|_| ())),
            }
        }
        // disable reads nothing.
        let (_, params) = split(&format!("postgres://db/dls?sslmode=disable&sslrootcert={}", garbage.display()));
        assert!(params.connector().is_ok());
    }

    #[test]
    fn a_client_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("client.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n").expect("write");
        let meta = |mode: u32| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
            std::fs::metadata(&key).expect("metadata")
        };
        let mine = rustix::process::geteuid().as_raw();
        assert!(check_key_permissions(&key, &meta(0o600), mine).is_ok());
        assert!(check_key_permissions(&key, &meta(0o400), mine).is_ok());
        for mode in [0o640, 0o604, 0o644] {
            let e = check_key_permissions(&key, &meta(mode), mine).expect_err("too open");
            assert!(e.to_string().contains("0600"), "{e}");
        }
        // Owned by another user (as seen by a process of uid `mine + 1`, unless we are that).
        if mine != u32::MAX {
            let other = mine.wrapping_add(1);
            let owner = std::fs::metadata(&key).expect("metadata");
            use std::os::unix::fs::MetadataExt;
            if owner.uid() != 0 {
                assert!(check_key_permissions(&key, &meta(0o600), other).is_err(), "another user's key");
            } else {
                // Root's key: 0640 allowed, not more.
                assert!(check_key_permissions(&key, &meta(0o640), other).is_ok());
                assert!(check_key_permissions(&key, &meta(0o644), other).is_err());
            }
        }
    }
}

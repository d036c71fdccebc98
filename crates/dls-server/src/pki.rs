//! The service's PKI: a CA made on first start (or, later, an enterprise CA configured by
//! the operator), and the TLS server certificate it issues, with the names phones use to
//! reach the service as subject alternative names.

use std::net::IpAddr;
use std::path::Path;

use dls_engine::UnixTime;
use dls_message::MacAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::datadir::{DataDir, names};
use crate::error::ServerError;

/// The CA and the server certificate, as loaded or made at start.
pub struct Pki {
    /// The CA certificate (PEM): what phones must trust.
    pub ca_cert_pem: String,
    ca_key_pem: Zeroizing<String>,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    server_key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the CA from the data directory, making one on first start, and issues a fresh
    /// server certificate for `names` (DNS names or IP addresses) plus `localhost`,
    /// `127.0.0.1`, `::1` and the host name.
    ///
    /// # Errors
    /// [`ServerError::Pki`] when keys or certificates cannot be made or read.
    pub fn load_or_create(dir: &DataDir, server_names: &[String]) -> Result<Self, ServerError> {
        Self::load_with(dir, server_names, None, crate::clock::Clock::now(&crate::clock::SystemClock))
    }

    /// As [`Self::load_or_create`], with an enterprise CA (certificate and key PEM files)
    /// instead of the generated one when `external` is given, and `now` the time the
    /// certificates made are valid from (an hour before, for clocks a little behind).
    ///
    /// # Errors
    /// [`ServerError::Pki`] when keys or certificates cannot be made or read.
    pub fn load_with(
        dir: &DataDir,
        server_names: &[String],
        external: Option<(&Path, &Path)>,
        now: UnixTime,
    ) -> Result<Self, ServerError> {
        let now = at(now)?;
        let stored = match external {
            Some((cert, key)) => {
                let read = |p: &Path| {
                    std::fs::read_to_string(p).map_err(|e| ServerError::Pki(format!("reading {}: {e}", p.display())))
                };
                (Some(Zeroizing::new(read(cert)?.into_bytes())), Some(Zeroizing::new(read(key)?.into_bytes())))
            }
            None => (dir.read(names::CA_CERT)?, dir.read(names::CA_KEY)?),
        };
        let (ca_cert_pem, ca_key_pem) = match stored {
            (Some(c), Some(k)) => (utf8(&c, names::CA_CERT)?, Zeroizing::new(utf8(&k, names::CA_KEY)?)),
            (None, None) => {
                let (c, k) = make_ca(now)?;
                dir.write_private(names::CA_KEY, k.as_bytes())?;
                dir.write_private(names::CA_CERT, c.as_bytes())?;
                (c, k)
            }
            _ => {
                return Err(ServerError::Pki(
                    "only one of ca.crt and ca.key exists: restore the other or remove both".into(),
                ));
            }
        };
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)?;
        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("DLS server");
        params.subject_alt_names = sans(server_names)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(397);
        params.use_authority_key_identifier_extension = true;
        let server_cert = params.signed_by(&server_key, &issuer)?;
        let server_cert_pem = server_cert.pem();
        let server_key_pem = Zeroizing::new(server_key.serialize_pem());
        dir.write_private(names::SERVER_KEY, server_key_pem.as_bytes())?;
        dir.write_private(names::SERVER_CERT, server_cert_pem.as_bytes())?;
        Ok(Self { ca_cert_pem, ca_key_pem, server_cert_pem, server_key_pem })
    }

    /// The server's certificate chain (server certificate, then the CA) in DER.
    pub(crate) fn server_chain(&self) -> Result<Vec<CertificateDer<'static>>, ServerError> {
        let mut chain = parse_certs(&self.server_cert_pem)?;
        chain.extend(parse_certs(&self.ca_cert_pem)?);
        Ok(chain)
    }

    /// The server's private key in DER.
    pub(crate) fn server_key(&self) -> Result<PrivateKeyDer<'static>, ServerError> {
        PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| ServerError::Pki(format!("server key: {e}")))
    }

    /// Issues a client certificate for a device: a fresh key (ECDSA P-256, or RSA-2048 for
    /// old firmware), subject CN = the normalised MAC, extended key usage clientAuth, a random
    /// 127-bit serial number.
    ///
    /// # Errors
    /// [`ServerError::Pki`] when the key or certificate cannot be made.
    pub fn issue_device_certificate(
        &self,
        mac: MacAddr,
        validity_days: u32,
        key_type: DeviceKeyType,
        now: UnixTime,
    ) -> Result<DeviceCertificate, ServerError> {
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, KeyPair::from_pem(&self.ca_key_pem)?)?;
        let key = match key_type {
            DeviceKeyType::EcdsaP256 => KeyPair::generate()?,
            DeviceKeyType::Rsa2048 => rsa_2048()?,
        };
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| ServerError::Pki(format!("no random source: {e}")))?;
        serial[0] = (serial[0] & 0x7f) | 0x40; // positive, and no leading zero byte
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "DLS");
        dn.push(DnType::CommonName, mac.to_string());
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = at(now)?;
        let not_after = now + Duration::days(i64::from(validity_days.max(1)));
        params.not_before = now - Duration::hours(1);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(DeviceCertificate {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            serial: crate::http::serial_hex(&serial),
            not_after: u64::try_from(not_after.unix_timestamp()).unwrap_or(0),
        })
    }

    /// The CA certificates (DER) client certificates must chain to.
    pub(crate) fn ca_certs(&self) -> Result<Vec<CertificateDer<'static>>, ServerError> {
        parse_certs(&self.ca_cert_pem)
    }

    /// The CA certificates as separate PEM blocks (one `dls-server-ca` item each).
    pub(crate) fn ca_pems(&self) -> Vec<String> {
        self.ca_certs().unwrap_or_default().iter().map(|der| pem_certificate(der.as_ref())).collect()
    }
}

/// The kind of key device certificates get.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKeyType {
    /// ECDSA on P-256 (the default).
    #[default]
    EcdsaP256,
    /// RSA, 2048 bits, for firmware that handles no ECDSA. Named `rsa-2048` as documented
    /// (`rsa2048`, what kebab-case alone makes of it, is still read).
    #[serde(rename = "rsa-2048", alias = "rsa2048")]
    Rsa2048,
}

/// A fresh RSA-2048 key pair (ring signs with RSA keys but cannot generate them).
fn rsa_2048() -> Result<KeyPair, ServerError> {
    use rsa::pkcs8::EncodePrivateKey;
    let mut probe = [0u8; 1];
    getrandom::fill(&mut probe).map_err(|e| ServerError::Pki(format!("no random source: {e}")))?;
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| ServerError::Pki(format!("RSA key: {e}")))?;
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| ServerError::Pki(format!("RSA key: {e}")))?;
    Ok(KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)?)
}

/// A device's certificate and key, as sent in the bootstrap.
pub struct DeviceCertificate {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PEM PKCS#8, `BEGIN PRIVATE KEY`).
    pub key_pem: Zeroizing<String>,
    /// The serial number, hex upper case.
    pub serial: String,
    /// Expiry, Unix seconds.
    pub not_after: u64,
}

impl std::fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCertificate")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A DER certificate as PEM, in 64-character lines (`pem`), without a final line break.
fn pem_certificate(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let mut text = pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config);
    text.truncate(text.trim_end().len());
    text
}

fn utf8(bytes: &[u8], name: &str) -> Result<String, ServerError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ServerError::Pki(format!("{name} is not PEM text")))
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Pki(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Pki("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "DLS");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn make_ca(now: OffsetDateTime) -> Result<(String, Zeroizing<String>), ServerError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("DLS CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(10 * 365);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

/// `now` as a certificate time.
fn at(now: UnixTime) -> Result<OffsetDateTime, ServerError> {
    i64::try_from(now.0)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| ServerError::Pki(format!("the time {} cannot be a certificate's", now.0)))
}

/// The subject alternative names: the defaults, the host name, and the configured names.
fn sans(extra: &[String]) -> Result<Vec<SanType>, ServerError> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = host_name() {
        names.push(h);
    }
    names.extend(extra.iter().cloned());
    let mut out: Vec<SanType> = Vec::new();
    for n in names {
        let san = match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.clone()
                    .try_into()
                    .map_err(|_| ServerError::Config(format!("server name {n:?} is not a DNS name or IP address")))?,
            ),
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

fn host_name() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')).then(|| h.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_in_pem_reads_back_as_the_same_der() {
        let (ca_pem, _) = make_ca(OffsetDateTime::now_utc()).expect("a CA");
        let der = parse_certs(&ca_pem).expect("parses").remove(0);
        let text = pem_certificate(der.as_ref());
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n") && text.ends_with("\n-----END CERTIFICATE-----"));
        assert!(text.lines().all(|l| l.len() <= 64), "64-character lines: {text}");
        assert_eq!(parse_certs(&text).expect("parses"), [der]);
        assert_eq!(text, ca_pem.trim_end(), "the same text rcgen writes");
    }

    /// What the service issues is valid from the service's clock (an hour earlier, for
    /// phones a little behind), not from the host's.
    #[test]
    fn certificates_are_valid_from_the_time_given() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(&dir.path().join("data")).expect("data dir");
        let now = UnixTime(1_700_000_000);
        let pki = Pki::load_with(&data, &[], None, now).expect("pki");
        let validity = |pem: &str| {
            let der = parse_certs(pem).expect("parses").remove(0);
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
            (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp())
        };
        let hour = 3600;
        assert_eq!(validity(&pki.ca_cert_pem), (1_700_000_000 - hour, 1_700_000_000 + 3650 * 86_400));
        assert_eq!(validity(&pki.server_cert_pem), (1_700_000_000 - hour, 1_700_000_000 + 397 * 86_400));
        let mac = MacAddr::parse("00:1A:E8:3C:4D:5E").expect("mac");
        let device = pki.issue_device_certificate(mac, 30, DeviceKeyType::EcdsaP256, now).expect("issues");
        assert_eq!(validity(&device.cert_pem), (1_700_000_000 - hour, 1_700_000_000 + 30 * 86_400));
        assert_eq!(device.not_after, 1_700_000_000 + 30 * 86_400);
    }
}

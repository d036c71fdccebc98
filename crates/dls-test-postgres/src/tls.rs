//! Certificates for tests of TLS to the database: a CA of the test's own ([`TestCa`]), the
//! server's certificate ([`TestCa::server_cert`], for [`Options::tls`](crate::Options::tls))
//! and a client's ([`TestCa::client_cert`], for `sslcert`/`sslkey` and a server started with
//! [`Options::client_certificates`](crate::Options::client_certificates)). Made with
//! `rcgen` (ECDSA P-256), valid from now on for the length of a test run and more.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// A certificate authority made for a test.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// A certificate [`TestCa`] issued, and its private key, in PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

fn certificate_error(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

impl TestCa {
    /// A new CA, its common name `name`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(certificate_error)?;
        let mut params = CertificateParams::new(Vec::new()).map_err(certificate_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).map_err(certificate_error)?;
        Ok(Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA's certificate (what a client's `sslrootcert` names).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for these host names and IP addresses (its subject alternative
    /// names; e.g. `["127.0.0.1", "localhost"]`).
    pub fn server_cert(&self, names: &[&str]) -> Result<Issued, Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(certificate_error)?;
        params.distinguished_name.push(DnType::CommonName, "dls test database");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(&params)
    }

    /// A client certificate for the database user `user` (its common name, which
    /// PostgreSQL's `cert` authentication compares with the user name).
    pub fn client_cert(&self, user: &str) -> Result<Issued, Error> {
        let mut params = CertificateParams::new(Vec::new()).map_err(certificate_error)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&params)
    }

    fn issue(&self, params: &CertificateParams) -> Result<Issued, Error> {
        let key = KeyPair::generate().map_err(certificate_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(certificate_error)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

//! Integration tests of dls-digest, one module per topic.

mod behaviour;
mod client;
mod parsing;
mod real_clients;
mod server;
mod shared;
mod store_failures;
mod throttling;
mod vectors;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use dls_digest::{Config, Credential, CredentialLookup, HashFn, LookupError, Outcome, Request, Verifier, userhash};

/// A fixed "now" for sans-IO tests.
pub(crate) const NOW: u64 = 1_700_000_000;
pub(crate) const REALM: &str = "dls";
pub(crate) const MAC_A: &str = "001a2b3c4d5e";
pub(crate) const SECRET_A: &str = "123456789012";
pub(crate) const MAC_B: &str = "001a2b3c4d5f";
pub(crate) const SECRET_B: &str = "210987654321";
/// Shared fallback credentials configured on the phones.
pub(crate) const FALLBACK_USER: &str = "site-fallback";
pub(crate) const FALLBACK_PASS: &str = "fallback pass";

pub(crate) fn target(mac: &str) -> String {
    format!("/provisioning/{mac}.xml")
}

pub(crate) fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

/// A store: usernames matched ignoring ASCII case, plaintext passwords; `userhash` supported by
/// an index built for the configured realm.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    /// Lowercase username to (username as stored, password).
    users: HashMap<String, (String, String)>,
    realm: String,
}

impl Store {
    pub(crate) fn new(realm: &str, users: &[(&str, &str)]) -> Self {
        let users = users.iter().map(|(u, p)| (u.to_ascii_lowercase(), ((*u).to_owned(), (*p).to_owned()))).collect();
        Self { users, realm: realm.to_owned() }
    }

    /// The phones' store: two devices and the fallback user.
    pub(crate) fn phones() -> Self {
        Self::phones_in(REALM)
    }

    pub(crate) fn phones_in(realm: &str) -> Self {
        Self::new(realm, &[(MAC_A, SECRET_A), (MAC_B, SECRET_B), (FALLBACK_USER, FALLBACK_PASS)])
    }
}

impl CredentialLookup for Store {
    fn credential(&self, username: &str) -> Result<Option<Credential>, LookupError> {
        Ok(self.users.get(&username.to_ascii_lowercase()).map(|(_, p)| Credential::password(p.as_str())))
    }

    fn credential_by_userhash(&self, hash: &str, hash_fn: HashFn) -> Result<Option<(String, Credential)>, LookupError> {
        let Some(algorithm) = dls_digest::Algorithm::ALL.into_iter().find(|a| a.hash() == hash_fn) else {
            return Ok(None);
        };
        // A real store keeps an index; a scan is fine for a handful of test users.
        Ok(self
            .users
            .values()
            .find(|(u, _)| userhash(algorithm, u, &self.realm) == hash)
            .map(|(u, p)| (u.clone(), Credential::password(p.as_str()))))
    }
}

pub(crate) fn verifier(config: Config) -> Verifier {
    Verifier::new(config, &[0x42; 32]).expect("valid config")
}

pub(crate) fn request<'a>(target: &'a str, authorization: Option<&'a str>, source: IpAddr, now: u64) -> Request<'a> {
    Request { method: "GET", target, authorization: authorization.map(str::as_bytes), source, now }
}

/// The first `WWW-Authenticate` value of a challenge; panics on anything else.
pub(crate) fn challenge(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Challenge { www_authenticate, .. } => www_authenticate[0].clone(),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// A phone's attempt with one credential set: a bare request, then the answer to its challenge.
pub(crate) fn attempt<L: CredentialLookup + ?Sized>(
    v: &Verifier,
    store: &L,
    mac: &str,
    user: &str,
    pass: &str,
    source: IpAddr,
    now: u64,
) -> Outcome {
    let t = target(mac);
    let first = v.verify(&request(&t, None, source, now), store);
    if !matches!(first, Outcome::Challenge { .. }) {
        return first;
    }
    let header = client::Answer::from_challenge(&challenge(&first), user, pass, &t).header();
    v.verify(&request(&t, Some(&header), source, now), store)
}

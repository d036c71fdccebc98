//! A credential store that fails: `503` with `Retry-After`, never counted as a failure, so a
//! database hiccup cannot throttle a good phone (issue 14).

use std::cell::Cell;

use dls_digest::{Config, Credential, CredentialLookup, HashFn, LookupError, Outcome};

use crate::{MAC_A, NOW, SECRET_A, Store, attempt, client, ip, request, target, verifier};

/// The phones' store, unreachable while `down` is set; counts its calls.
struct Flaky {
    store: Store,
    down: Cell<bool>,
    calls: Cell<u32>,
}

impl Flaky {
    fn new() -> Self {
        Self { store: Store::phones(), down: Cell::new(true), calls: Cell::new(0) }
    }

    fn call(&self) -> Result<(), LookupError> {
        self.calls.set(self.calls.get() + 1);
        if self.down.get() { Err(LookupError::Unavailable("database is locked".into())) } else { Ok(()) }
    }
}

impl CredentialLookup for Flaky {
    fn credential(&self, username: &str) -> Result<Option<Credential>, LookupError> {
        self.call()?;
        self.store.credential(username)
    }

    fn credential_by_userhash(
        &self,
        userhash: &str,
        hash: HashFn,
    ) -> Result<Option<(String, Credential)>, LookupError> {
        self.call()?;
        self.store.credential_by_userhash(userhash, hash)
    }
}

fn unavailable(o: &Outcome) -> &LookupError {
    match o {
        Outcome::Unavailable { error, retry_after_secs: 10 } => error,
        other => panic!("expected 503, got {other:?}"),
    }
}

#[test]
fn a_failing_store_is_a_503_and_never_counts_against_the_phone() {
    let v = verifier(Config::new("dls"));
    let store = Flaky::new();
    // Far more requests than any limit, right and wrong, while the store is down.
    for i in 0..200 {
        let pass = if i % 2 == 0 { SECRET_A } else { "wrong" };
        let o = attempt(&v, &store, MAC_A, MAC_A, pass, ip(1), NOW + i);
        assert_eq!(o.status(), 503);
        let error = unavailable(&o);
        assert_eq!(error.to_string(), "credential store unavailable (server fault): database is locked");
        assert!(!format!("{error} {error:?}").contains(SECRET_A));
    }
    assert_eq!(store.calls.get(), 200, "one lookup per answered challenge");
    assert_eq!(v.throttle_len(), 0, "nothing was counted");
    // The store is back: the phone is served at once.
    store.down.set(false);
    assert!(matches!(attempt(&v, &store, MAC_A, MAC_A, SECRET_A, ip(1), NOW + 200), Outcome::Accept { .. }));
}

#[test]
fn a_failing_userhash_lookup_is_a_503_too_and_the_delay_is_configurable() {
    let mut config = Config::new("dls");
    config.store_retry_after_secs = 3;
    config.offer_userhash = true;
    let v = verifier(config);
    let store = Flaky::new();
    let t = target(MAC_A);
    let c = crate::challenge(&v.verify(&request(&t, None, ip(1), NOW), &store));
    let mut a = client::Answer::from_challenge(&c, MAC_A, SECRET_A, &t);
    a.userhash = true;
    let o = v.verify(&request(&t, Some(&a.header()), ip(1), NOW), &store);
    assert!(matches!(o, Outcome::Unavailable { retry_after_secs: 3, .. }), "{o:?}");
    store.down.set(false);
    assert!(matches!(v.verify(&request(&t, Some(&a.header()), ip(1), NOW), &store), Outcome::Accept { .. }));
}

#[test]
fn a_waiting_pair_costs_the_store_nothing() {
    let v = verifier(Config::new("dls"));
    let store = Flaky::new();
    store.down.set(false);
    let mut throttled = 0;
    for i in 0..30 {
        if let Outcome::Throttled { .. } = attempt(&v, &store, MAC_A, MAC_A, "wrong", ip(1), NOW) {
            throttled += 1;
        } else {
            assert!(i < 10, "attempt {i} was evaluated");
        }
    }
    assert_eq!(throttled, 20);
    assert_eq!(store.calls.get(), 10, "no lookup for a throttled attempt");
}

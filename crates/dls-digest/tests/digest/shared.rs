//! Verifiers of several nodes sharing one secret and a [`SharedState`] (a stand-in for the
//! database here): a nonce issued by one is accepted by another, a `(nonce, nc)` once by all
//! of them together, a guesser who spreads over them is counted as by one verifier, the real
//! phone is still served, and a failing shared state is a `503`, never an accept.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dls_digest::{
    Attempt, ChallengeReason, Config, LookupError, NonceId, Outcome, SharedState, ThrottleConfig, ThrottleEvent,
    Verifier,
};

use crate::{MAC_A, NOW, SECRET_A, Store, challenge, client, ip, request, target};

/// What the nodes share: the counts used and the events, in the order recorded.
#[derive(Default)]
struct Ledger {
    uses: Mutex<HashMap<(NonceId, u32), u64>>,
    events: Mutex<Vec<(u64, ThrottleEvent)>>,
    /// Which calls fail: `events`, `record_failure`, `record_use`.
    down: [AtomicBool; 3],
    /// How many times `events` was called.
    reads: AtomicU64,
}

/// One node's view of the ledger: its own events are not handed back to it.
struct View {
    ledger: Arc<Ledger>,
    origin: u64,
    cursor: Mutex<usize>,
}

fn fail(ledger: &Ledger, which: usize) -> Result<(), LookupError> {
    if ledger.down[which].load(Ordering::SeqCst) {
        Err(LookupError::Unavailable("the database is away".into()))
    } else {
        Ok(())
    }
}

static ORIGINS: AtomicU64 = AtomicU64::new(1);

impl SharedState for View {
    fn events(&self, since: u64) -> Result<Vec<ThrottleEvent>, LookupError> {
        self.ledger.reads.fetch_add(1, Ordering::SeqCst);
        fail(&self.ledger, 0)?;
        let events = self.ledger.events.lock().expect("lock");
        let mut cursor = self.cursor.lock().expect("lock");
        let new = events[*cursor..].iter().filter(|(o, e)| *o != self.origin && e.at >= since).map(|(_, e)| *e);
        let new = new.collect();
        *cursor = events.len();
        Ok(new)
    }

    fn record_failure(&self, event: &ThrottleEvent, _forget_before: u64) -> Result<(), LookupError> {
        fail(&self.ledger, 1)?;
        assert_eq!(event.attempt, Attempt::Failed);
        self.ledger.events.lock().expect("lock").push((self.origin, *event));
        Ok(())
    }

    fn record_use(
        &self,
        nonce: NonceId,
        nc: u32,
        expires_at: u64,
        event: &ThrottleEvent,
        _forget_before: u64,
    ) -> Result<bool, LookupError> {
        fail(&self.ledger, 2)?;
        assert!(expires_at > nonce.issued, "kept while the nonce is usable");
        let mut uses = self.ledger.uses.lock().expect("lock");
        if uses.contains_key(&(nonce, nc)) {
            return Ok(false);
        }
        uses.insert((nonce, nc), expires_at);
        assert_eq!(event.attempt, Attempt::Succeeded);
        self.ledger.events.lock().expect("lock").push((self.origin, *event));
        Ok(true)
    }
}

/// `n` verifiers with one secret and one ledger.
fn cluster(n: usize, config: &Config) -> (Arc<Ledger>, Vec<Verifier>) {
    let ledger = Arc::new(Ledger::default());
    let nodes = (0..n)
        .map(|_| {
            let view =
                View { ledger: ledger.clone(), origin: ORIGINS.fetch_add(1, Ordering::SeqCst), cursor: Mutex::new(0) };
            Verifier::new(config.clone(), &[0x42; 32]).expect("valid config").with_shared_state(Box::new(view))
        })
        .collect();
    (ledger, nodes)
}

/// The challenge of `from`, answered for `user`/`pass` with count `nc`.
fn answer(from: &Verifier, user: &str, pass: &str, source: IpAddr, now: u64) -> client::Answer {
    let t = target(MAC_A);
    let c = challenge(&from.verify(&request(&t, None, source, now), &Store::phones()));
    client::Answer::from_challenge(&c, user, pass, &t)
}

fn send(to: &Verifier, header: &str, source: IpAddr, now: u64) -> Outcome {
    to.verify(&request(&target(MAC_A), Some(header), source, now), &Store::phones())
}

#[test]
fn a_nonce_from_one_node_is_accepted_on_another_and_once_by_all() {
    let (_, nodes) = cluster(2, &Config::new("dls"));
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ans = answer(a, MAC_A, SECRET_A, ip(1), NOW);
    let header = ans.header();
    assert!(matches!(send(b, &header, ip(1), NOW + 1), Outcome::Accept { .. }));
    for node in [b, a] {
        let o = send(node, &header, ip(1), NOW + 2);
        assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::Replayed, stale: false, .. }), "{o:?}");
    }
    // The next count of the same nonce, on the node that issued it.
    ans.nc = 2;
    assert!(matches!(send(a, &ans.header(), ip(1), NOW + 3), Outcome::Accept { .. }));
    assert!(matches!(send(b, &ans.header(), ip(1), NOW + 3), Outcome::Challenge { .. }));

    // Without the shared state, the same secret alone would let the header through twice.
    let (a, b) = (
        Verifier::new(Config::new("dls"), &[0x42; 32]).expect("ok"),
        Verifier::new(Config::new("dls"), &[0x42; 32]).expect("ok"),
    );
    let header = answer(&a, MAC_A, SECRET_A, ip(1), NOW).header();
    assert!(matches!(send(&a, &header, ip(1), NOW), Outcome::Accept { .. }));
    assert!(matches!(send(&b, &header, ip(1), NOW), Outcome::Accept { .. }), "what the shared state is for");
}

#[test]
fn nodes_sharing_a_secret_issue_distinct_nonces() {
    let (_, nodes) = cluster(3, &Config::new("dls"));
    let mut seen = HashSet::new();
    for node in &nodes {
        for _ in 0..100 {
            let c = answer(node, MAC_A, SECRET_A, ip(1), NOW);
            assert!(seen.insert(c.nonce), "a nonce issued twice in one second");
        }
    }
}

/// Wrong guesses from one address for the phone's MAC, all at one time, sent to the nodes
/// in turn (each challenged by the node before): how many are evaluated before the first
/// `429`.
fn guesses_until_throttled(nodes: &[Verifier], source: IpAddr) -> usize {
    for i in 0..1000 {
        let from = &nodes[i % nodes.len()];
        let to = &nodes[(i + 1) % nodes.len()];
        let header = answer(from, MAC_A, &format!("guess{i:07}"), source, NOW).header();
        match send(to, &header, source, NOW) {
            Outcome::Throttled { .. } => return i,
            Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. } => {}
            other => panic!("guess {i}: {other:?}"),
        }
    }
    panic!("never throttled");
}

#[test]
fn a_guesser_spread_over_the_nodes_gets_one_nodes_allowance() {
    let config = Config::new("dls");
    let burst = usize::try_from(ThrottleConfig::default().pair_burst).expect("small");
    let (_, one) = cluster(1, &config);
    assert_eq!(guesses_until_throttled(&one, ip(66)), burst);
    for n in [2, 3] {
        let (ledger, nodes) = cluster(n, &config);
        assert_eq!(guesses_until_throttled(&nodes, ip(66)), burst, "{n} nodes");
        // Every node refuses the guesser now, and every node serves the real phone at its
        // own address.
        for (i, node) in nodes.iter().enumerate() {
            let header = answer(node, MAC_A, "one more", ip(66), NOW).header();
            assert!(matches!(send(node, &header, ip(66), NOW), Outcome::Throttled { .. }), "node {i}");
            let header = answer(&nodes[(i + 1) % n], MAC_A, SECRET_A, ip(1), NOW).header();
            assert!(matches!(send(node, &header, ip(1), NOW), Outcome::Accept { .. }), "node {i}");
        }
        // Only what was evaluated was recorded: no event for a throttled request.
        let failures = ledger.events.lock().expect("lock").iter().filter(|(_, e)| e.attempt == Attempt::Failed).count();
        assert_eq!(failures, burst);
        // A node that holds the guesser back, and caught up this second, asks the shared
        // state nothing more; in the next second, once.
        let reads = ledger.reads.load(Ordering::SeqCst);
        for i in 0..100 {
            let header = answer(&nodes[0], MAC_A, &format!("flood{i}"), ip(66), NOW).header();
            assert!(matches!(send(&nodes[0], &header, ip(66), NOW), Outcome::Throttled { .. }));
        }
        assert_eq!(ledger.reads.load(Ordering::SeqCst), reads, "a refused guess costs the store nothing");
        for i in 0..100 {
            let header = answer(&nodes[0], MAC_A, &format!("flood{i}"), ip(66), NOW + 1).header();
            assert!(matches!(send(&nodes[0], &header, ip(66), NOW + 1), Outcome::Throttled { .. }));
        }
        assert_eq!(ledger.reads.load(Ordering::SeqCst), reads + 1, "one read a second");
    }
}

/// Many addresses guessing one MAC, spread over three nodes, one guess a second: the nodes
/// together evaluate as many as one node would, and the phone is served at its own address
/// on every node throughout.
#[test]
fn a_botnet_spread_over_the_nodes_is_counted_as_on_one() {
    let config = Config::new("dls");
    let run = |nodes: &[Verifier]| {
        let mut evaluated = 0;
        for i in 0..600u64 {
            let source = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i % 100).expect("small")));
            let node = usize::try_from(i).expect("small") % nodes.len();
            let header = answer(&nodes[node], MAC_A, &format!("{i:012}"), source, NOW + i).header();
            match send(&nodes[(node + 1) % nodes.len()], &header, source, NOW + i) {
                Outcome::Throttled { .. } => {}
                Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. } => evaluated += 1,
                other => panic!("guess {i}: {other:?}"),
            }
            if i % 50 == 0 {
                let header = answer(&nodes[node], MAC_A, SECRET_A, ip(1), NOW + i).header();
                assert!(matches!(send(&nodes[node], &header, ip(1), NOW + i), Outcome::Accept { .. }), "at {i}");
            }
        }
        evaluated
    };
    let (_, one) = cluster(1, &config);
    let (_, three) = cluster(3, &config);
    let (alone, together) = (run(&one), run(&three));
    assert!(alone < 600, "the username ceiling held: {alone}");
    assert_eq!(together, alone);
}

#[test]
fn a_failing_shared_state_is_a_503_and_never_an_accept() {
    let (ledger, nodes) = cluster(2, &Config::new("dls"));
    let (a, b) = (&nodes[0], &nodes[1]);
    for which in 0..3 {
        ledger.down[which].store(true, Ordering::SeqCst);
        for pass in [SECRET_A, "wrong"] {
            let header = answer(a, MAC_A, pass, ip(1), NOW).header();
            match send(b, &header, ip(1), NOW) {
                Outcome::Unavailable { retry_after_secs: 10, .. } => {}
                // A right digest is never decided without its use recorded; a wrong one only
                // when the failure is what cannot be recorded.
                Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. } if pass == "wrong" && which == 2 => {}
                Outcome::Accept { .. } if pass == SECRET_A && which == 1 => {}
                other => panic!("call {which} down, {pass}: {other:?}"),
            }
        }
        ledger.down[which].store(false, Ordering::SeqCst);
    }
    // A header refused for the store's failure is accepted once the store is back: its count
    // was not used up.
    ledger.down[2].store(true, Ordering::SeqCst);
    let header = answer(a, MAC_A, SECRET_A, ip(1), NOW).header();
    assert!(matches!(send(b, &header, ip(1), NOW), Outcome::Unavailable { .. }));
    ledger.down[2].store(false, Ordering::SeqCst);
    assert!(matches!(send(b, &header, ip(1), NOW), Outcome::Accept { .. }));
    // A replay tests no password: no failure is recorded for it.
    let before = ledger.events.lock().expect("lock").len();
    assert!(matches!(send(a, &header, ip(1), NOW), Outcome::Challenge { reason: ChallengeReason::Replayed, .. }));
    assert_eq!(ledger.events.lock().expect("lock").len(), before);
}

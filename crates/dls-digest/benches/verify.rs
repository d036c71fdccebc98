//! One `Verifier::verify` of a correct answer (parse, nonce check, lookup, digest, replay
//! cache, throttle), MD5 and SHA-256, beside one bare hash of the same header bytes; and MD5
//! with a `SharedState` in memory (the verifier's own work with several nodes, without the
//! store's round trips).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::HashSet;
use std::sync::Mutex;

use dls_digest::{
    Algorithm, Authorization, Config, Credential, HashFn, LookupError, NonceId, Outcome, Request, SharedState,
    ThrottleEvent, Verifier,
};

/// A shared state in memory: the counts used in a set, the events in a list; no other node.
#[derive(Default)]
struct InMemory {
    uses: Mutex<HashSet<(NonceId, u32)>>,
    events: Mutex<Vec<ThrottleEvent>>,
}

impl SharedState for InMemory {
    fn events(&self, _since: u64) -> Result<Vec<ThrottleEvent>, LookupError> {
        Ok(Vec::new())
    }

    fn record_failure(&self, event: &ThrottleEvent, _forget_before: u64) -> Result<(), LookupError> {
        self.events.lock().map_err(|_| LookupError::Unavailable("poisoned".into()))?.push(*event);
        Ok(())
    }

    fn record_use(
        &self,
        nonce: NonceId,
        nc: u32,
        _expires_at: u64,
        event: &ThrottleEvent,
        _forget_before: u64,
    ) -> Result<bool, LookupError> {
        let first = self.uses.lock().map_err(|_| LookupError::Unavailable("poisoned".into()))?.insert((nonce, nc));
        if first {
            self.record_failure(event, 0)?;
        }
        Ok(first)
    }
}

const URI: &str = "/provisioning/001a2b3c4d5e.xml";
const NOW: u64 = 1_700_000_000;

fn header(alg: Algorithm, nonce: &str, opaque: &str, nc: u32) -> String {
    let h = alg.hash();
    let ha1 = h.hex(&[b"001a2b3c4d5e", b"dls", b"123456789012"]);
    let ha2 = h.hex(&[b"GET", URI.as_bytes()]);
    let nc = format!("{nc:08x}");
    let response = h.hex(&[ha1.as_bytes(), nonce.as_bytes(), nc.as_bytes(), b"0a4f113b", b"auth", ha2.as_bytes()]);
    format!(
        "Digest username=\"001a2b3c4d5e\", realm=\"dls\", nonce=\"{nonce}\", uri=\"{URI}\", algorithm={alg}, \
         qop=auth, nc={nc}, cnonce=\"0a4f113b\", response=\"{}\", opaque=\"{opaque}\"",
        response.as_str()
    )
}

fn bench(c: &mut Criterion) {
    let lookup = |u: &str| Ok(u.eq_ignore_ascii_case("001a2b3c4d5e").then(|| Credential::password("123456789012")));
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut group = c.benchmark_group("digest");
    for (alg, hash, shared) in [
        (Algorithm::Md5, HashFn::Md5, false),
        (Algorithm::Sha256, HashFn::Sha256, false),
        (Algorithm::Md5, HashFn::Md5, true),
    ] {
        let mut config = Config::new("dls");
        config.challenges = vec![alg];
        let mut v = Verifier::new(config, &[7; 32]).expect("config");
        if shared {
            v = v.with_shared_state(Box::new(InMemory::default()));
        }
        let first = Request { method: "GET", target: URI, authorization: None, source, now: NOW };
        let Outcome::Challenge { www_authenticate, .. } = v.verify(&first, &lookup) else { panic!("no challenge") };
        let ch = Authorization::parse(www_authenticate[0].as_bytes()).expect("challenge");
        let (nonce, opaque) = (ch.param("nonce").unwrap_or(""), ch.param("opaque").unwrap_or(""));
        let mut nc = 0u32;
        let name = if shared { format!("verify/{alg}, shared state in memory") } else { format!("verify/{alg}") };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    nc += 1;
                    header(alg, nonce, opaque, nc)
                },
                |h| {
                    let o = v.verify(&Request { authorization: Some(h.as_bytes()), ..first }, &lookup);
                    assert!(matches!(o, Outcome::Accept { .. }));
                    o
                },
                BatchSize::SmallInput,
            );
        });
        if shared {
            continue;
        }
        let same_bytes = header(alg, nonce, opaque, 1);
        group.bench_function(format!("baseline: one {alg} of the header bytes"), |b| {
            b.iter(|| hash.hex(&[black_box(same_bytes.as_bytes())]));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

//! Sessions: the state of interactions in progress, keyed by the `JSESSIONID` cookie.
//! Bounded in number and in time (the service's [`Clock`]).
//!
//! Two tables ([`Sessions`]): [`MemorySessions`], in this process (one node: no write to
//! the store per message), and [`StoreSessions`], in the store ([`SessionStore`]), so that
//! an interaction goes on on whichever node its next message reaches, and after the node
//! that began it stopped. [`crate::service`] chooses (`sessions_for`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dls_engine::{Session, UnixTime};
use dls_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use tracing::{error, warn};

use crate::clock::Clock;

/// Where the sessions of interactions in progress are kept.
pub(crate) enum Sessions {
    /// In this process.
    Memory(MemorySessions),
    /// In the store, for every node.
    Store(StoreSessions),
}

impl Sessions {
    /// Takes the session out while its message is handled (a second message with the same
    /// cookie in the meantime, on this node or another, finds none). The store's table
    /// runs off the executor; its failure is an error (the message is not handled).
    pub(crate) async fn take(&self, id: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.take(id)),
            Self::Store(s) => {
                let (table, id) = (s.clone(), id.to_owned());
                crate::tasks::spawn_blocking(move || table.take(&id))
                    .await
                    .map_err(|e| StoreError::Io(format!("the session task failed: {e}")))?
            }
        }
    }

    /// Keeps a session for its next message. Blocks with the store's table: call it off
    /// the executor.
    pub(crate) fn put(&self, id: String, session: Session) {
        match self {
            Self::Memory(m) => m.put(id, session),
            Self::Store(s) => s.put(&id, &session),
        }
    }

    /// Whether no interaction is in progress (expired sessions do not count). Sessions in
    /// the store do not count either: another node goes on with them.
    pub(crate) fn is_idle(&self) -> bool {
        match self {
            Self::Memory(m) => m.is_idle(),
            Self::Store(_) => true,
        }
    }
}

/// The sessions of this process, in memory.
pub(crate) struct MemorySessions {
    inner: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    max: usize,
    clock: Arc<dyn Clock>,
}

struct Entry {
    session: Session,
    expires: Instant,
}

impl MemorySessions {
    pub(crate) fn new(ttl: Duration, max: usize, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Mutex::new(HashMap::new()), ttl, max, clock }
    }

    fn take(&self, id: &str) -> Option<Session> {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = map.remove(id)?;
        (e.expires > self.clock.instant()).then_some(e.session)
    }

    fn is_idle(&self) -> bool {
        let now = self.clock.instant();
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().all(|e| e.expires <= now)
    }

    /// When full, expired sessions are dropped first, then the one closest to expiry.
    fn put(&self, id: String, session: Session) {
        let now = self.clock.instant();
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= self.max {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.max
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id, Entry { session, expires: now + self.ttl });
    }
}

/// The sessions in the store, shared by the nodes: each encoded by the engine
/// ([`Session::to_bytes`]: without the secrets the phone reported), under the SHA-256 of
/// its cookie (the store never holds a cookie a phone could present), expiring on the
/// service's clock. Every [`Self::PRUNE_EVERY`]th put (the first included) prunes the
/// expired sessions and those over `max-sessions` (those closest to expiry first): the
/// table holds at most `max-sessions` and what the nodes put since their last prune.
#[derive(Clone)]
pub(crate) struct StoreSessions(Arc<StoreTable>);

struct StoreTable {
    store: Arc<dyn Store>,
    ttl: Duration,
    max: usize,
    clock: Arc<dyn Clock>,
    puts: AtomicU64,
}

impl StoreSessions {
    /// How many puts one prune covers.
    pub(crate) const PRUNE_EVERY: u64 = 64;

    pub(crate) fn new(store: Arc<dyn Store>, ttl: Duration, max: usize, clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(StoreTable { store, ttl, max, clock, puts: AtomicU64::new(0) }))
    }

    /// The session of cookie `id`, taken out of the store; one that does not decode is
    /// logged and none. Blocks.
    fn take(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let t = &self.0;
        let Some(bytes) = t.store.take_session(&store_key(id), t.clock.now())? else { return Ok(None) };
        match Session::from_bytes(&bytes) {
            Ok(session) => Ok(Some(session)),
            Err(e) => {
                warn!(error = %e, bytes = bytes.len(), "a stored session does not decode: the interaction is not continued");
                Ok(None)
            }
        }
    }

    /// Keeps `session` in the store; a session that cannot be kept is logged (its
    /// interaction then ends at its next message). Blocks.
    fn put(&self, id: &str, session: &Session) {
        let t = &self.0;
        let now = t.clock.now();
        if t.puts.fetch_add(1, Ordering::Relaxed).is_multiple_of(Self::PRUNE_EVERY) {
            match t.store.prune_sessions(now, t.max.saturating_sub(1)) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "expired sessions pruned"),
                Err(e) => error!(error = %e, "sessions not pruned"),
            }
        }
        let bytes = match session.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "the session is not kept: its interaction ends at the next message");
                return;
            }
        };
        let expires_at = UnixTime(now.0.saturating_add(t.ttl.as_secs()));
        if let Err(e) = t.store.put_session(&store_key(id), session.mac, expires_at, &bytes) {
            error!(error = %e, "the session is not kept: its interaction ends at the next message");
        }
    }
}

/// The key of a session in the store: the SHA-256 of its cookie, in hex.
fn store_key(id: &str) -> String {
    hex::encode_upper(Sha256::digest(id.as_bytes()))
}

/// A fresh session id: [`random_id`], or none (empty) when the random source fails:
/// never a predictable id.
pub(crate) fn new_id() -> String {
    random_id().unwrap_or_default()
}

/// 16 bytes from the operating system's CSPRNG as upper-case hex (the vendor's style of
/// session id; also the download tokens of deployment jobs); `None` if the source fails.
pub(crate) fn random_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode_upper(b))
}

/// The `JSESSIONID` value in a `Cookie` header, if any.
pub(crate) fn cookie_id(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|kv| kv.strip_prefix("JSESSIONID="))
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use dls_message::MacAddr;
    use dls_store::SessionStore;
    use dls_store_sqlite::SqliteStore;

    /// A session of device `n`, as the engine would have encoded it.
    fn session(n: u8) -> Session {
        let json = format!(
            r#"{{"version":1,"session":{{"mac":"001AE83C00{n:02X}","reason":"start-up","started":1,"nonces":["a"],
            "max_items":-1,"awaiting":"read-all","collected":[],"collected_bytes":0,"pending_writes":[],
            "opening":[],"jobs":[]}}}}"#
        );
        Session::from_bytes(json.as_bytes()).expect("a session")
    }

    fn table(max: usize) -> (Arc<SqliteStore>, ManualClock, StoreSessions) {
        let store = Arc::new(SqliteStore::open_in_memory().expect("opens"));
        let clock = ManualClock::new(UnixTime(1_000_000));
        let sessions = StoreSessions::new(store.clone(), Duration::from_secs(60), max, Arc::new(clock.clone()));
        (store, clock, sessions)
    }

    #[test]
    fn the_store_table_keeps_a_session_under_its_cookies_hash_until_taken_or_expired() {
        let (store, clock, sessions) = table(100);
        sessions.put("COOKIE1", &session(1));
        assert_eq!(sessions.take("COOKIE1").expect("takes"), Some(session(1)));
        assert_eq!(sessions.take("COOKIE1").expect("takes"), None, "taken once");
        // Under the hash of the cookie, not the cookie.
        sessions.put("COOKIE1", &session(1));
        assert_eq!(store.take_session("COOKIE1", UnixTime(0)).expect("takes"), None);
        assert!(store.take_session(&store_key("COOKIE1"), UnixTime(0)).expect("takes").is_some());
        assert_eq!(store_key("COOKIE1").len(), 64);
        // Expiry on the service's clock.
        sessions.put("COOKIE2", &session(2));
        clock.advance(Duration::from_secs(59));
        assert_eq!(sessions.take("COOKIE2").expect("takes"), Some(session(2)));
        sessions.put("COOKIE2", &session(2));
        clock.advance(Duration::from_secs(61));
        assert_eq!(sessions.take("COOKIE2").expect("takes"), None);
    }

    #[test]
    fn a_stored_session_that_does_not_decode_is_none() {
        let (store, _clock, sessions) = table(100);
        for bytes in [&b"garbage"[..], b"{\"version\":99,\"session\":{}}", &[0xFF; 3]] {
            store.put_session(&store_key("BAD"), MacAddr::from_bytes([0; 6]), UnixTime(u64::MAX), bytes).expect("puts");
            assert_eq!(sessions.take("BAD").expect("takes"), None);
            assert_eq!(store.take_session(&store_key("BAD"), UnixTime(0)).expect("takes"), None, "taken out");
        }
    }

    #[test]
    fn the_store_table_is_bounded_at_its_prunes() {
        let (store, clock, sessions) = table(3);
        let puts = usize::try_from(StoreSessions::PRUNE_EVERY).expect("small") + 1;
        for n in 0..puts {
            clock.advance(Duration::from_secs(1));
            sessions.put(&format!("C{n}"), &session(1));
        }
        // The last put pruned to 2 and added one: the three that expire last are left.
        let left: Vec<usize> =
            (0..puts).filter(|n| sessions.take(&format!("C{n}")).expect("takes").is_some()).collect();
        assert_eq!(left, [puts - 3, puts - 2, puts - 1]);
        assert_eq!(store.prune_sessions(UnixTime(u64::MAX), 0).expect("prunes"), 0, "nothing else left");
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(cookie_id("JSESSIONID=ABC123"), Some("ABC123"));
        assert_eq!(cookie_id("a=b; JSESSIONID=ABC123; c=d"), Some("ABC123"));
        assert_eq!(cookie_id("JSESSIONID="), None);
        assert_eq!(cookie_id("JSESSIONID=../x"), None);
        assert_eq!(cookie_id("XJSESSIONID=1"), None);
        assert_eq!(new_id().len(), 32);
        assert_ne!(new_id(), new_id());
    }
}

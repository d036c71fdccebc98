//! Sessions: the state of interactions in progress, keyed by the `JSESSIONID` cookie.
//! Bounded in number and in time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

use dls_engine::Session;

pub(crate) struct Sessions {
    inner: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    max: usize,
    clock: Arc<dyn Clock>,
}

struct Entry {
    session: Session,
    expires: Instant,
}

impl Sessions {
    pub(crate) fn new(ttl: Duration, max: usize, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Mutex::new(HashMap::new()), ttl, max, clock }
    }

    /// Takes the session out while its message is handled (a second message with the same
    /// cookie in the meantime finds none).
    pub(crate) fn take(&self, id: &str) -> Option<Session> {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = map.remove(id)?;
        (e.expires > self.clock.instant()).then_some(e.session)
    }

    /// Whether no interaction is in progress (expired sessions do not count).
    pub(crate) fn is_idle(&self) -> bool {
        let now = self.clock.instant();
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().all(|e| e.expires <= now)
    }

    /// Keeps a session for its next message. When full, expired sessions are dropped
    /// first, then the one closest to expiry.
    pub(crate) fn put(&self, id: String, session: Session) {
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

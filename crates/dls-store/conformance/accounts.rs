//! Accounts, API tokens and console sessions (`AccountStore`): kept by name and by hash,
//! an account's tokens and sessions go with it, a new password ends its sessions, bounds.

use std::sync::OnceLock;

use dls_accounts::{Role, password, secret};
use dls_engine::UnixTime;
use dls_store::rules::accounts::{MAX_SESSIONS_PER_ACCOUNT, MAX_TOKENS_PER_ACCOUNT};
use dls_store::traits::*;
use dls_store::{Account, StoreError};

use super::store;

/// A real Argon2id hash, made once per test binary (hashing costs some milliseconds).
pub(crate) fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash("correct horse battery").expect("hashes"))
}

fn other_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash("another password entirely").expect("hashes"))
}

fn key(n: u8) -> String {
    secret::session_key(&format!("{n:064x}"))
}

#[test]
fn accounts_are_created_listed_changed_and_deleted() {
    let s = store();
    assert!(s.accounts().expect("lists").is_empty());
    let alice = s.add_account("alice", Role::Admin, hash(), UnixTime(10)).expect("adds");
    assert_eq!(
        alice,
        Account {
            name: "alice".into(),
            role: Role::Admin,
            created_at: UnixTime(10),
            updated_at: UnixTime(10),
            last_login_at: None
        }
    );
    s.add_account("bob", Role::Viewer, other_hash(), UnixTime(11)).expect("adds");
    let err = s.add_account("alice", Role::Viewer, hash(), UnixTime(12)).expect_err("taken");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let names: Vec<String> = s.accounts().expect("lists").into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(s.account("alice").expect("reads"), Some(alice));
    assert_eq!(s.account("carol").expect("reads"), None);
    // The hash comes back as kept, and verifies.
    let stored = s.password_hash("alice").expect("reads").expect("has one");
    assert!(password::verify("correct horse battery", Some(&stored)));
    assert_eq!(s.password_hash("carol").expect("reads"), None);
    // Role and password changes.
    let changed = s.set_role("bob", Role::Operator, UnixTime(20)).expect("changes");
    assert_eq!((changed.role, changed.updated_at, changed.created_at), (Role::Operator, UnixTime(20), UnixTime(11)));
    assert!(matches!(s.set_role("carol", Role::Admin, UnixTime(20)), Err(StoreError::NotFound { .. })));
    s.set_password("bob", hash(), UnixTime(21)).expect("changes");
    assert_eq!(s.password_hash("bob").expect("reads").as_deref(), Some(hash()));
    assert!(matches!(s.set_password("carol", hash(), UnixTime(21)), Err(StoreError::NotFound { .. })));
    s.record_login("bob", UnixTime(30)).expect("records");
    assert_eq!(s.account("bob").expect("reads").expect("exists").last_login_at, Some(UnixTime(30)));
    assert!(s.delete_account("bob").expect("deletes"));
    assert!(!s.delete_account("bob").expect("deletes"), "gone already");
    assert_eq!(s.account("bob").expect("reads"), None);
    // A deleted name may be taken again.
    s.add_account("bob", Role::Viewer, hash(), UnixTime(40)).expect("adds again");
}

#[test]
fn bad_names_and_hashes_are_refused() {
    let s = store();
    for bad in ["", "Alice", "admin-token", "a:b", "<script>", &"a".repeat(65)] {
        let err = s.add_account(bad, Role::Viewer, hash(), UnixTime(1)).expect_err(bad);
        assert!(matches!(err, StoreError::Invalid(_)), "{bad:?}: {err:?}");
    }
    for bad in ["", "plain text", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$YWJj"] {
        let err = s.add_account("alice", Role::Viewer, bad, UnixTime(1)).expect_err(bad);
        assert!(matches!(err, StoreError::Invalid(_)), "{bad:?}: {err:?}");
    }
    s.add_account("alice", Role::Viewer, hash(), UnixTime(1)).expect("adds");
    assert!(matches!(s.set_password("alice", "plain", UnixTime(2)), Err(StoreError::Invalid(_))));
    assert!(s.accounts().expect("lists").len() == 1);
}

#[test]
fn tokens_are_kept_by_hash_and_go_with_their_account() {
    let s = store();
    s.add_account("alice", Role::Operator, hash(), UnixTime(1)).expect("adds");
    s.add_account("bob", Role::Viewer, hash(), UnixTime(1)).expect("adds");
    let token = secret::new_token().expect("random");
    let k = secret::token_hash(&token);
    let record = s.add_token("alice", "ci", &k, UnixTime(5)).expect("adds");
    assert_eq!((record.account.as_str(), record.name.as_str(), record.last_used_at), ("alice", "ci", None));
    s.add_token("alice", "backup", &key(2), UnixTime(6)).expect("adds");
    s.add_token("bob", "ci", &key(3), UnixTime(7)).expect("a name is unique per account only");
    let err = s.add_token("alice", "ci", &key(4), UnixTime(8)).expect_err("taken");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let err = s.add_token("alice", "other", &k, UnixTime(8)).expect_err("the same key twice");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(matches!(s.add_token("carol", "ci", &key(5), UnixTime(8)), Err(StoreError::NotFound { .. })));
    for bad in ["", "a b", "a:b"] {
        assert!(matches!(s.add_token("alice", bad, &key(6), UnixTime(8)), Err(StoreError::Invalid(_))), "{bad:?}");
    }
    assert!(matches!(s.add_token("alice", "x", "not a key", UnixTime(8)), Err(StoreError::Invalid(_))));
    let listed: Vec<(String, String)> =
        s.tokens(None).expect("lists").into_iter().map(|t| (t.account, t.name)).collect();
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    assert_eq!(listed, pairs(&[("alice", "backup"), ("alice", "ci"), ("bob", "ci")]));
    assert_eq!(s.tokens(Some("bob")).expect("lists").len(), 1);
    assert!(s.tokens(Some("carol")).expect("lists").is_empty());

    // Use: found by hash, its last use recorded at most once a minute.
    let (account, name) = s.use_token(&k, UnixTime(100)).expect("reads").expect("found");
    assert_eq!((account.name.as_str(), account.role, name.as_str()), ("alice", Role::Operator, "ci"));
    let last = |s: &dyn Store| s.tokens(Some("alice")).expect("lists").into_iter().find(|t| t.name == "ci");
    assert_eq!(last(&s).expect("listed").last_used_at, Some(UnixTime(100)));
    s.use_token(&k, UnixTime(130)).expect("reads").expect("found");
    assert_eq!(last(&s).expect("listed").last_used_at, Some(UnixTime(100)), "within the minute");
    s.use_token(&k, UnixTime(160)).expect("reads").expect("found");
    assert_eq!(last(&s).expect("listed").last_used_at, Some(UnixTime(160)));
    assert_eq!(s.use_token(&key(99), UnixTime(1)).expect("reads"), None);
    assert_eq!(s.use_token("dls_not-a-hash", UnixTime(1)).expect("reads"), None);
    assert_eq!(s.use_token(&token, UnixTime(1)).expect("reads"), None, "the token itself is not a key");

    // Revoked: gone at once.
    assert!(s.revoke_token("alice", "ci").expect("revokes"));
    assert!(!s.revoke_token("alice", "ci").expect("revokes"));
    assert_eq!(s.use_token(&k, UnixTime(200)).expect("reads"), None);
    // A role change applies to the tokens at once; a deleted account takes its tokens along.
    s.set_role("alice", Role::Viewer, UnixTime(201)).expect("changes");
    assert_eq!(s.use_token(&key(2), UnixTime(202)).expect("reads").expect("found").0.role, Role::Viewer);
    assert!(s.delete_account("alice").expect("deletes"));
    assert_eq!(s.use_token(&key(2), UnixTime(203)).expect("reads"), None);
    assert_eq!(s.tokens(None).expect("lists").len(), 1);
}

#[test]
fn tokens_per_account_are_bounded() {
    let s = store();
    s.add_account("alice", Role::Admin, hash(), UnixTime(1)).expect("adds");
    for n in 0..MAX_TOKENS_PER_ACCOUNT {
        let k = secret::token_hash(&format!("token {n}"));
        s.add_token("alice", &format!("t{n}"), &k, UnixTime(2)).expect("adds");
    }
    let err = s.add_token("alice", "one-more", &key(1), UnixTime(3)).expect_err("bounded");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(s.revoke_token("alice", "t0").expect("revokes"));
    s.add_token("alice", "one-more", &key(1), UnixTime(3)).expect("room again");
}

#[test]
fn sessions_are_kept_by_hash_touched_ended_and_pruned() {
    let s = store();
    s.add_account("alice", Role::Operator, hash(), UnixTime(1)).expect("adds");
    s.add_account("bob", Role::Viewer, hash(), UnixTime(1)).expect("adds");
    s.add_console_session(&key(1), "alice", UnixTime(100)).expect("starts");
    s.add_console_session(&key(2), "bob", UnixTime(100)).expect("starts");
    assert!(matches!(s.add_console_session(&key(3), "carol", UnixTime(100)), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.add_console_session("short", "alice", UnixTime(100)), Err(StoreError::Invalid(_))));
    let session = s.console_session(&key(1)).expect("reads").expect("found");
    assert_eq!(
        (session.account.name.as_str(), session.created_at, session.last_seen_at),
        ("alice", UnixTime(100), UnixTime(100))
    );
    assert_eq!(s.console_session(&key(3)).expect("reads"), None);
    assert_eq!(s.console_session("not a key").expect("reads"), None);
    // Touched: the last seen time moves on, never back.
    s.touch_console_session(&key(1), UnixTime(150)).expect("touches");
    s.touch_console_session(&key(1), UnixTime(120)).expect("touches");
    assert_eq!(s.console_session(&key(1)).expect("reads").expect("found").last_seen_at, UnixTime(150));
    // A role change shows at the next request.
    s.set_role("alice", Role::Admin, UnixTime(151)).expect("changes");
    assert_eq!(s.console_session(&key(1)).expect("reads").expect("found").account.role, Role::Admin);
    // Logout.
    assert!(s.delete_console_session(&key(2)).expect("ends"));
    assert!(!s.delete_console_session(&key(2)).expect("ends"));
    assert_eq!(s.console_session(&key(2)).expect("reads"), None);
    // A new password ends the account's sessions.
    s.add_console_session(&key(4), "bob", UnixTime(160)).expect("starts");
    s.set_password("alice", other_hash(), UnixTime(170)).expect("changes");
    assert_eq!(s.console_session(&key(1)).expect("reads"), None);
    assert!(s.console_session(&key(4)).expect("reads").is_some(), "bob's is not alice's");
    // Deleting the account ends its sessions.
    s.add_console_session(&key(5), "alice", UnixTime(180)).expect("starts");
    s.delete_account("alice").expect("deletes");
    assert_eq!(s.console_session(&key(5)).expect("reads"), None);
    // Pruned by idle time or by age.
    s.add_console_session(&key(6), "bob", UnixTime(100)).expect("starts");
    s.touch_console_session(&key(6), UnixTime(500)).expect("touches");
    s.add_console_session(&key(7), "bob", UnixTime(400)).expect("starts");
    // key 4: made at 160, seen at 160; key 6: made at 100, seen at 500; key 7: 400, 400.
    assert_eq!(s.prune_console_sessions(UnixTime(300), UnixTime(0)).expect("prunes"), 1, "4 idle");
    assert_eq!(s.prune_console_sessions(UnixTime(0), UnixTime(150)).expect("prunes"), 1, "6 too old");
    assert!(s.console_session(&key(7)).expect("reads").is_some());
    assert_eq!(s.prune_console_sessions(UnixTime(0), UnixTime(0)).expect("prunes"), 0);
}

#[test]
fn sessions_per_account_are_bounded_the_least_used_go() {
    let s = store();
    s.add_account("alice", Role::Viewer, hash(), UnixTime(1)).expect("adds");
    let n = u8::try_from(MAX_SESSIONS_PER_ACCOUNT).expect("small");
    for i in 0..n {
        s.add_console_session(&key(i), "alice", UnixTime(100 + u64::from(i))).expect("starts");
    }
    // The first is used again: the second is now the least lately used.
    s.touch_console_session(&key(0), UnixTime(1000)).expect("touches");
    s.add_console_session(&key(200), "alice", UnixTime(1001)).expect("starts");
    assert!(s.console_session(&key(0)).expect("reads").is_some());
    assert_eq!(s.console_session(&key(1)).expect("reads"), None);
    assert!(s.console_session(&key(200)).expect("reads").is_some());
    assert!(s.console_session(&key(2)).expect("reads").is_some());
}

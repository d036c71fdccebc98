//! `dls account …` against the real `dls serve`: accounts with a password file or a
//! one-time password, roles, tokens that work until revoked, clear errors.

use crate::common::{dls, serve};

/// `dls ARGS… --data-dir DATA` (the admin token in the data directory).
fn admin(data: &std::path::Path, args: &[&str]) -> crate::common::Run {
    let mut all: Vec<&str> = args.to_vec();
    let d = data.to_string_lossy().into_owned();
    all.extend(["--data-dir", &d]);
    dls(&all, b"")
}

#[test]
fn accounts_and_tokens_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let s = serve(&data);
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "a long enough password\nignored\n").expect("writes");
    let pw = pw.to_string_lossy().into_owned();

    // With a password file: nothing on stdout. Without one (stdin is no terminal here): a
    // one-time password, alone on stdout.
    let run = admin(&data, &["account", "add", "alice", "--role", "admin", "--password-file", &pw]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let run = admin(&data, &["account", "add", "bob", "--role", "viewer"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let one_time = run.stdout.trim();
    assert_eq!(one_time.len(), 20, "{}", run.stdout);

    let run = admin(&data, &["account", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert!(rows[0].contains("alice") && rows[0].contains("admin"), "{}", run.stdout);
    assert!(rows[1].contains("bob") && rows[1].contains("viewer"), "{}", run.stdout);

    // A token of bob's: it reads, it may not change anything, it stops when revoked.
    let run = admin(&data, &["account", "token", "add", "bob", "laptop"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let token = run.stdout.trim().to_owned();
    assert!(token.starts_with("dls_"), "{token}");
    let with_token = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &s.admin, "--token", &token]);
        dls(&all, b"")
    };
    assert_eq!(with_token(&["device", "list"]).code, 0);
    let run = with_token(&["device", "add", "--mac", "00:1A:E8:00:00:51"]);
    assert_eq!(run.code, 4, "refused: {}", run.stderr);
    assert!(run.stderr.contains("it takes operator (403)"), "{}", run.stderr);
    assert_eq!(admin(&data, &["account", "set-role", "bob", "operator"]).code, 0);
    assert_eq!(with_token(&["device", "add", "--mac", "00:1A:E8:00:00:51"]).code, 0, "the new role at once");
    let run = admin(&data, &["account", "token", "list", "bob"]);
    assert!(run.stdout.contains("laptop") && !run.stdout.contains(&token[4..]), "{}", run.stdout);
    assert_eq!(admin(&data, &["account", "token", "revoke", "bob", "laptop"]).code, 0);
    let run = with_token(&["device", "list"]);
    assert_eq!(run.code, 4, "{}", run.stderr);

    // The audit log names who did what.
    let run = admin(&data, &["audit", "--actor", "bob"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("bob:laptop") && run.stdout.contains("device-added"), "{}", run.stdout);

    // Resets, deletes, and clear errors.
    let run = admin(&data, &["account", "reset-password", "bob"]);
    assert_eq!((run.code, run.stdout.trim().len()), (0, 20), "{}", run.stderr);
    assert_ne!(run.stdout.trim(), one_time);
    assert_eq!(admin(&data, &["account", "delete", "bob"]).code, 0);
    let run = admin(&data, &["account", "delete", "bob"]);
    assert!(run.code == 1 && run.stderr.contains("not found (404)"), "{}", run.stderr);
    let run = admin(&data, &["account", "add", "Bad Name", "--role", "viewer"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let run = admin(&data, &["account", "add", "carol", "--role", "root"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let short = tmp.path().join("short");
    std::fs::write(&short, "short\n").expect("writes");
    let run =
        admin(&data, &["account", "add", "carol", "--role", "viewer", "--password-file", &short.to_string_lossy()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("at least 10 characters"), "{}", run.stderr);
}

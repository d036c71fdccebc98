//! Mobility end to end over TLS: `dls phone run` (the phone side, `dls-workpoint`) against a
//! real `dls serve` (the service side): a user logs on at phone A, changes the phone book and
//! logs off; logs on at phone B and gets the phone book back; a wrong password is refused,
//! exits 4 and is audited; the password never reaches the service's log or its data.

use crate::common::{dls, serve};

#[test]
fn a_users_phone_book_follows_them_from_phone_a_to_phone_b() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let d = data.to_string_lossy().into_owned();
    let s = serve(&data);
    let file = |name: &str, bytes: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).expect("writes");
        path.to_string_lossy().into_owned()
    };
    let secret = "correct horse 42";
    let pw = file("pw", format!("{secret}\n").as_bytes());
    let bad = file("bad", b"not the password\n");
    let book: &[u8] = b"Alice;+4930111\nBob;+4930222\n<script>x</script>\n";
    let book_file = file("book", book);
    let out_b = tmp.path().join("phone-b");
    std::fs::create_dir(&out_b).expect("dir");
    let out_b_arg = out_b.to_string_lossy().into_owned();

    let run = dls(&["user", "add", "--e164", "+49 89 100", "--password-file", &pw, "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Phone A: logon, the user changes the phone book, logoff (the service reads it back).
    let a = ["phone", "run", "--server", &s.wpi, "--mac", "00:1a:e8:00:00:0a"];
    let mut args = a.to_vec();
    let book_arg = format!("userdata-phonebook={book_file}");
    args.extend(["--logon", "+4989100", "--password-file", &pw, "--userdata", &book_arg, "--logoff"]);
    let run = dls(&args, b"");
    assert_eq!(run.code, 0, "phone A: {}{}", run.stdout, run.stderr);

    // Phone B: logon; the restore writes the phone book, byte for byte.
    let b = ["phone", "run", "--server", &s.wpi, "--mac", "00:1a:e8:00:00:0b"];
    let mut args = b.to_vec();
    args.extend(["--logon", "+4989100", "--password-file", &pw, "--userdata-dir", &out_b_arg]);
    let run = dls(&args, b"");
    assert_eq!(run.code, 0, "phone B: {}{}", run.stdout, run.stderr);
    let restored = std::fs::read(out_b.join("userdata-phonebook")).expect("phone B holds the phone book");
    assert_eq!(restored, book);

    // The service knows the user is at B now.
    let run = dls(&["user", "show", "+4989100", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("001AE800000B"), "{}", run.stdout);

    // A wrong password at phone C: refused (exit 4, the reason named), audited, nothing changes.
    let c = ["phone", "run", "--server", &s.wpi, "--mac", "00:1a:e8:00:00:0c"];
    let mut args = c.to_vec();
    args.extend(["--logon", "+4989100", "--password-file", &bad]);
    let run = dls(&args, b"");
    assert_eq!(run.code, 4, "phone C: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("mobility: logon refused"), "{}", run.stderr);
    let run = dls(&["audit", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refused = run.stdout.lines().find(|l| l.contains("001AE800000C")).expect("the refusal is audited");
    assert!(refused.contains("mobility-refused") && refused.contains("wrong password"), "{}", run.stdout);

    // The password is nowhere: not in the service's log, not in its data directory.
    let log = s.stop().join("\n");
    assert!(!log.contains(secret), "the password reached the log");
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).expect("reads");
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the password is in {entry:?}");
    }
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reads the directory").flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

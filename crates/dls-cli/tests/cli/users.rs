//! `dls user …` against the real `dls serve`: users added with a password file (never
//! shown again), listed, shown with their saved data's names and sizes, one item dumped,
//! their profiles and password changed, logon and logoff queued as jobs; clear errors.

use dls_engine::mobility::UserData;
use dls_engine::{Change, MobilityChange, SecurityMode, UnixTime};
use dls_message::{MacAddr, Reason};
use dls_store::traits::*;

use crate::common::{Run, dls, serve};

fn admin(data: &std::path::Path, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    let d = data.to_string_lossy().into_owned();
    all.extend(["--data-dir", &d]);
    dls(&all, b"")
}

const PASSWORD: &str = "correct horse 42";

#[test]
fn users_are_managed_and_their_passwords_never_shown() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\nignored\n")).expect("writes");
    let pw = pw.to_string_lossy().into_owned();
    let s = serve(&data);
    let profile = tmp.path().join("p.toml");
    std::fs::write(&profile, "[[item]]\nname = \"language-iso\"\nvalue = \"de\"\n").expect("writes");
    assert_eq!(admin(&data, &["profile", "set", "sales", &profile.to_string_lossy()]).code, 0);

    let run = admin(
        &data,
        &["user", "add", "--e164", "+49 89 1234", "--name", "Anna Meier", "--profile", "sales", "--password-file", &pw],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!((v["number"].as_str(), v["name"].as_str()), (Some("+49891234"), Some("Anna Meier")));
    assert_eq!(v["profiles"][0], "sales");
    assert!(v["logged_on"].is_null(), "{v}");

    let run = admin(&data, &["user", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.lines().nth(1).is_some_and(|l| l.contains("+49891234") && l.contains("Anna Meier")),
        "{}",
        run.stdout
    );
    let run = admin(&data, &["user", "show", "+49891234"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for shown in [&run.stdout, &admin(&data, &["user", "list", "--json"]).stdout] {
        assert!(!shown.contains(PASSWORD) && !shown.contains("argon2"), "{shown}");
    }

    // Clear errors, each with its exit code.
    let missing = tmp.path().join("missing").to_string_lossy().into_owned();
    let cases: [(&[&str], i32, &str); 9] = [
        (&["user", "add", "--e164", "+49891234", "--password-file", &pw], 1, "exists already (409)"),
        (&["user", "add", "--e164", "not a number", "--password-file", &pw], 3, "digits"),
        (&["user", "add", "--e164", "100", "--profile", "nope", "--password-file", &pw], 3, "does not exist"),
        (&["user", "add", "--e164", "100", "--password-file", &missing], 1, "reading"),
        (&["user", "add", "--e164", "100"], 2, "--password-file"),
        (&["user", "show", "999"], 1, "not found (404)"),
        (&["user", "logoff", "+49891234"], 1, "a logon of user +49891234 not found (404)"),
        (&["user", "logon", "+49891234", "--mac", "00:1A:E8:00:00:99"], 1, "device 001AE8000099 not found (404)"),
        (&["user", "show", "+49891234", "--data", "userdata-phonebook"], 1, "no saved item"),
    ];
    for (args, code, said) in cases {
        let run = admin(&data, args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(said) && run.stderr.lines().count() == 1, "{args:?}: {}", run.stderr);
    }
    let short = tmp.path().join("short");
    std::fs::write(&short, "abc\n").expect("writes");
    let run = admin(&data, &["user", "set-password", "+49891234", "--password-file", &short.to_string_lossy()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("4 to 128 characters") && !run.stderr.contains("abc"), "{}", run.stderr);
    assert_eq!(admin(&data, &["user", "set-password", "+49891234", "--password-file", &pw]).code, 0);
    let run = admin(&data, &["user", "set-profiles", "+49891234"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.stdout).expect("JSON")["profiles"],
        serde_json::json!([])
    );

    // A logon queued for a known phone is a job, shown as one.
    let mac = "00:1A:E8:00:00:42";
    assert_eq!(admin(&data, &["device", "add", "--mac", mac]).code, 0);
    let run = admin(&data, &["user", "logon", "+49891234", "--mac", mac]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "job 1 queued for 001AE8000042");
    let run = admin(&data, &["job", "list"]);
    assert!(run.stdout.contains("mobility-logon"), "{}", run.stdout);
    assert_eq!(admin(&data, &["job", "add", "--mac", mac, "restart"]).code, 0);
    // The user's jobs alone, the number as typed (its + sent as %2B).
    let run = admin(&data, &["job", "list", "--json", "--user", "+49 89 1234"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let jobs: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let ids: Vec<i64> = jobs.as_array().expect("jobs").iter().filter_map(|j| j["id"].as_i64()).collect();
    assert_eq!(ids, [1], "{jobs}");
    let run = admin(&data, &["job", "list", "--user", "abc"]);
    assert_eq!(run.code, 3, "refused input: {}", run.stderr);
    assert!(run.stderr.contains("user \"abc\""), "{}", run.stderr);

    let logs = s.stop();
    assert!(logs.iter().all(|l| !l.contains(PASSWORD)), "{logs:?}");

    // Saved data, as a logoff at a phone leaves it (written straight into the store while the
    // service is stopped): shown by name and size, dumped on request.
    {
        let store = dls_store_sqlite::SqliteStore::open(&data.join("dls.sqlite")).expect("opens");
        let m = MacAddr::parse(mac).expect("a MAC");
        store
            .apply(
                m,
                &[
                    Change::Register { mode: SecurityMode::Default },
                    Change::Contact { at: UnixTime(5), reason: Reason::StartUp },
                ],
            )
            .expect("registers");
        let saved = UserData { name: "userdata-phonebook".into(), value: "UGhvbmUgYm9vaw==".into(), size: 10 };
        store
            .apply(
                m,
                &[
                    Change::Mobility(MobilityChange::Expect { number: "+49891234".into(), revision: 2 }),
                    Change::Mobility(MobilityChange::SaveData {
                        number: "+49891234".into(),
                        items: vec![saved],
                        at: UnixTime(6),
                    }),
                ],
            )
            .expect("saves");
    }
    let _s = serve(&data);
    let run = admin(&data, &["user", "show", "+49891234"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["data"][0]["name"], "userdata-phonebook", "{v}");
    assert_eq!(v["data"][0]["size"], 10, "{v}");
    assert!(!run.stdout.contains("UGhvbmUgYm9vaw=="), "the data is not shown: {}", run.stdout);
    let out = tmp.path().join("book");
    let run = admin(
        &data,
        &["user", "show", "+49891234", "--data", "userdata-phonebook", "--output", &out.to_string_lossy()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&out).expect("written"), b"Phone book");
    let run = admin(&data, &["user", "show", "+49891234", "--data", "userdata-phonebook"]);
    assert_eq!(run.stdout.as_bytes(), b"Phone book", "stdout is not a terminal: the content itself");

    assert_eq!(admin(&data, &["user", "delete", "+49 89 1234"]).code, 0);
    let run = admin(&data, &["user", "delete", "+49891234"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not found (404)"), "{}", run.stderr);
}

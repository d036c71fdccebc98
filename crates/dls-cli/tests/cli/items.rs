//! Items a phone cannot be sent, given to `dls profile set` and `dls job add … write`: the
//! service refuses them (`422`), and the CLI says so on one line and exits 3.

use crate::common::{Run, dls, serve};

fn with_data(data: &std::path::Path, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    let d = data.to_string_lossy().into_owned();
    all.extend(["--data-dir", &d]);
    dls(&all, b"")
}

fn assert_refused(run: &Run, names: &str) {
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let line = run.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    assert!(line.contains(names) && line.ends_with("(422)"), "{line}");
}

#[test]
fn unsendable_items_are_refused_with_a_one_line_error_and_exit_3() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let _s = serve(&data);

    // A NUL in a profile value (TOML writes it as an escape).
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[item]]\nname = \"sntp-addr\"\nvalue = \"ntp.example.net\"\n\n\
         [[item]]\nname = \"key-label-unicode\"\nindex = 4\nvalue = \"a\\u0000b\"\n",
    )
    .expect("profile file");
    let run = with_data(&data, &["profile", "set", "global", &bad.to_string_lossy()]);
    assert_refused(
        &run,
        "profile \"global\": item \"key-label-unicode\" index 4 (#2 in the list): the value holds U+0000",
    );
    let run = with_data(&data, &["profile", "show", "global"]);
    assert_eq!(run.code, 1, "nothing was stored: {run:?}");
    assert!(run.stderr.contains("(404)"), "{run:?}");

    // An escape sequence in a write job's value, and a name that is empty.
    let run = with_data(&data, &["job", "add", "--all", "write", "key-label-unicode=\u{1b}[2J"]);
    assert_refused(&run, "write job: item \"key-label-unicode\" (#1 in the list): the value holds U+001B");
    let run = with_data(&data, &["job", "add", "--all", "write", "=value"]);
    assert_eq!(run.code, 3, "{run:?}");

    // The normal case: the same profile without the NUL is stored.
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[[item]]\nname = \"key-label-unicode\"\nindex = 4\nvalue = \"a\\tb\"\n").expect("file");
    let run = with_data(&data, &["profile", "set", "global", &good.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = with_data(&data, &["profile", "show", "global"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("a\\tb"), "{}", run.stdout);
}

//! PIN files for bootstrap runs.

use dls_load::{DEFAULT_FIRST_MAC, Pins, fleet_mac};

#[test]
fn pin_files_map_macs_to_pins_and_name_the_bad_line() {
    let pins = Pins::parse(
        "# MAC PIN\n00:1A:E8:80:00:00 123456789012345\n\n001ae8800001   1234 5678 9012 345\n00-1A-E8-80-00-02\t987654321098765\n",
    )
    .expect("pins");
    assert_eq!(pins.len(), 3);
    assert_eq!(pins.get(&DEFAULT_FIRST_MAC), Some("123456789012345"));
    assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 1)), Some("1234 5678 9012 345"));
    assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 2)), Some("987654321098765"));
    assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 3)), None);
    assert_eq!(format!("{pins:?}"), "Pins(3 devices)", "no PIN in Debug");
    assert!(Pins::parse("").expect("empty").is_empty());
    for (text, line) in [
        ("00:1A:E8:80:00:00\n", "line 1"),
        ("\n00:1A:E8:80:00:0 123456789012345\n", "line 2"),
        ("00:1A:E8:80:00:00 12345x789012345\n", "line 1"),
        ("00:1A:E8:80:00:00 123456789012345\n001AE8800000 111111111111111\n", "line 2"),
    ] {
        let e = Pins::parse(text).expect_err(text);
        assert!(e.starts_with(line), "{text:?}: {e}");
        assert!(!e.contains("1111") && !e.contains("12345x"), "no PIN echoed: {e}");
    }
}

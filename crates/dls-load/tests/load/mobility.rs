//! The mobility mix: which phones log a user on, as whom, and what a run refuses.

use std::time::Duration;

use dls_load::{Fleet, LoadConfig, LoadMode, MobilityMix, phone_book};
use dls_workpoint::{ClientError, UserPassword};

fn mix(share: u8, first: &str) -> MobilityMix {
    MobilityMix::new(share, first, UserPassword::new("test")).expect("mix")
}

#[test]
fn the_mobile_phones_are_spread_evenly_with_a_user_each() {
    let m = mix(25, "4989700800000");
    let mobile: Vec<(usize, usize)> = (0..12).filter_map(|i| m.user_index(i).map(|k| (i, k))).collect();
    assert_eq!(mobile, [(3, 0), (7, 1), (11, 2)]);
    assert_eq!(m.users_needed(12), 3);
    assert_eq!(m.users_needed(1000), 250);
    assert_eq!((0..1000).filter(|i| m.user_index(*i).is_some()).count(), 250);
    let all = mix(100, "4989700800000");
    assert!((0..50).all(|i| all.user_index(i) == Some(i)));
    assert_eq!((mix(1, "1").users_needed(99), mix(1, "1").users_needed(100)), (0, 1));
}

#[test]
fn users_are_numbered_from_the_first_keeping_its_shape() {
    assert_eq!(mix(50, "4989700800000").user(0), "4989700800000");
    assert_eq!(mix(50, "4989700800000").user(42), "4989700800042");
    assert_eq!(mix(50, "+0049897008").user(3), "+0049897011");
    assert_eq!(mix(50, "0099").user(1), "0100");
    for bad in ["", "+", "49 89", "abc", "1234567890123456789"] {
        assert!(MobilityMix::new(50, bad, UserPassword::new("x")).is_err(), "{bad:?}");
    }
    for share in [0, 101] {
        assert!(MobilityMix::new(share, "1", UserPassword::new("x")).is_err(), "{share}");
    }
}

#[test]
fn each_phone_book_differs() {
    assert_eq!(phone_book(1, 4096).len(), 4096);
    assert_eq!(phone_book(7, 100), phone_book(7, 100));
    assert_ne!(phone_book(7, 100), phone_book(8, 100));
}

#[test]
fn a_run_refuses_a_mix_it_cannot_carry_out() {
    let with = |f: &dyn Fn(&mut LoadConfig)| {
        let mut config = LoadConfig::new("127.0.0.1:1", 10, 2);
        config.mobility = Some(mix(50, "4989700800000"));
        f(&mut config);
        Fleet::new(config)
    };
    assert!(with(&|_| {}).is_ok());
    assert!(matches!(with(&|c| c.mode = LoadMode::Baseline), Err(ClientError::Protocol(_))));
    assert!(matches!(
        with(&|c| {
            c.duration = Some(Duration::from_secs(1));
            c.phones = 1;
        }),
        Err(ClientError::Protocol(_))
    ));
    assert!(matches!(with(&|c| c.mobility = Some(mix(5, "1"))), Err(ClientError::Protocol(_))), "no user at all");
}

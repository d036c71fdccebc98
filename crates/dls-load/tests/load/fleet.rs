//! The fleet: its phones' MACs and items, the baseline bodies, what a run refuses.

use std::collections::HashSet;
use std::time::Duration;

use dls_load::{
    BASELINE_REQUESTS, DEFAULT_FIRST_MAC, Fleet, FleetTemplate, LoadConfig, LoadMode, baseline_bodies, fleet_mac,
};
use dls_message::{Action, MacAddr, Message, Reason, WorkpointMessage};
use dls_workpoint::ClientError;

#[test]
fn fleet_macs_are_distinct_and_counted_up() {
    let first = MacAddr::parse("00:1A:E8:FF:FF:FE").expect("mac");
    assert_eq!(fleet_mac(first, 0), first);
    assert_eq!(fleet_mac(first, 1).to_string(), "001AE8FFFFFF");
    assert_eq!(fleet_mac(first, 2).to_string(), "001AE9000000");
    let macs: HashSet<_> = (0..10_000).map(|i| fleet_mac(DEFAULT_FIRST_MAC, i)).collect();
    assert_eq!(macs.len(), 10_000);
}

#[test]
fn a_fleet_phone_has_a_few_hundred_distinct_items() {
    let fleet = FleetTemplate::builtin().expect("fleet data");
    let items = fleet.items(42);
    let keys: HashSet<_> = items.iter().map(|i| (i.name.clone(), i.index)).collect();
    assert_eq!(keys.len(), items.len(), "no item twice");
    assert!((250..=400).contains(&items.len()), "{} items", items.len());
    let phone = fleet.phone(DEFAULT_FIRST_MAC, 42);
    assert_eq!(phone.get("function-key-def", Some(1001)), Some("30"));
    assert_eq!(phone.get("e164", None), Some("4989700710042"));
    assert_eq!(phone.get("mac-addr", None), Some("00:1A:E8:80:00:2A"));
    assert!(phone.reported_items().len() < items.len() + 12, "passwords are not reported");
}

#[test]
fn a_bootstrap_run_takes_no_duration() {
    let mut config = LoadConfig::new("127.0.0.1:1", 1, 1);
    config.mode = LoadMode::Bootstrap;
    config.duration = Some(Duration::from_secs(1));
    assert!(matches!(Fleet::new(config), Err(ClientError::Protocol(_))));
}

#[test]
fn baseline_bodies_are_a_start_up_a_full_inventory_and_an_empty_write_reply() {
    let bodies = baseline_bodies(DEFAULT_FIRST_MAC).expect("bodies");
    assert_eq!(bodies.len(), BASELINE_REQUESTS);
    let decoded: Vec<WorkpointMessage> = bodies
        .iter()
        .map(|b| match dls_message::decode(b) {
            Ok(Message::Workpoint(m)) => m,
            other => panic!("not a WorkpointMessage: {other:?}"),
        })
        .collect();
    assert_eq!(decoded[0].reason.value, Reason::StartUp);
    assert_eq!(decoded[1].reason.action, Some(Action::ReadAllItems));
    assert!(decoded[1].items.as_ref().is_some_and(|i| i.len() > 250));
    assert!(bodies[1].len() > 10_000 && bodies[1].len() < 50_000, "{} bytes", bodies[1].len());
    assert_eq!(decoded[2].reason.action, Some(Action::WriteItems));
    assert_eq!(decoded[2].items.as_ref().map(Vec::len), Some(0));
}

//! What a phone's message costs in round trips to the database, counted by the store
//! (`PostgresStore::round_trips`), for the messages the service handles most: a first
//! start-up (start-up, the reply to `ReadAllItems`, the reply to `WriteItems`), a known
//! phone's start-up, and the interaction's session between them. The engine makes the
//! changes, as the service's WPI path runs it (`with_device`). A test here fails when
//! someone adds a query to the path: change the figures only with docs/BENCHMARKS.md.

use std::net::{IpAddr, Ipv4Addr};

use dls_engine::desired::Profile;
use dls_engine::{Channel, Engine, EngineConfig, Input, Output, Session, UnixTime};
use dls_message::{Action, Fragment, Header, Item, MacAddr, Reason, ReasonForContact, ReplyStatus, WorkpointMessage};
use dls_store::traits::*;
use dls_store::{StoreError, with_device};
use dls_store_postgres::{PoolOptions, PostgresStore};

use crate::server::{self, Database};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 41));

/// The round trips of one message with changes: `BEGIN` with the device's lock, the load,
/// the changes, `COMMIT`.
const MESSAGE: u64 = 4;
/// One session put or taken: one statement, no transaction.
const SESSION: u64 = 1;

/// A store of one connection: every statement is prepared once, by the warm-up.
fn open(database: &Database) -> PostgresStore {
    let mut options = PoolOptions::default();
    options.max_connections = 1;
    PostgresStore::open_with(&database.url, &options).expect("opens")
}

/// A phone and the engine, as the service drives them.
struct Phone<'a> {
    store: &'a PostgresStore,
    engine: Engine,
    mac: MacAddr,
    session: Option<Session>,
    now: UnixTime,
}

impl Phone<'_> {
    fn items(&self) -> Vec<Item> {
        vec![
            Item::new("device-type", "OpenStage 60"),
            Item::new("software-version", "V3 R5.18.0"),
            Item::new("mac-addr", self.mac.to_string()),
            Item::new("e164", "4989700712"),
        ]
    }

    fn message(nonce: &str, reason: ReasonForContact, items: Vec<Item>) -> WorkpointMessage {
        WorkpointMessage {
            header: Header { nonce: nonce.into(), max_items: Some(-1), fragment: Some(Fragment::Final) },
            reason,
            items: Some(items),
        }
    }

    /// One message through the engine in one `run_message`; its round trips and the reply.
    fn send(&mut self, message: &WorkpointMessage) -> (u64, Output) {
        let before = self.store.round_trips();
        let channel = Channel::Default;
        let out = with_device(self.store, self.mac, |device, desired| -> Result<_, StoreError> {
            let out = self.engine.handle(Input {
                now: self.now,
                message,
                channel: &channel,
                session: self.session.clone(),
                device,
                desired,
                bootstrap: None,
                peer: Some(PEER),
                tan: None,
                mobility: None,
            });
            Ok((out.changes.clone(), out))
        })
        .expect("handled");
        self.session.clone_from(&out.session);
        (self.store.round_trips() - before, out)
    }

    /// A first start-up: the round trips of its three messages.
    fn first_start_up(&mut self, nonce: &str) -> [u64; 3] {
        let (start_up, out) = self.send(&Self::message(nonce, ReasonForContact::new(Reason::StartUp), self.items()));
        assert_eq!(out.reply.action, Action::ReadAllItems);
        let mut inventory = self.items();
        inventory.extend((0..40).map(|k| Item::indexed("function-key-def", k, "1")));
        inventory.push(Item::new("sntp-addr", "ntp.old.example"));
        let reply = ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted);
        let (read_all, out) = self.send(&Self::message(nonce, reply, inventory));
        assert_eq!(out.reply.action, Action::WriteItems);
        let reply = ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Accepted);
        let (written, out) = self.send(&Self::message(nonce, reply, Vec::new()));
        assert_eq!(out.reply.action, Action::CleanUp);
        assert!(out.session.is_none());
        [start_up, read_all, written]
    }

    /// A known phone's start-up, nothing to write: its round trips.
    fn repeat_start_up(&mut self, nonce: &str) -> u64 {
        let (trips, out) = self.send(&Self::message(nonce, ReasonForContact::new(Reason::StartUp), self.items()));
        assert_eq!(out.reply.action, Action::CleanUp);
        trips
    }
}

fn profile(items: Vec<Item>) -> Profile {
    Profile { name: "global".into(), items, ..Profile::default() }
}

fn phone(store: &PostgresStore, n: u8) -> Phone<'_> {
    Phone {
        store,
        engine: Engine::new(EngineConfig::new([7; 32])),
        mac: MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0, 0, n]),
        session: None,
        now: UnixTime(1_700_000_000),
    }
}

#[test]
fn each_message_of_a_start_up_is_four_round_trips() {
    let database = server::shared().database();
    let store = open(&database);
    let written: Vec<Item> = (0..20).map(|k| Item::indexed("key-label-unicode", k, format!("Team {k}"))).collect();
    store.put_profile(&profile(written.clone())).expect("puts");
    // The warm-up prepares every statement on the one connection, and caches the profiles.
    let mut first = phone(&store, 1);
    first.first_start_up("W1");
    first.repeat_start_up("W2");

    let mut phone = phone(&store, 2);
    assert_eq!(phone.first_start_up("N1"), [MESSAGE; 3], "start-up, ReadAllItems' reply, WriteItems' reply");
    phone.now = UnixTime(phone.now.0 + 60);
    assert_eq!(phone.repeat_start_up("N2"), MESSAGE, "a known phone's start-up");
    let device = store.load_device(phone.mac).expect("loads");
    assert_eq!(device.written.len(), written.len(), "20 records written by one statement");
    assert_eq!(device.recent_nonces, ["N1", "N2"]);

    // A message that changes nothing commits nothing, the lock's transaction ended: 3.
    let before = store.round_trips();
    store.run_message(phone.mac, &mut |_, _| None).expect("runs");
    assert_eq!(store.round_trips() - before, 3);

    // A profile changed since the last load: the profiles are read again, once.
    store.put_profile(&profile(written[..10].to_vec())).expect("puts");
    phone.now = UnixTime(phone.now.0 + 60);
    assert_eq!(phone.repeat_start_up("N3"), MESSAGE + 1, "the profiles read again");
    assert_eq!(phone.repeat_start_up("N4"), MESSAGE, "then cached");
}

#[test]
fn a_session_is_one_round_trip_each_way() {
    let database = server::shared().database();
    let store = open(&database);
    let mac = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0, 0, 3]);
    let id = "A".repeat(64);
    // Warm-up.
    store.put_session(&id, mac, UnixTime(100), b"{}").expect("puts");
    store.take_session(&id, UnixTime(10)).expect("takes");

    let before = store.round_trips();
    store.put_session(&id, mac, UnixTime(100), b"{}").expect("puts");
    assert_eq!(store.round_trips() - before, SESSION);
    let before = store.round_trips();
    assert!(store.take_session(&id, UnixTime(10)).expect("takes").is_some());
    assert_eq!(store.round_trips() - before, SESSION);
}

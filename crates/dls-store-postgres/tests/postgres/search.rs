//! The console's device search on PostgreSQL: the trigram indexes of schema 7 (`pg_trgm`),
//! which an existing database gets by the upgrade and the search's plans use, and a
//! database where the extension cannot be created, which is migrated all the same (the
//! search then scans). What a search finds is the conformance suite's
//! (`conformance::admin`), the same on every backend.

use dls_engine::{Change, UnixTime};
use dls_message::{Item, MacAddr};
use dls_store::traits::*;
use dls_store::{DeviceFilter, DeviceSpec};
use dls_store_postgres::PostgresStore;
use postgres::{Client, NoTls};

use crate::conformance::contact;
use crate::server::{self, Database};

fn searched(s: &PostgresStore, q: &str) -> Vec<String> {
    let filter = DeviceFilter { search: Some(q.into()), ..DeviceFilter::default() };
    s.list_devices(&filter).expect("lists").iter().map(|d| d.mac.to_string()).collect()
}

fn connect(database: &Database) -> Client {
    Client::connect(&database.url, NoTls).expect("connects")
}

/// The trigram indexes of the devices there are.
fn search_indexes(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT indexname::TEXT FROM pg_indexes WHERE tablename = 'devices' AND indexname LIKE 'devices_search_%'
         ORDER BY 1",
        &[],
    )
    .expect("lists")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The plan PostgreSQL makes for a query, on one line.
fn plan(c: &mut Client, sql: &str) -> String {
    let rows = c.query(&format!("EXPLAIN {sql}"), &[]).expect("explains");
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join(" / ")
}

#[test]
fn the_upgrade_to_schema_7_makes_trigram_indexes_that_the_search_uses() {
    let database = server::shared().database();
    PostgresStore::create_at_schema_version(&database.url, 6).expect("creates");
    let mut c = connect(&database);
    assert!(search_indexes(&mut c).is_empty());
    c.batch_execute(
        "INSERT INTO devices (mac, registered_at, e164) VALUES ('0001E325EA01', 1, '+49 89 7220 1234'),
                                                               ('001AE8ABCD02', 1, '+49 30 555 Ext')",
    )
    .expect("inserts");
    let s = PostgresStore::open(&database.url).expect("upgrades");
    let version: i64 = c.query_one("SELECT version FROM schema_version", &[]).expect("reads").get(0);
    assert_eq!(version, PostgresStore::schema_version());
    assert_eq!(search_indexes(&mut c), ["devices_search_e164", "devices_search_mac"]);
    assert_eq!(searched(&s, "7220 12"), ["0001E325EA01"]);
    assert_eq!(searched(&s, "ab-cd-02"), ["001AE8ABCD02"]);
    assert_eq!(searched(&s, "EXT"), ["001AE8ABCD02"]);
    // The indexes serve the search's conditions (as written in `devices::LIST_DEVICES`);
    // with two rows the planner would rather read the table or the primary key, so it is
    // told not to.
    c.batch_execute("SET enable_seqscan = off; SET enable_indexscan = off; SET enable_indexonlyscan = off")
        .expect("sets");
    let e164 = plan(&mut c, "SELECT mac FROM devices d WHERE lower(d.e164) LIKE lower('%7220 12%')");
    assert!(e164.contains("devices_search_e164"), "{e164}");
    let mac = plan(&mut c, "SELECT mac FROM devices d WHERE d.mac LIKE '%ABCD02%'");
    assert!(mac.contains("devices_search_mac"), "{mac}");
}

/// Where `pg_trgm` cannot be created — here a role that may create tables in the schema
/// but not extensions in the database — the migration goes on without the indexes, and a
/// search scans, finding the same.
#[test]
fn without_pg_trgm_the_database_is_migrated_and_the_search_scans() {
    let database = server::shared().database();
    let role = format!("{}_owner", database.name());
    let mut c = connect(&database);
    c.batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN; GRANT CREATE ON SCHEMA public TO \"{role}\""))
        .expect("creates the role");
    let url = database.url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    {
        let s = PostgresStore::open(&url).expect("migrates without pg_trgm");
        let version: i64 = c.query_one("SELECT version FROM schema_version", &[]).expect("reads").get(0);
        assert_eq!(version, PostgresStore::schema_version());
        let trgm: i64 =
            c.query_one("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'", &[]).expect("reads").get(0);
        assert_eq!((trgm, search_indexes(&mut c)), (0, Vec::<String>::new()));
        let m = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0xAB, 0xCD, 0x02]);
        s.add_device(m, &DeviceSpec::default(), UnixTime(1)).expect("adds");
        let items = vec![Item::new("e164", "+49 89 7220 1234")];
        s.apply(m, &[contact(2), Change::ReplaceInventory { items, at: UnixTime(2) }]).expect("applies");
        assert_eq!(
            (searched(&s, "7220 12"), searched(&s, "ab:cd"), searched(&s, "%")),
            (vec!["001AE8ABCD02".to_owned()], vec!["001AE8ABCD02".to_owned()], vec![])
        );
    }
    // An administrator installs pg_trgm later: the next start makes the indexes, and the
    // search finds the same.
    c.batch_execute("CREATE EXTENSION pg_trgm").expect("a superuser creates it");
    {
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish();
        let s = tracing::subscriber::with_default(subscriber, || PostgresStore::open(&url)).expect("opens");
        assert_eq!(search_indexes(&mut c), ["devices_search_e164", "devices_search_mac"]);
        let said = log.text();
        assert!(
            said.contains("PostgreSQL: dls: the device search's trigram indexes were made"),
            "the node's log: {said}"
        );
        assert_eq!(searched(&s, "7220 12"), ["001AE8ABCD02"]);
        drop(s);
        PostgresStore::open(&url).expect("opens again, the indexes there");
        assert_eq!(search_indexes(&mut c), ["devices_search_e164", "devices_search_mac"]);
    }
    // The role owns the tables: the database goes first.
    let mut admin = Client::connect(&database.url.replacen(&format!("/{}", database.name()), "/postgres", 1), NoTls)
        .expect("connects");
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", database.name())).expect("drops");
    admin.batch_execute(&format!("DROP ROLE \"{role}\"")).expect("drops");
}

/// What a test's tracing subscriber wrote.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

//! `dls store migrate`'s copy ([`dls_store::dump`]): a populated SQLite store into a fresh
//! PostgreSQL database, every read the same on both sides, ids never reused, a non-empty
//! target refused, a failed export leaving nothing, a tampered copy caught, and back.

use dls_accounts::Role;
use dls_engine::mobility::UserData;
use dls_engine::{
    AuditEvent, AuditKind, Change, FileRef, IssuedCertificate, ItemKey, JobKind, JobState, JobUpdate, MobilityChange,
    MobilityQuery, Profile, SealedBootstrap, SecurityMode, UnixTime, WriteOutcome, WrittenRecord,
};
use dls_message::{Item, MacAddr, Reason};
use dls_store::dump::{self, MigrateError, MigrationStore, Row};
use dls_store::traits::*;
use dls_store::{
    AdminAction, CredentialScope, DeviceFilter, DeviceSpec, JobFilter, NewAuditRecord, NewFile, NewJob, NewUser,
    SecurityUpdate, Store, StoreError,
};
use dls_store_postgres::PostgresStore;
use dls_store_sqlite::SqliteStore;
use postgres::{Client, NoTls};

use crate::server;

fn mac(n: u8) -> MacAddr {
    MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, n])
}

const MACS: [u8; 5] = [1, 2, 3, 4, 5];

fn file(name: &str) -> NewFile {
    NewFile {
        name: name.into(),
        file_type: "APP".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        device_types: vec!["OpenStage 60".into()],
        software_type: Some("Siemens SIP".into()),
        software_version: Some("V3 R5.13.0".into()),
    }
}

/// A store with something in every table: devices with profiles, overrides, inventories,
/// writes and nonces; a pin-mode device with a sealed PIN; a bootstrapping device with its
/// certificates (one revoked) and kept material; audit; jobs in several states; files (the
/// newest deleted, so that the high-water mark is above the highest id); credentials.
/// Returns the highest job and file ids handed out.
fn populate(s: &dyn Store) -> (i64, i64) {
    let at = UnixTime(1_700_000_000);
    let office = Profile {
        name: "office".into(),
        device_type: None,
        items: vec![Item::new("sntp-addr", "10.0.0.1"), Item::indexed("line-key", 2, "x")],
        ..Profile::default()
    };
    s.put_profile(&office).expect("profile");
    s.put_profile(&Profile { name: "lobby".into(), ..Profile::default() }).expect("profile");
    // 1: registered by the admin, with a secret, profiles and overrides.
    let spec = DeviceSpec {
        profiles: vec!["office".into(), "lobby".into()],
        overrides: vec![
            Item::new("e164", "4930123"),
            Item { item_type: Some("t".into()), ..Item::indexed("x", 0, "") },
        ],
        secret: Some(vec![1, 2, 3, 4]),
        security: None,
    };
    s.add_device(mac(1), &spec, at).expect("adds 1");
    // 2: pin mode with an outstanding (sealed) PIN.
    let pin = SecurityUpdate {
        mode: Some(SecurityMode::Pin),
        reset: false,
        new_pin: Some(vec![9; 40]),
        actor: Some("alice".into()),
    };
    s.add_device(mac(2), &DeviceSpec { security: Some(pin), ..DeviceSpec::default() }, at).expect("adds 2");
    // 3, 4, 5: first contacts, with what the protocol path records.
    for n in [3, 4, 5] {
        let register = Change::Register { mode: if n == 4 { SecurityMode::Nopin } else { SecurityMode::Default } };
        s.apply(mac(n), &[register, Change::Contact { at: UnixTime(100 + u64::from(n)), reason: Reason::StartUp }])
            .expect("registers");
    }
    let inventory = vec![
        Item::new("device-type", "OpenStage 60"),
        Item::new("software-version", "V3 R5.12.0"),
        Item::new("e164", "4930555"),
        Item::indexed("line", 1, "ümlaut ✓"),
        Item { item_type: Some("reserved".into()), ..Item::new("contact-me-uri", "http://10.1.1.3:8085/contact") },
    ];
    s.apply(mac(3), &[Change::ReplaceInventory { items: inventory, at: UnixTime(110) }]).expect("inventory");
    s.apply(mac(5), &[Change::MergeInventory(vec![Item::new("device-type", "OpenScape Desk Phone IP 55G")])])
        .expect("inventory");
    let written = WrittenRecord { fingerprint: [7; 32], outcome: WriteOutcome::Accepted };
    s.apply(
        mac(3),
        &[
            Change::Nonce("n-1".into()),
            Change::Nonce("n-2".into()),
            Change::Written(vec![(ItemKey { name: "sntp-addr".into(), index: None }, written)]),
            Change::DeploymentStatus(vec![Item::new("file-deployment-status", "ok")]),
            Change::PhoneCleanUp { reason: Some("done".into()) },
        ],
    )
    .expect("protocol changes");
    // 4 (nopin): two certificates, the first revoked by the second; material kept.
    let issue = |at: u64, serial: &str| Change::IssueCertificate {
        at: UnixTime(at),
        certificate: IssuedCertificate { serial: serial.into(), not_after: UnixTime(at + 1000) },
    };
    s.apply(mac(4), &[issue(200, "0A")]).expect("issues");
    s.apply(
        mac(4),
        &[
            issue(210, "0B"),
            Change::KeepBootstrap { at: UnixTime(210), serial: "0B".into(), sealed: SealedBootstrap(vec![5; 64]) },
            Change::Audit(AuditEvent { at: UnixTime(211), kind: AuditKind::BootstrapSent, detail: "one".into() }),
        ],
    )
    .expect("issues again");
    // Files: three, the newest deleted.
    let f1 = s.add_file(&file("fw.img"), UnixTime(5)).expect("file");
    s.add_file(&NewFile { file_type: "RINGTONE".into(), device_types: vec![], ..file("ring.mp3") }, UnixTime(6))
        .expect("file");
    let f3 = s.add_file(&file("gone.img"), UnixTime(7)).expect("file");
    s.delete_file(f3.id, UnixTime(8)).expect("deletes").expect("was there");
    // Jobs: queued, sent and accepted (a deployment), done with items, cancelled, and the
    // newest deleted (by pruning).
    let deploy = JobKind::DeployFirmware {
        file: FileRef {
            file_id: f1.id,
            name: "fw.img".into(),
            file_type: "APP".into(),
            priority: "normal".into(),
            token: "tok-1".into(),
        },
        sw_type: None,
        sw_version: "V3 R5.13.0".into(),
    };
    let jobs = s
        .add_jobs(
            &[
                NewJob { mac: mac(3), kind: JobKind::Write { items: vec![Item::new("sntp-addr", "1")] } },
                NewJob { mac: mac(3), kind: deploy },
                NewJob {
                    mac: mac(5),
                    kind: JobKind::Read { items: vec![ItemKey { name: "e164".into(), index: None }] },
                },
                NewJob { mac: mac(5), kind: JobKind::Restart },
            ],
            UnixTime(20),
        )
        .expect("jobs");
    s.apply(
        mac(3),
        &[Change::Job(JobUpdate {
            id: jobs[1].id,
            at: UnixTime(30),
            state: JobState::Sent,
            accepted: true,
            ..JobUpdate::default()
        })],
    )
    .expect("sent");
    s.apply(
        mac(5),
        &[Change::Job(JobUpdate {
            id: jobs[2].id,
            at: UnixTime(31),
            state: JobState::Done,
            answer: Some("read".into()),
            items: Some(vec![Item::new("e164", "4930999")]),
            ..JobUpdate::default()
        })],
    )
    .expect("done");
    s.cancel_job(jobs[3].id, UnixTime(32)).expect("cancels");
    s.record_contact(mac(3), UnixTime(33), "sent").expect("contact");
    let extra = s.add_jobs(&[NewJob { mac: mac(1), kind: JobKind::Restart }], UnixTime(40)).expect("job");
    s.cancel_job(extra[0].id, UnixTime(41)).expect("cancels");
    s.prune(None, Some(UnixTime(41))).expect("prunes the cancelled job of 32");
    // Credentials.
    s.set_fallback_credential(&CredentialScope::Global, "admin", Some(&[8; 33])).expect("credential");
    s.set_fallback_credential(&CredentialScope::Profile("office".into()), "Ops", Some(&[6; 33])).expect("credential");
    s.set_fallback_credential(&CredentialScope::Profile("office".into()), "ops", Some(&[5; 33])).expect("credential");
    // Accounts with their tokens (kept as hashes: they keep working), a console session (not
    // copied: everyone logs in again), administrative audit records (one about no device).
    let hash = dls_accounts::password::hash("correct horse battery").expect("hashes");
    s.add_account("alice", Role::Admin, &hash, UnixTime(50)).expect("account");
    s.add_account("bob", Role::Viewer, &hash, UnixTime(51)).expect("account");
    s.record_login("bob", UnixTime(52)).expect("login");
    s.add_token("alice", "ci", &dls_accounts::secret::token_hash("dls_one"), UnixTime(53)).expect("token");
    s.use_token(&dls_accounts::secret::token_hash("dls_one"), UnixTime(54)).expect("use").expect("found");
    s.add_token("bob", "ci", &dls_accounts::secret::token_hash("dls_two"), UnixTime(55)).expect("token");
    s.add_console_session(&dls_accounts::secret::session_key("a session"), "alice", UnixTime(56)).expect("session");
    for (actor, mac, action) in
        [("alice", Some(mac(1)), AdminAction::DeviceChanged), ("alice:ci", None, AdminAction::ProfileSaved)]
    {
        let record = NewAuditRecord {
            at: UnixTime(57),
            actor: Some(actor.into()),
            mac,
            kind: action.into(),
            detail: "d".into(),
        };
        s.record_audit(&record).expect("audit");
    }
    // Mobility users: one logged on at 3 with saved data, one not logged on.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let user = |number: &str, profiles: Vec<String>| NewUser {
        number: number.into(),
        name: Some("Anna Meier".into()),
        password_hash: hash.into(),
        profiles,
    };
    s.add_user(&user("+4930100", vec!["office".into()]), at).expect("user");
    s.add_user(&NewUser { name: None, ..user("0301", vec![]) }, at).expect("user");
    let data = UserData { name: "userdata-phonebook".into(), value: "aGVsbG8=".into(), size: 5 };
    s.apply(
        mac(3),
        &[
            Change::Mobility(MobilityChange::Expect { number: "+4930100".into(), revision: 0 }),
            Change::Mobility(MobilityChange::LogOn { number: "+4930100".into(), at: UnixTime(120) }),
            Change::Mobility(MobilityChange::SaveData {
                number: "+4930100".into(),
                items: vec![data],
                at: UnixTime(121),
            }),
        ],
    )
    .expect("logs on");
    (extra[0].id, f3.id)
}

/// Every read of the traits, for every device: what must be the same after a copy.
fn reads(s: &dyn Store) -> String {
    let mut out = String::new();
    let mut add = |what: &str, v: &dyn std::fmt::Debug| out.push_str(&format!("{what}: {v:?}\n"));
    add("devices", &s.list_devices(&DeviceFilter::default()).expect("lists"));
    add("profiles", &s.profiles().expect("profiles"));
    add("audit", &s.audit(None, 1000).expect("audit"));
    add("jobs", &s.jobs(&JobFilter::default()).expect("jobs"));
    add("files", &s.files().expect("files"));
    add("credentials", &s.list_fallback_credentials().expect("credentials"));
    add("download", &s.download("tok-1").expect("download"));
    add("pending", &s.devices_with_pending_jobs(100).expect("pending"));
    add("accounts", &s.accounts().expect("accounts"));
    add("tokens", &s.tokens(None).expect("tokens"));
    add("hash", &s.password_hash("alice").expect("hash"));
    add("token", &s.use_token(&dls_accounts::secret::token_hash("dls_two"), UnixTime(0)).expect("token"));
    add("users", &s.users().expect("users"));
    for number in ["+4930100", "0301"] {
        add("user", &s.user(number).expect("user"));
        let q = MobilityQuery { named: Some(number.into()), ..MobilityQuery::default() };
        add("named", &s.mobility_context(mac(1), &q).expect("context").named.map(|n| (n.user, n.password_hash)));
    }
    add("user data", &s.user_data("+4930100", "userdata-phonebook").expect("data").map(|d| d.value));
    for n in MACS {
        let m = mac(n);
        add("device", &s.device(m).expect("device"));
        add("load", &s.load_for_message(m).expect("load"));
        add("desired", &s.desired(m).expect("desired"));
        add("pin", &s.pin(m).expect("pin"));
        add("bootstrap", &s.pending_bootstrap(m).expect("bootstrap"));
        add("certificates", &s.certificates(m).expect("certificates"));
        add("secret", &s.device_secret(m).expect("secret"));
        add("fallback", &s.fallback_credentials(m).expect("fallback"));
        add("contact", &s.contact_target(m, true).expect("contact"));
        let sealed: Vec<_> = s.fallback_credentials(m).expect("fallback").into_iter().map(|c| c.sealed).collect();
        add("sealed", &sealed);
    }
    out
}

fn rows_of(digests: &[dump::TableDigest], table: &str) -> u64 {
    digests.iter().find(|d| d.table == table).map_or(0, |d| d.rows)
}

#[test]
fn a_sqlite_store_is_copied_to_postgresql_whole_and_verified() {
    let source = SqliteStore::open_in_memory().expect("opens");
    let (last_job, last_file) = populate(&source);
    let database = server::shared().database();
    let target = PostgresStore::open(&database.url).expect("opens");
    assert!(target.is_empty().expect("empty"));

    let copied = dump::copy(&source, &target, &|_| {}).expect("copies");
    for table in dump::TABLES {
        assert!(rows_of(&copied, table.name) > 0, "nothing in {}: the test must fill every table", table.name);
    }
    assert_eq!(rows_of(&copied, "devices"), 5);
    assert_eq!((rows_of(&copied, "accounts"), rows_of(&copied, "api_tokens")), (2, 2));
    // Console sessions are not copied: everyone logs in again.
    assert!(target.console_session(&dls_accounts::secret::session_key("a session")).expect("reads").is_none());
    assert_eq!(reads(&source), reads(&target));
    assert!(!target.is_empty().expect("reads"));

    // New ids are past every id the source handed out (its newest file and job deleted).
    let f = target.add_file(&file("new.img"), UnixTime(50)).expect("adds");
    assert!(f.id > last_file, "{} after {last_file}", f.id);
    let j = target.add_jobs(&[NewJob { mac: mac(1), kind: JobKind::Restart }], UnixTime(50)).expect("adds");
    assert!(j[0].id > last_job, "{} after {last_job}", j[0].id);
    target.apply(mac(9), &[Change::Register { mode: SecurityMode::Default }]).expect("audit and nonces go on");
    target.apply(mac(9), &[Change::Nonce("n-9".into())]).expect("a nonce");
    let issued = Change::IssueCertificate {
        at: UnixTime(300),
        certificate: IssuedCertificate { serial: "0C".into(), not_after: UnixTime(1300) },
    };
    target.apply(mac(9), &[issued]).expect("a certificate");

    // A second copy into it is refused, and changes nothing.
    let before = dump::digests(&target).expect("digests");
    let again = dump::copy(&source, &target, &|_| {});
    assert!(matches!(again, Err(MigrateError::NotEmpty)), "{again:?}");
    // The import checks by itself too (a target filled after the caller looked).
    let direct = target.import(&mut std::iter::empty());
    assert!(matches!(direct, Err(StoreError::Conflict { .. })), "{direct:?}");
    assert_eq!(before, dump::digests(&target).expect("digests"));
}

#[test]
fn a_tampered_copy_fails_verification_naming_the_table() {
    let source = SqliteStore::open_in_memory().expect("opens");
    populate(&source);
    let database = server::shared().database();
    let target = PostgresStore::open(&database.url).expect("opens");
    let copied = dump::copy(&source, &target, &|_| {}).expect("copies");
    dump::compare(&copied, &dump::digests(&target).expect("digests")).expect("the same");

    let mut client = Client::connect(&database.url, NoTls).expect("connects");
    let first = "(SELECT min(seq) FROM audit)";
    let detail: String =
        client.query_one(&format!("SELECT detail FROM audit WHERE seq = {first}"), &[]).expect("reads").get(0);
    client.execute(&format!("UPDATE audit SET detail = 'changed' WHERE seq = {first}"), &[]).expect("tampers");
    let e = dump::compare(&copied, &dump::digests(&target).expect("digests")).expect_err("caught");
    assert!(matches!(e, MigrateError::Mismatch { table: "audit", .. }), "{e:?}");
    assert!(e.to_string().contains("table audit") && e.to_string().contains("empty the target"), "{e}");

    client.execute(&format!("UPDATE audit SET detail = $1 WHERE seq = {first}"), &[&detail]).expect("restores");
    dump::compare(&copied, &dump::digests(&target).expect("digests")).expect("the same again");
    client.execute("DELETE FROM device_secrets", &[]).expect("tampers");
    let e = dump::compare(&copied, &dump::digests(&target).expect("digests")).expect_err("caught");
    assert!(matches!(e, MigrateError::Mismatch { table: "device_secrets", source_rows: 1, target_rows: 0 }), "{e:?}");
}

/// A source whose export fails after `after` rows.
struct Failing<'a> {
    inner: &'a dyn MigrationStore,
    after: usize,
}

impl MigrationStore for Failing<'_> {
    fn export(&self, sink: &mut dyn FnMut(Row) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut n = 0;
        self.inner.export(&mut |row| {
            n += 1;
            if n > self.after { Err(StoreError::Io("disk on fire".into())) } else { sink(row) }
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }

    fn import(&self, rows: &mut dyn Iterator<Item = Result<Row, StoreError>>) -> Result<(), StoreError> {
        self.inner.import(rows)
    }
}

#[test]
fn a_failed_export_leaves_the_target_empty() {
    let source = SqliteStore::open_in_memory().expect("opens");
    populate(&source);
    let database = server::shared().database();
    let target = PostgresStore::open(&database.url).expect("opens");
    let failing = Failing { inner: &source, after: 12 };
    let e = dump::copy(&failing, &target, &|_| {}).expect_err("fails");
    assert!(matches!(&e, MigrateError::Source(StoreError::Io(m)) if m.contains("disk on fire")), "{e:?}");
    assert!(target.is_empty().expect("reads"), "nothing was committed");
    // A row out of order is refused whole too.
    let mut rows: Vec<Row> = Vec::new();
    source
        .export(&mut |r| {
            rows.push(r);
            Ok(())
        })
        .expect("exports");
    rows.reverse();
    let e = target.import(&mut rows.into_iter().map(Ok)).expect_err("refused");
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(target.is_empty().expect("reads"));
    // And then the real copy works.
    dump::copy(&source, &target, &|_| {}).expect("copies");
}

#[test]
fn postgresql_is_copied_back_to_sqlite_the_same() {
    let first = SqliteStore::open_in_memory().expect("opens");
    let (last_job, last_file) = populate(&first);
    let database = server::shared().database();
    let middle = PostgresStore::open(&database.url).expect("opens");
    dump::copy(&first, &middle, &|_| {}).expect("copies");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("back.db");
    let back = SqliteStore::open(&path).expect("opens");
    let copied = dump::copy(&middle, &back, &|_| {}).expect("copies back");
    assert_eq!(copied, dump::digests(&first).expect("digests"), "the round trip changes nothing");
    assert_eq!(reads(&first), reads(&back));
    let f = back.add_file(&file("new.img"), UnixTime(50)).expect("adds");
    assert!(f.id > last_file);
    let j = back.add_jobs(&[NewJob { mac: mac(1), kind: JobKind::Restart }], UnixTime(50)).expect("adds");
    assert!(j[0].id > last_job);
    drop(back);
    // Read-only, the copy reads the same.
    let read_only = SqliteStore::open_read_only(&path).expect("opens");
    assert_eq!(dump::digests(&read_only).expect("digests").len(), dump::TABLES.len() + 1);
}

/// A target whose import loses the first audit record on the way.
struct Lossy<'a> {
    inner: &'a dyn MigrationStore,
}

impl MigrationStore for Lossy<'_> {
    fn export(&self, sink: &mut dyn FnMut(Row) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.inner.export(sink)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }

    fn import(&self, rows: &mut dyn Iterator<Item = Result<Row, StoreError>>) -> Result<(), StoreError> {
        let mut lost = false;
        let mut rows = rows.filter(|r| {
            let audit = matches!(r, Ok(r) if r.table.name == "audit");
            let keep = lost || !audit;
            lost |= audit;
            keep
        });
        self.inner.import(&mut rows)
    }
}

#[test]
fn the_copy_verifies_what_it_wrote() {
    let source = SqliteStore::open_in_memory().expect("opens");
    populate(&source);
    let database = server::shared().database();
    let target = PostgresStore::open(&database.url).expect("opens");
    let e = dump::copy(&source, &Lossy { inner: &target }, &|_| {}).expect_err("caught");
    let MigrateError::Mismatch { table: "audit", source_rows, target_rows } = e else { panic!("{e:?}") };
    assert_eq!(source_rows, target_rows + 1);
}

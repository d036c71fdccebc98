//! The schema: [`MIGRATIONS`], one per version, counted by `PRAGMA user_version`, and the
//! migrations' steps in Rust.
//!
//! The missing migrations are applied in one transaction at open. A database from a newer
//! version, or a SQLite file that is not a DLS database (`PRAGMA application_id`), is
//! refused with [`StoreError::Corrupt`] and left untouched.

use dls_message::MacAddr;
use dls_store::StoreError;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::inventory::{Encoded, ItemRef, decode_stored, store_inventory};
use crate::sql::{Db, item_from_row, items_from_json, items_to_json, mac_from_sql};

/// `PRAGMA application_id` of a DLS database: "DLS1".
const APPLICATION_ID: i64 = 0x444C_5331;

/// One schema migration: SQL, then (if any) a step in Rust, in the same transaction.
pub(crate) struct Migration {
    sql: &'static str,
    then: Option<MigrationStep>,
}

/// A migration's step in Rust (e.g. moving data into a form SQL cannot make).
type MigrationStep = fn(&Connection, &Upgrade<'_>) -> Result<(), StoreError>;

/// Seals a device's PIN for keeping at rest with the caller's key: the device and the
/// PIN's digits in, the sealed bytes out (`None`: sealing failed). The store never holds
/// the key; it calls this only while upgrading a database that holds PINs in clear.
pub type PinSealer<'a> = &'a dyn Fn(MacAddr, &str) -> Option<Vec<u8>>;

/// What the migrations' Rust steps may need from the caller.
#[derive(Default)]
pub(crate) struct Upgrade<'a> {
    /// Seals the clear PINs of a schema-8 database (migration 9).
    pub(crate) pin_sealer: Option<PinSealer<'a>>,
}

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
/// Never edit a released migration; append a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: the initial schema.
    Migration {
        sql: "
    CREATE TABLE devices (
        mac                       TEXT PRIMARY KEY NOT NULL,  -- 12 upper-case hex digits
        registered_at             INTEGER NOT NULL,           -- Unix seconds
        last_contact_at           INTEGER,
        last_reason               TEXT,
        inventory_at              INTEGER,
        last_phone_cleanup_reason TEXT,
        last_deployment_status    TEXT                        -- JSON array of items
    ) WITHOUT ROWID;

    -- Profiles assigned to a device, in order. Not a foreign key to `profiles`: the
    -- names are checked when assigned, and deleting a profile deletes its assignments.
    CREATE TABLE device_profiles (
        mac      TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        profile  TEXT NOT NULL,
        PRIMARY KEY (mac, position)
    ) WITHOUT ROWID;
    CREATE INDEX device_profiles_by_profile ON device_profiles (profile);

    CREATE TABLE device_overrides (
        mac      TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name     TEXT NOT NULL,
        idx      INTEGER NOT NULL,                            -- -1: no index
        value    TEXT NOT NULL,
        type     TEXT,
        PRIMARY KEY (mac, position)
    ) WITHOUT ROWID;

    -- `seq` orders a device's items by first report (an upsert keeps it).
    CREATE TABLE inventory (
        seq   INTEGER PRIMARY KEY,
        mac   TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        name  TEXT NOT NULL,
        idx   INTEGER NOT NULL,                               -- -1: no index
        value TEXT NOT NULL,
        type  TEXT,
        UNIQUE (mac, name, idx)
    );

    CREATE TABLE written (
        mac         TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        idx         INTEGER NOT NULL,                         -- -1: no index
        fingerprint BLOB NOT NULL,                            -- 32 bytes
        outcome     TEXT NOT NULL,                            -- `accepted` | `refused:<status>` | `not-sent:<why>`
        PRIMARY KEY (mac, name, idx)
    ) WITHOUT ROWID;

    -- `seq` orders a device's nonces by first use; only the most recent are kept.
    CREATE TABLE nonces (
        seq     INTEGER PRIMARY KEY,
        mac     TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        nonce   TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        UNIQUE (mac, nonce)
    );

    CREATE TABLE profiles (
        name TEXT PRIMARY KEY NOT NULL,
        body TEXT NOT NULL                                    -- JSON, without the name
    ) WITHOUT ROWID;
    ",
        then: None,
    },
    // 2: secure mode — a device's security state, its certificates, the audit log.
    Migration {
        sql: "
    ALTER TABLE devices ADD COLUMN security_mode TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE devices ADD COLUMN bootstrap_state TEXT NOT NULL DEFAULT 'not-bootstrapped';
    ALTER TABLE devices ADD COLUMN pin TEXT;                  -- digits; NULL: none outstanding
    ALTER TABLE devices ADD COLUMN pin_issued_at INTEGER;
    ALTER TABLE devices ADD COLUMN tan_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN certificate_serial TEXT;   -- the current certificate

    -- `seq` orders a device's certificates by issue (the clock may go back; `seq` does not).
    -- At most one of a device's certificates is unrevoked: its current one.
    CREATE TABLE certificates (
        seq           INTEGER PRIMARY KEY,
        serial        TEXT NOT NULL UNIQUE,                  -- hex, upper case
        mac           TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        issued_at     INTEGER NOT NULL,
        not_after     INTEGER NOT NULL,
        revoked_at    INTEGER,
        revoke_reason TEXT                                   -- `superseded`, `reset`, …
    );
    CREATE INDEX certificates_by_mac ON certificates (mac, seq);

    -- Not a foreign key: the audit log outlives the devices it tells of.
    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL,
        mac    TEXT NOT NULL,
        kind   TEXT NOT NULL,                                -- `AuditKind`, kebab-case
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_mac ON audit (mac, seq);
    ",
        then: None,
    },
    // 3: HTTP Digest credentials for provisioning-file downloads. The secrets are sealed
    // by the caller: opaque bytes here.
    Migration {
        sql: "
    -- A device's secret (its MAC-ID), apart from `devices` so that no query of a
    -- device reads it by accident; deleted with the device.
    CREATE TABLE device_secrets (
        mac    TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        sealed BLOB NOT NULL
    ) WITHOUT ROWID;

    -- Fallback credentials, several usernames per scope. Not a foreign key to `profiles`
    -- (the global scope has none): deleting a profile deletes its credentials.
    CREATE TABLE fallback_credentials (
        scope_kind TEXT NOT NULL,                            -- `global` | `profile`
        profile    TEXT NOT NULL,                            -- '': the global scope
        username   TEXT NOT NULL,
        sealed     BLOB NOT NULL,
        PRIMARY KEY (scope_kind, profile, username)
    ) WITHOUT ROWID;
    ",
        then: None,
    },
    // 4: a device's inventory as one record (the rows of `inventory` are moved into it,
    // then the table is dropped: `move_inventories`), with copies in `devices` of the
    // items the admin listing shows; a counter of profile changes.
    Migration {
        sql: "
    CREATE TABLE inventories (
        mac   TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        items BLOB NOT NULL                                   -- see `encode_items`
    );

    -- Copies of the inventory's items without index of these names (NULL: none).
    ALTER TABLE devices ADD COLUMN device_type TEXT;
    ALTER TABLE devices ADD COLUMN software_version TEXT;
    ALTER TABLE devices ADD COLUMN e164 TEXT;

    -- Counts the changes of `profiles`, so that a cache of them knows when it is stale.
    CREATE TABLE profiles_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO profiles_version (id, version) VALUES (1, 0);
    CREATE TRIGGER profiles_inserted AFTER INSERT ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    CREATE TRIGGER profiles_updated AFTER UPDATE ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    CREATE TRIGGER profiles_deleted AFTER DELETE ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    ",
        then: Some(move_inventories),
    },
    // 5: jobs and deployment files.
    Migration {
        sql: "
    CREATE TABLE files (
        id               INTEGER PRIMARY KEY,
        name             TEXT NOT NULL,                       -- file-name
        file_type        TEXT NOT NULL,                       -- file-type
        size             INTEGER NOT NULL,
        sha256           TEXT NOT NULL,                       -- hex
        device_types     TEXT NOT NULL DEFAULT '[]',          -- JSON list (firmware)
        software_type    TEXT,
        software_version TEXT,
        added_at         INTEGER NOT NULL,
        UNIQUE (file_type, name)
    );

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        mac         TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        kind        TEXT NOT NULL,                            -- JSON of dls_engine::JobKind
        state       TEXT NOT NULL,                            -- queued, sent, busy-retry, done, failed, cancelled
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,               -- sent without an answer
        accepted    INTEGER NOT NULL DEFAULT 0,               -- a deployment the phone accepted
        answer      TEXT,                                     -- the phone's answer, in words
        items       TEXT,                                     -- JSON items of the answer
        token       TEXT UNIQUE,                              -- a deployment's download token
        file_id     INTEGER,                                  -- a deployment's file
        contact     TEXT,                                     -- the last contact-me, in words
        contact_at  INTEGER
    );
    -- The jobs not over, by device: the protocol path reads them at every message.
    CREATE INDEX jobs_open ON jobs (mac, id) WHERE state IN ('queued', 'sent', 'busy-retry');
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE INDEX jobs_by_file ON jobs (file_id) WHERE file_id IS NOT NULL;
    ",
        then: None,
    },
    // 6: the address a device last called from (where its contact-me may go).
    Migration {
        sql: "
    ALTER TABLE devices ADD COLUMN last_address TEXT;  -- an IP address, canonical form
    ",
        then: None,
    },
    // 7: retention (`Store::prune`) — old audit records and old jobs that are over are
    // deleted by age, without reading the whole table.
    Migration {
        sql: "
    CREATE INDEX audit_by_time ON audit (at);
    -- The jobs that are over, by their last change (the same terms as `jobs::PRUNE`).
    CREATE INDEX jobs_over_by_time ON jobs (updated_at) WHERE state IN ('done', 'failed', 'cancelled');
    ",
        then: None,
    },
    // 8: bootstrap material kept for reuse — a device's repeated start-ups before it
    // bootstraps get the material issued first (sealed by the caller: opaque bytes here).
    Migration {
        sql: "
    CREATE TABLE pending_bootstraps (
        mac       TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        serial    TEXT NOT NULL,                             -- its certificate
        issued_at INTEGER NOT NULL,
        sealed    BLOB NOT NULL
    ) WITHOUT ROWID;
    ",
        then: None,
    },
    // 9: PINs sealed at rest by the caller (`pin_sealed`, opaque bytes here): the clear
    // PINs of older versions are sealed with the caller's `PinSealer` and the clear column
    // is dropped (`seal_pins`).
    Migration {
        sql: "
    ALTER TABLE devices ADD COLUMN pin_sealed BLOB;           -- NULL: no PIN outstanding
    ",
        then: Some(seal_pins),
    },
    // 10: secrets a phone reported (passwords, keys, TANs) are no longer kept: the ones
    // earlier versions stored in inventories and job answers are removed
    // (`scrub_reported_secrets`).
    Migration { sql: "", then: Some(scrub_reported_secrets) },
    // 11: ids of jobs and files are never handed out again (`AUTOINCREMENT`): without it
    // SQLite gives the largest id plus one, so that deleting the newest file and adding
    // another made `files/<id>` repeat. SQLite cannot add `AUTOINCREMENT` to a table: both
    // are made anew, with their rows (and ids), and the jobs' indexes again.
    Migration {
        sql: "
    CREATE TABLE files_v11 (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        name             TEXT NOT NULL,                       -- file-name
        file_type        TEXT NOT NULL,                       -- file-type
        size             INTEGER NOT NULL,
        sha256           TEXT NOT NULL,                       -- hex
        device_types     TEXT NOT NULL DEFAULT '[]',          -- JSON list (firmware)
        software_type    TEXT,
        software_version TEXT,
        added_at         INTEGER NOT NULL,
        UNIQUE (file_type, name)
    );
    INSERT INTO files_v11 (id, name, file_type, size, sha256, device_types, software_type, software_version, added_at)
        SELECT id, name, file_type, size, sha256, device_types, software_type, software_version, added_at FROM files;
    DROP TABLE files;
    ALTER TABLE files_v11 RENAME TO files;

    CREATE TABLE jobs_v11 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        mac         TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        kind        TEXT NOT NULL,                            -- JSON of dls_engine::JobKind
        state       TEXT NOT NULL,                            -- queued, sent, busy-retry, done, failed, cancelled
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,               -- sent without an answer
        accepted    INTEGER NOT NULL DEFAULT 0,               -- a deployment the phone accepted
        answer      TEXT,                                     -- the phone's answer, in words
        items       TEXT,                                     -- JSON items of the answer
        token       TEXT UNIQUE,                              -- a deployment's download token
        file_id     INTEGER,                                  -- a deployment's file
        contact     TEXT,                                     -- the last contact-me, in words
        contact_at  INTEGER
    );
    INSERT INTO jobs_v11 (id, mac, kind, state, created_at, updated_at, attempts, accepted, answer, items, token,
                          file_id, contact, contact_at)
        SELECT id, mac, kind, state, created_at, updated_at, attempts, accepted, answer, items, token,
               file_id, contact, contact_at FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v11 RENAME TO jobs;
    CREATE INDEX jobs_open ON jobs (mac, id) WHERE state IN ('queued', 'sent', 'busy-retry');
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE INDEX jobs_by_file ON jobs (file_id) WHERE file_id IS NOT NULL;
    CREATE INDEX jobs_over_by_time ON jobs (updated_at) WHERE state IN ('done', 'failed', 'cancelled');
    ",
        then: None,
    },
    // 12: interaction sessions (`SessionStore`), kept until taken or expired. (`IF NOT
    // EXISTS`: the upgrade tests take a database back to an older version and up again.)
    Migration {
        sql: "
    CREATE TABLE IF NOT EXISTS wpi_sessions (
        id         TEXT PRIMARY KEY,                          -- the caller's id (a SHA-256 of the cookie)
        mac        TEXT NOT NULL,                             -- the device (no foreign key: for the log)
        expires_at INTEGER NOT NULL,                          -- Unix seconds, excluded
        body       BLOB NOT NULL                              -- the engine's encoding
    );
    CREATE INDEX IF NOT EXISTS wpi_sessions_by_expiry ON wpi_sessions (expires_at);
    ",
        then: None,
    },
    // 13: several nodes (issue 15) — the contact-me schedule a node claims phones from,
    // and the leases that keep work such as retention to one node at a time. New tables
    // only, created if missing (running it again changes nothing).
    Migration {
        sql: "
    CREATE TABLE IF NOT EXISTS contact_schedule (
        mac           TEXT PRIMARY KEY,                      -- 12 upper-case hex digits
        next_at       INTEGER NOT NULL,                      -- the next permitted time, Unix seconds
        failures      INTEGER NOT NULL DEFAULT 0,            -- failures in a row
        wanted        INTEGER NOT NULL DEFAULT 0,            -- needs contacting
        forced        INTEGER NOT NULL DEFAULT 0,            -- even without pending jobs
        claimed_by    TEXT,                                  -- the node sending it
        claimed_until INTEGER                                -- the claim's end
    );
    CREATE INDEX IF NOT EXISTS contact_schedule_due ON contact_schedule (next_at) WHERE wanted = 1;
    CREATE TABLE IF NOT EXISTS leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    ",
        then: None,
    },
    // 14: the console (issue 16) — accounts, their API tokens and console sessions (by
    // hashes: no password, token or session id is stored), and the audit log widened to
    // administrative changes: an actor, and no device for a change that is about none
    // (`widen_audit` makes the table anew, keeping its rows). New tables created if missing.
    Migration {
        sql: "
    CREATE TABLE IF NOT EXISTS accounts (
        name          TEXT PRIMARY KEY NOT NULL,             -- a-z 0-9 . _ - @
        role          TEXT NOT NULL,                         -- viewer | operator | admin
        password_hash TEXT NOT NULL,                         -- Argon2id, PHC string
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        last_login_at INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS api_tokens (
        key          TEXT PRIMARY KEY NOT NULL,              -- SHA-256 of the token, hex
        account      TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        UNIQUE (account, name)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS console_sessions (
        key          TEXT PRIMARY KEY NOT NULL,              -- SHA-256 of the session id, hex
        account      TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        created_at   INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS console_sessions_by_account ON console_sessions (account, last_seen_at);
    CREATE INDEX IF NOT EXISTS console_sessions_by_last_seen ON console_sessions (last_seen_at);
    CREATE INDEX IF NOT EXISTS console_sessions_by_created ON console_sessions (created_at);
    ",
        then: Some(widen_audit),
    },
    // 15: HTTP Digest shared by nodes (`DigestStore`) — the nonce counts used, and the
    // throttle's events (ids never handed out again: a node follows them by id). New
    // tables only, created if missing.
    Migration {
        sql: "
    CREATE TABLE IF NOT EXISTS digest_uses (
        nonce      BLOB NOT NULL,                         -- the caller's key of the nonce
        nc         INTEGER NOT NULL,                      -- the nonce count
        expires_at INTEGER NOT NULL,                      -- remembered until, Unix seconds
        PRIMARY KEY (nonce, nc)
    );
    CREATE INDEX IF NOT EXISTS digest_uses_by_expiry ON digest_uses (expires_at);
    CREATE TABLE IF NOT EXISTS digest_events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        origin  INTEGER NOT NULL,                         -- the recording node's random id
        at      INTEGER NOT NULL,                         -- Unix seconds
        success INTEGER NOT NULL,                         -- 1: authenticated, 0: failed
        subject BLOB NOT NULL                             -- whom it counts against (opaque)
    );
    CREATE INDEX IF NOT EXISTS digest_events_by_time ON digest_events (at);
    ",
        then: None,
    },
    // 16: mobility (issue 17) — users, their saved data, and the throttle of wrong
    // passwords. New tables only, created if missing.
    Migration {
        sql: "
    CREATE TABLE IF NOT EXISTS mobility_users (
        number              TEXT PRIMARY KEY NOT NULL,        -- normalised: digits, one leading +
        name                TEXT,
        password_hash       TEXT NOT NULL,                    -- Argon2id, PHC string
        profiles            TEXT NOT NULL DEFAULT '[]',       -- JSON list of profile names, in order
        device              TEXT UNIQUE REFERENCES devices (mac) ON DELETE SET NULL,  -- logged on at
        since               INTEGER,
        logoff_requested_at INTEGER,                          -- a forced logoff asked for
        revision            INTEGER NOT NULL DEFAULT 0,       -- counted up by every change
        created_at          INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS mobility_data (
        number   TEXT NOT NULL REFERENCES mobility_users (number) ON DELETE CASCADE,
        name     TEXT NOT NULL,                               -- userdata-…
        value    TEXT NOT NULL,                               -- Base64, as the phone sent it
        size     INTEGER NOT NULL,                            -- decoded bytes
        saved_at INTEGER NOT NULL,
        PRIMARY KEY (number, name)
    );
    CREATE TABLE IF NOT EXISTS mobility_throttle (
        key     TEXT PRIMARY KEY NOT NULL,                    -- pair:NUMBER:MAC, user:NUMBER, device:MAC
        tat     INTEGER NOT NULL,
        last    INTEGER NOT NULL,
        expires INTEGER NOT NULL                              -- restricts nothing from then on
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS mobility_throttle_by_expiry ON mobility_throttle (expires);
    ",
        then: None,
    },
    // 17: the console's device search (issue 16) — a trigram index (FTS5) of each device's
    // MAC and `e164`, so that a search for a substring of either reads the index, not the
    // whole table. Its rowid is the MAC as a number (`device_search_keys`): the index lists
    // the devices in MAC order, as the console's pages do (keyset on the MAC). Triggers keep
    // it in step with `devices` whoever writes (another process, an older tool); filled from
    // the devices there are. (`IF NOT EXISTS` and a refill: the upgrade tests run it again.)
    Migration {
        sql: "
    CREATE VIEW IF NOT EXISTS device_search_keys (mac, id) AS SELECT mac,
            ((instr('0123456789ABCDEF', substr(mac, 1, 1)) - 1) << 44) +
            ((instr('0123456789ABCDEF', substr(mac, 2, 1)) - 1) << 40) +
            ((instr('0123456789ABCDEF', substr(mac, 3, 1)) - 1) << 36) +
            ((instr('0123456789ABCDEF', substr(mac, 4, 1)) - 1) << 32) +
            ((instr('0123456789ABCDEF', substr(mac, 5, 1)) - 1) << 28) +
            ((instr('0123456789ABCDEF', substr(mac, 6, 1)) - 1) << 24) +
            ((instr('0123456789ABCDEF', substr(mac, 7, 1)) - 1) << 20) +
            ((instr('0123456789ABCDEF', substr(mac, 8, 1)) - 1) << 16) +
            ((instr('0123456789ABCDEF', substr(mac, 9, 1)) - 1) << 12) +
            ((instr('0123456789ABCDEF', substr(mac, 10, 1)) - 1) << 8) +
            ((instr('0123456789ABCDEF', substr(mac, 11, 1)) - 1) << 4) +
            ((instr('0123456789ABCDEF', substr(mac, 12, 1)) - 1) << 0)
        FROM devices;
    CREATE VIRTUAL TABLE IF NOT EXISTS device_search USING fts5 (mac, e164, tokenize = 'trigram');
    DELETE FROM device_search;
    INSERT INTO device_search (rowid, mac, e164) SELECT k.id, d.mac, d.e164
        FROM devices d JOIN device_search_keys k ON k.mac = d.mac;
    CREATE TRIGGER IF NOT EXISTS device_search_added AFTER INSERT ON devices BEGIN
        INSERT INTO device_search (rowid, mac, e164) SELECT id, new.mac, new.e164 FROM device_search_keys WHERE mac = new.mac;
    END;
    CREATE TRIGGER IF NOT EXISTS device_search_changing BEFORE UPDATE OF mac, e164 ON devices
        WHEN old.mac IS NOT new.mac OR old.e164 IS NOT new.e164 BEGIN
        DELETE FROM device_search WHERE rowid = (SELECT id FROM device_search_keys WHERE mac = old.mac);
    END;
    CREATE TRIGGER IF NOT EXISTS device_search_changed AFTER UPDATE OF mac, e164 ON devices
        WHEN old.mac IS NOT new.mac OR old.e164 IS NOT new.e164 BEGIN
        INSERT INTO device_search (rowid, mac, e164) SELECT id, new.mac, new.e164 FROM device_search_keys WHERE mac = new.mac;
    END;
    CREATE TRIGGER IF NOT EXISTS device_search_deleting BEFORE DELETE ON devices BEGIN
        DELETE FROM device_search WHERE rowid = (SELECT id FROM device_search_keys WHERE mac = old.mac);
    END;
    ",
        then: None,
    },
];

pub(crate) fn schema_latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The schema version of a DLS database this build can open, or why it cannot.
pub(crate) fn check_compatible(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).db()?;
    let application_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).db()?;
    if version == 0 && application_id == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", [], |r| r.get(0))
            .db()?;
        if objects > 0 {
            return Err(StoreError::Corrupt("a SQLite database, but not a DLS one (it has other tables)".into()));
        }
    } else if application_id != APPLICATION_ID {
        return Err(StoreError::Corrupt(format!(
            "a SQLite database, but not a DLS one (application_id {application_id:#x})"
        )));
    }
    let latest = schema_latest();
    if version > latest {
        return Err(StoreError::Corrupt(format!(
            "schema version {version}, newer than this version of dls knows ({latest}); use a newer dls"
        )));
    }
    usize::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema version {version}")))
}

/// Applies the missing migrations in one transaction.
pub(crate) fn migrate(conn: &mut Connection, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len(), upgrade)
}

/// Applies the migrations up to schema version `target` in one transaction (never down).
pub(crate) fn migrate_to(conn: &mut Connection, target: usize, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Again, under the write lock: another process may have migrated meanwhile.
    let start = check_compatible(&tx)?;
    let Some(pending) = MIGRATIONS.get(start..target).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for migration in pending {
        tx.execute_batch(migration.sql).db()?;
        if let Some(then) = migration.then {
            then(&tx, upgrade)?;
        }
    }
    let version = i64::try_from(target).map_err(|_| StoreError::Invalid(format!("schema version {target}")))?;
    tx.pragma_update(None, "user_version", version).db()?;
    tx.pragma_update(None, "application_id", APPLICATION_ID).db()?;
    tx.commit().db()
}

/// Migration 9: seals the clear PINs of older versions with the caller's sealer into
/// `pin_sealed`, then drops the clear column (its values overwritten: `secure_delete`).
/// Without a sealer, a database that holds a clear PIN is not upgraded.
fn seal_pins(conn: &Connection, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    // Not cached: it runs once.
    let rows: Vec<(String, Zeroizing<String>)> = {
        let mut stmt = conn.prepare("SELECT mac, pin FROM devices WHERE pin IS NOT NULL ORDER BY mac").db()?;
        stmt.query_map([], |r| Ok((r.get(0)?, Zeroizing::new(r.get::<_, String>(1)?))))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?
    };
    if !rows.is_empty() {
        let Some(seal) = upgrade.pin_sealer else {
            return Err(StoreError::Invalid(
                "the database holds PINs in clear from an older version of dls; `dls serve` seals them with \
                 its secrets key when it starts"
                    .into(),
            ));
        };
        let mut update = conn.prepare("UPDATE devices SET pin_sealed = ?2, pin = NULL WHERE mac = ?1").db()?;
        for (mac, pin) in &rows {
            let sealed = seal(mac_from_sql(mac)?, pin).ok_or_else(|| StoreError::Io("sealing a PIN failed".into()))?;
            dls_store::rules::check_sealed_pin(&sealed)?;
            update.execute(params![mac, sealed]).db()?;
        }
    }
    conn.execute_batch("ALTER TABLE devices DROP COLUMN pin").db()
}

/// Migration 14: the audit log gets an actor, and a record may be about no device (SQLite
/// cannot drop a `NOT NULL`: the table is made anew, its rows and their `seq` kept), with
/// indexes for the audit page's filters. A table that has the actor already is left alone.
fn widen_audit(conn: &Connection, _: &Upgrade<'_>) -> Result<(), StoreError> {
    // Not cached: it runs once.
    let has_actor: bool = conn
        .query_row("SELECT count(*) FROM pragma_table_info('audit') WHERE name = 'actor'", [], |r| r.get(0))
        .db()?;
    if has_actor {
        return Ok(());
    }
    conn.execute_batch(
        "CREATE TABLE audit_v14 (
             seq    INTEGER PRIMARY KEY,
             at     INTEGER NOT NULL,
             mac    TEXT,                                  -- the device, if any (no foreign key)
             actor  TEXT,                                  -- account, account:token, admin-token; NULL: a phone
             kind   TEXT NOT NULL,                         -- `EventKind`, kebab-case
             detail TEXT NOT NULL
         );
         INSERT INTO audit_v14 (seq, at, mac, kind, detail) SELECT seq, at, mac, kind, detail FROM audit;
         DROP TABLE audit;
         ALTER TABLE audit_v14 RENAME TO audit;
         CREATE INDEX audit_by_mac ON audit (mac, seq);
         CREATE INDEX audit_by_time ON audit (at);
         CREATE INDEX audit_by_actor ON audit (actor, seq);
         CREATE INDEX audit_by_kind ON audit (kind, seq);",
    )
    .db()
}

/// Migration 4: moves the rows of `inventory` (schema 1 to 3) into `inventories`, in
/// their order, one device at a time, and drops the table.
fn move_inventories(conn: &Connection, _: &Upgrade<'_>) -> Result<(), StoreError> {
    // Not cached: it runs once.
    let mut stmt = conn
        .prepare(
            "SELECT mac, name, idx, value, type FROM inventory
             WHERE mac IN (SELECT mac FROM devices) ORDER BY mac, seq",
        )
        .db()?;
    let mut rows = stmt.query([]).db()?;
    let mut device: Option<String> = None;
    let mut items = Vec::new();
    while let Some(row) = rows.next().db()? {
        let mac: String = row.get(0).db()?;
        if device.as_ref() != Some(&mac)
            && let Some(done) = device.replace(mac)
        {
            store_inventory(conn, &done, &Encoded::replacing(&items))?;
            items.clear();
        }
        items.push(item_from_row((row.get(1).db()?, row.get(2).db()?, row.get(3).db()?, row.get(4).db()?))?);
    }
    if let Some(done) = device {
        store_inventory(conn, &done, &Encoded::replacing(&items))?;
    }
    drop(rows);
    drop(stmt);
    conn.execute_batch("DROP TABLE inventory").db()
}

/// Migration 10: removes the items [`dls_engine::secret_items::is_secret`] names from every
/// stored inventory and job answer.
fn scrub_reported_secrets(conn: &Connection, _: &Upgrade<'_>) -> Result<(), StoreError> {
    use dls_engine::secret_items::is_secret;
    // Not cached: it runs once.
    let mut stmt = conn.prepare("SELECT mac, items FROM inventories").db()?;
    let inventories: Vec<(String, Vec<u8>)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?.collect::<Result<_, _>>().db()?;
    drop(stmt);
    for (mac, stored) in &inventories {
        let items = decode_stored(ValueRef::Blob(stored), mac)?;
        if items.iter().any(|i| is_secret(i.name)) {
            let kept: Vec<ItemRef<'_>> = items.into_iter().filter(|i| !is_secret(i.name)).collect();
            store_inventory(conn, mac, &Encoded::new(&kept))?;
        }
    }
    let mut stmt = conn.prepare("SELECT id, items FROM jobs WHERE items IS NOT NULL").db()?;
    let answers: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?.collect::<Result<_, _>>().db()?;
    drop(stmt);
    for (id, json) in answers {
        let mut items = items_from_json(&json)?;
        let before = items.len();
        items.retain(|i| !is_secret(&i.name));
        if items.len() != before {
            conn.execute("UPDATE jobs SET items = ?2 WHERE id = ?1", params![id, items_to_json(&items)?]).db()?;
        }
    }
    Ok(())
}

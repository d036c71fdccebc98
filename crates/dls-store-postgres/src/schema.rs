//! The schema: [`MIGRATIONS`], one per version, counted by the one row of
//! `schema_version`.
//!
//! The missing migrations are applied at open in one transaction (PostgreSQL's DDL is
//! transactional: all of them or none), under an advisory lock, so that of several nodes
//! starting at once one migrates and the others then find the schema done. A database
//! from a newer version, or one with tables of another application, is refused with
//! [`StoreError::Corrupt`] and left untouched.
//!
//! The tables and their meaning are those of the SQLite backend's schema (this schema's
//! version 1 is its version 11, version 2 adds `wpi_sessions` as its 12 does, 3 is its 13,
//! 4 its 14 (the console's accounts), 5 its 15 (the Digest tables), 6 its 16 (the mobility
//! users), 7 its 17 (the device search's trigram indexes: `pg_trgm`'s, not FTS5)), in
//! PostgreSQL's types. What differs:
//! * ids that are never handed out again (jobs, files) are identity columns: a sequence
//!   never gives a value twice, not even one of a rolled-back transaction;
//! * a device's inventory is one JSON array (`inventories.items`, as `Item`s serialise),
//!   not SQLite's binary record;
//! * the columns ordered by name compare bytes (`COLLATE "C"`), as Rust's `str` does,
//!   whatever the database's default collation;
//! * `profiles_version` is counted up by a statement trigger, in the transaction of the
//!   change, so that every node's cache of the profiles sees a change at its next read.

use dls_store::StoreError;
use postgres::{Client, IsolationLevel};

use crate::sql::{Db, Statements, Tx, get};

/// The advisory lock the migrations run under: "DMS" and 1, outside the namespace of the
/// devices' locks (`sql::device_lock_key`, whose top 16 bits are "DL").
pub(crate) const MIGRATION_LOCK: i64 = 0x444D_5300_0000_0001;

/// The tables of the schema: a database that holds one of them without `schema_version`
/// is not a DLS database (or a damaged one) and is not touched.
const TABLES: &[&str] = &[
    "devices",
    "device_profiles",
    "device_overrides",
    "inventories",
    "written",
    "nonces",
    "profiles",
    "profiles_version",
    "certificates",
    "audit",
    "device_secrets",
    "fallback_credentials",
    "pending_bootstraps",
    "files",
    "jobs",
    "wpi_sessions",
    "contact_schedule",
    "leases",
    "accounts",
    "api_tokens",
    "console_sessions",
    "digest_uses",
    "digest_events",
    "mobility_users",
    "mobility_data",
    "mobility_throttle",
];

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
/// Never edit a released migration; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the schema of the SQLite backend's version 11.
    r#"
    CREATE TABLE schema_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );

    CREATE TABLE devices (
        mac                       TEXT COLLATE "C" PRIMARY KEY,  -- 12 upper-case hex digits
        registered_at             BIGINT NOT NULL,               -- Unix seconds
        last_contact_at           BIGINT,
        last_reason               TEXT,
        inventory_at              BIGINT,
        last_phone_cleanup_reason TEXT,
        last_deployment_status    TEXT,                          -- JSON array of items
        security_mode             TEXT NOT NULL DEFAULT 'default',
        bootstrap_state           TEXT NOT NULL DEFAULT 'not-bootstrapped',
        pin_sealed                BYTEA,                         -- NULL: no PIN outstanding
        pin_issued_at             BIGINT,
        tan_failures              BIGINT NOT NULL DEFAULT 0,
        certificate_serial        TEXT,                          -- the current certificate
        -- Copies of the inventory's items without index of these names (NULL: none).
        device_type               TEXT,
        software_version          TEXT,
        e164                      TEXT,
        last_address              TEXT                           -- an IP address, canonical form
    );

    -- Profiles assigned to a device, in order. Not a foreign key to `profiles`: the names
    -- are checked when assigned, and deleting a profile deletes its assignments.
    CREATE TABLE device_profiles (
        mac      TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        profile  TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (mac, position)
    );
    CREATE INDEX device_profiles_by_profile ON device_profiles (profile);

    CREATE TABLE device_overrides (
        mac      TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        name     TEXT NOT NULL,
        idx      BIGINT NOT NULL,                                -- -1: no index
        value    TEXT NOT NULL,
        type     TEXT,
        PRIMARY KEY (mac, position)
    );

    -- A device's inventory as one record: a JSON array of its items, in the order of
    -- their first report.
    CREATE TABLE inventories (
        mac   TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (mac) ON DELETE CASCADE,
        items TEXT NOT NULL
    );

    CREATE TABLE written (
        mac         TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        idx         BIGINT NOT NULL,                             -- -1: no index
        fingerprint BYTEA NOT NULL,                              -- 32 bytes
        outcome     TEXT NOT NULL,                               -- `accepted` | `refused:<status>` | `not-sent:<why>`
        PRIMARY KEY (mac, name, idx)
    );

    -- `seq` orders a device's nonces by first use; only the most recent are kept.
    CREATE TABLE nonces (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        mac     TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        nonce   TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        UNIQUE (mac, nonce)
    );
    CREATE INDEX nonces_by_mac ON nonces (mac, seq);

    CREATE TABLE profiles (
        name TEXT COLLATE "C" PRIMARY KEY,
        body TEXT NOT NULL                                       -- JSON, without the name
    );

    -- Counts the changes of `profiles`, so that a cache of them knows when it is stale.
    CREATE TABLE profiles_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO profiles_version (id, version) VALUES (1, 0);
    CREATE FUNCTION dls_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE profiles_version SET version = version + 1;
            RETURN NULL;
        END
    $$;
    CREATE TRIGGER profiles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON profiles
        FOR EACH STATEMENT EXECUTE FUNCTION dls_profiles_changed();

    -- `seq` orders a device's certificates by issue (the clock may go back; `seq` does
    -- not). At most one of a device's certificates is unrevoked: its current one.
    CREATE TABLE certificates (
        seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        serial        TEXT NOT NULL UNIQUE,                      -- hex, upper case
        mac           TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        issued_at     BIGINT NOT NULL,
        not_after     BIGINT NOT NULL,
        revoked_at    BIGINT,
        revoke_reason TEXT                                       -- `superseded`, `reset`, …
    );
    CREATE INDEX certificates_by_mac ON certificates (mac, seq);

    -- Not a foreign key: the audit log outlives the devices it tells of.
    CREATE TABLE audit (
        seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at     BIGINT NOT NULL,
        mac    TEXT COLLATE "C" NOT NULL,
        kind   TEXT NOT NULL,                                    -- `AuditKind`, kebab-case
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_mac ON audit (mac, seq);
    CREATE INDEX audit_by_time ON audit (at);

    -- A device's Digest secret (its MAC-ID), sealed by the caller, apart from `devices`
    -- so that no query of a device reads it by accident; deleted with the device.
    CREATE TABLE device_secrets (
        mac    TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (mac) ON DELETE CASCADE,
        sealed BYTEA NOT NULL
    );

    -- Fallback credentials, several usernames per scope, sealed by the caller. Not a
    -- foreign key to `profiles` (the global scope has none): deleting a profile deletes
    -- its credentials.
    CREATE TABLE fallback_credentials (
        scope_kind TEXT COLLATE "C" NOT NULL,                    -- `global` | `profile`
        profile    TEXT COLLATE "C" NOT NULL,                    -- '': the global scope
        username   TEXT COLLATE "C" NOT NULL,
        sealed     BYTEA NOT NULL,
        PRIMARY KEY (scope_kind, profile, username)
    );

    -- Bootstrap material kept for reuse, sealed by the caller.
    CREATE TABLE pending_bootstraps (
        mac       TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (mac) ON DELETE CASCADE,
        serial    TEXT NOT NULL,                                 -- its certificate
        issued_at BIGINT NOT NULL,
        sealed    BYTEA NOT NULL
    );

    -- Deployment files (their content is the caller's, as `files/<id>`).
    CREATE TABLE files (
        id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name             TEXT NOT NULL,                          -- file-name
        file_type        TEXT NOT NULL,                          -- file-type
        size             BIGINT NOT NULL,
        sha256           TEXT NOT NULL,                          -- hex
        device_types     TEXT NOT NULL DEFAULT '[]',             -- JSON list (firmware)
        software_type    TEXT,
        software_version TEXT,
        added_at         BIGINT NOT NULL,
        UNIQUE (file_type, name)
    );

    CREATE TABLE jobs (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        mac         TEXT COLLATE "C" NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        kind        TEXT NOT NULL,                               -- JSON of dls_engine::JobKind
        state       TEXT NOT NULL,                               -- queued, sent, busy-retry, done, failed, cancelled
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL,
        attempts    BIGINT NOT NULL DEFAULT 0,                   -- sent without an answer
        accepted    BOOLEAN NOT NULL DEFAULT FALSE,              -- a deployment the phone accepted
        answer      TEXT,                                        -- the phone's answer, in words
        items       TEXT,                                        -- JSON items of the answer
        token       TEXT UNIQUE,                                 -- a deployment's download token
        file_id     BIGINT,                                      -- a deployment's file
        contact     TEXT,                                        -- the last contact-me, in words
        contact_at  BIGINT
    );
    -- The jobs not over, by device: the protocol path reads them at every message.
    CREATE INDEX jobs_open ON jobs (mac, id) WHERE state IN ('queued', 'sent', 'busy-retry');
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE INDEX jobs_by_file ON jobs (file_id) WHERE file_id IS NOT NULL;
    -- The jobs that are over, by their last change (retention).
    CREATE INDEX jobs_over_by_time ON jobs (updated_at) WHERE state IN ('done', 'failed', 'cancelled');
    "#,
    // 2: interaction sessions (`SessionStore`), kept until taken or expired: what lets an
    // interaction go on on another node.
    r#"
    CREATE TABLE wpi_sessions (
        id         TEXT COLLATE "C" PRIMARY KEY,                 -- the caller's id (a SHA-256 of the cookie)
        mac        TEXT COLLATE "C" NOT NULL,                    -- the device (no foreign key: for the log)
        expires_at BIGINT NOT NULL,                              -- Unix seconds, excluded
        body       BYTEA NOT NULL                                -- the engine's encoding
    );
    CREATE INDEX wpi_sessions_by_expiry ON wpi_sessions (expires_at);
    "#,
    // 3: several nodes — the contact-me schedule the nodes claim phones from, and the
    // leases that keep work such as retention to one node at a time (the SQLite backend's
    // version 13).
    r#"
    CREATE TABLE contact_schedule (
        mac           TEXT COLLATE "C" PRIMARY KEY,
        next_at       BIGINT NOT NULL,                 -- the next permitted time, Unix seconds
        failures      BIGINT NOT NULL DEFAULT 0,       -- failures in a row
        wanted        BOOLEAN NOT NULL DEFAULT FALSE,  -- needs contacting
        forced        BOOLEAN NOT NULL DEFAULT FALSE,  -- even without pending jobs
        claimed_by    TEXT,                            -- the node sending it
        claimed_until BIGINT                           -- the claim's end
    );
    CREATE INDEX contact_schedule_due ON contact_schedule (next_at) WHERE wanted;
    CREATE TABLE leases (
        name       TEXT COLLATE "C" PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    "#,
    // 4: the console (issue 16) — accounts, their API tokens and console sessions (by
    // hashes: no password, token or session id is stored), and the audit log widened to
    // administrative changes: an actor, and no device for a change that is about none
    // (the SQLite backend's version 15).
    r#"
    CREATE TABLE accounts (
        name          TEXT COLLATE "C" PRIMARY KEY,      -- a-z 0-9 . _ - @
        role          TEXT NOT NULL,                     -- viewer | operator | admin
        password_hash TEXT NOT NULL,                     -- Argon2id, PHC string
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL,
        last_login_at BIGINT
    );
    CREATE TABLE api_tokens (
        key          TEXT COLLATE "C" PRIMARY KEY,       -- SHA-256 of the token, hex
        account      TEXT COLLATE "C" NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        name         TEXT COLLATE "C" NOT NULL,
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT,
        UNIQUE (account, name)
    );
    CREATE TABLE console_sessions (
        key          TEXT COLLATE "C" PRIMARY KEY,       -- SHA-256 of the session id, hex
        account      TEXT COLLATE "C" NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        created_at   BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL
    );
    CREATE INDEX console_sessions_by_account ON console_sessions (account, last_seen_at);
    CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
    CREATE INDEX console_sessions_by_created ON console_sessions (created_at);

    ALTER TABLE audit ALTER COLUMN mac DROP NOT NULL;
    ALTER TABLE audit ADD COLUMN actor TEXT COLLATE "C";  -- account, account:token, admin-token; NULL: a phone
    CREATE INDEX audit_by_actor ON audit (actor, seq);
    CREATE INDEX audit_by_kind ON audit (kind, seq);
    "#,
    // 5: HTTP Digest shared by the nodes (`DigestStore`) — the nonce counts used, so that a
    // replay is refused on every node, and the throttle's events, which every node follows
    // by id (the SQLite backend's version 15).
    r#"
    CREATE TABLE digest_uses (
        nonce      BYTEA NOT NULL,                     -- the caller's key of the nonce
        nc         BIGINT NOT NULL,                    -- the nonce count
        expires_at BIGINT NOT NULL,                    -- remembered until, Unix seconds
        PRIMARY KEY (nonce, nc)
    );
    CREATE INDEX digest_uses_by_expiry ON digest_uses (expires_at);
    CREATE TABLE digest_events (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        origin  BIGINT NOT NULL,                       -- the recording node's random id
        at      BIGINT NOT NULL,                       -- Unix seconds
        success BOOLEAN NOT NULL,                      -- authenticated, or failed
        subject BYTEA NOT NULL                         -- whom it counts against (opaque)
    );
    CREATE INDEX digest_events_by_time ON digest_events (at);
    "#,
    // 6: mobility (issue 17) — users, their saved data, and the throttle of wrong
    // passwords (the SQLite backend's version 16).
    r#"
    CREATE TABLE mobility_users (
        number              TEXT COLLATE "C" PRIMARY KEY,     -- normalised: digits, one leading +
        name                TEXT,
        password_hash       TEXT NOT NULL,                    -- Argon2id, PHC string
        profiles            TEXT NOT NULL DEFAULT '[]',       -- JSON list of profile names, in order
        device              TEXT COLLATE "C" UNIQUE REFERENCES devices (mac) ON DELETE SET NULL,  -- logged on at
        since               BIGINT,
        logoff_requested_at BIGINT,                           -- a forced logoff asked for
        revision            BIGINT NOT NULL DEFAULT 0,        -- counted up by every change
        created_at          BIGINT NOT NULL
    );
    CREATE TABLE mobility_data (
        number   TEXT COLLATE "C" NOT NULL REFERENCES mobility_users (number) ON DELETE CASCADE,
        name     TEXT COLLATE "C" NOT NULL,                   -- userdata-…
        value    TEXT NOT NULL,                               -- Base64, as the phone sent it
        size     BIGINT NOT NULL,                             -- decoded bytes
        saved_at BIGINT NOT NULL,
        PRIMARY KEY (number, name)
    );
    CREATE TABLE mobility_throttle (
        key     TEXT COLLATE "C" PRIMARY KEY,                 -- pair:NUMBER:MAC, user:NUMBER, device:MAC
        tat     BIGINT NOT NULL,
        last    BIGINT NOT NULL,
        expires BIGINT NOT NULL                               -- restricts nothing from then on (0: being made)
    );
    CREATE INDEX mobility_throttle_by_expiry ON mobility_throttle (expires);
    "#,
    // 7: the console's device search (issue 16) — trigram indexes (`pg_trgm`, a trusted
    // extension since PostgreSQL 13: a database owner may create it) of the MACs and the
    // lower-case `e164`s, which serve `LIKE '%…%'`, a search for a substring (the SQLite
    // backend's version 17 does it with FTS5). Where the extension cannot be created (not
    // installed, not permitted), the migration goes on without the indexes: a search then
    // scans the table, as before, and the node logs PostgreSQL's notice. The indexes
    // themselves are [`SEARCH_INDEXES`]'s, which runs after this in the same transaction.
    r#"
    DO $$
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'dls: no trigram indexes for the device search (CREATE EXTENSION pg_trgm: %): a search scans the devices', SQLERRM;
    END
    $$;
    "#,
];

/// The schema version that has the device search's trigram indexes when `pg_trgm` is there.
const SEARCH_INDEXES_SINCE: usize = 7;

/// The trigram indexes of version 7, made where `pg_trgm` is installed and they are
/// missing: after version 7's migration, and at every start after (under the migration
/// lock), so that an extension installed later (an administrator's `CREATE EXTENSION`,
/// docs/cluster.md) gets them too. Where they cannot be made, PostgreSQL's notice says why
/// and the start goes on (a search then scans, as before).
const SEARCH_INDEXES: &str = r#"
    DO $$
    DECLARE
        trgm TEXT;
    BEGIN
        SELECT extnamespace::regnamespace::TEXT INTO trgm FROM pg_extension WHERE extname = 'pg_trgm';
        IF trgm IS NOT NULL AND (to_regclass('devices_search_mac') IS NULL OR to_regclass('devices_search_e164') IS NULL) THEN
            BEGIN
                EXECUTE format('CREATE INDEX IF NOT EXISTS devices_search_mac ON devices USING gin (mac %s.gin_trgm_ops)', trgm);
                EXECUTE format('CREATE INDEX IF NOT EXISTS devices_search_e164 ON devices USING gin (lower(e164) %s.gin_trgm_ops)', trgm);
                RAISE NOTICE 'dls: the device search''s trigram indexes were made';
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'dls: no trigram indexes for the device search (%): a search scans the devices', SQLERRM;
            END;
        END IF;
    END
    $$;
"#;

pub(crate) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The schema version of the database, or why this build must not touch it.
fn current(tx: &mut Tx<'_>) -> Result<usize, StoreError> {
    let row = tx.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?;
    let version: i64 = if get::<bool>(&row, 0)? {
        let rows = tx.query("SELECT version FROM schema_version", &[])?;
        match rows.as_slice() {
            [row] => get(row, 0)?,
            _ => return Err(StoreError::Corrupt(format!("schema_version holds {} rows, not one", rows.len()))),
        }
    } else {
        let names: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        let row = tx.query_one(
            "SELECT string_agg(t, ', ') FROM unnest($1::TEXT[]) AS t WHERE to_regclass(t) IS NOT NULL",
            &[&names],
        )?;
        if let Some(found) = get::<Option<String>>(&row, 0)? {
            return Err(StoreError::Corrupt(format!(
                "the database has tables named like DLS's ({found}) but no schema_version: not a DLS database"
            )));
        }
        0
    };
    let latest = latest();
    if version > latest {
        return Err(StoreError::Corrupt(format!(
            "schema version {version}, newer than this version of dls knows ({latest}); use a newer dls"
        )));
    }
    usize::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema version {version}")))
}

/// Applies the missing migrations in one transaction, under [`MIGRATION_LOCK`], and makes
/// the trigram indexes `pg_trgm` allows now ([`SEARCH_INDEXES`]).
pub(crate) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    migrate_to(client, MIGRATIONS.len())
}

/// Applies the migrations up to schema version `target` in one transaction (never down).
pub(crate) fn migrate_to(client: &mut Client, target: usize) -> Result<(), StoreError> {
    let mut statements = Statements::default();
    let tx = client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().db()?;
    let mut tx = Tx::new(tx, &mut statements);
    // Another node may be migrating: wait for it, then see what it did.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let start = current(&mut tx)?;
    if let Some(pending) = MIGRATIONS.get(start..target).filter(|m| !m.is_empty()) {
        for migration in pending {
            tx.batch(migration)?;
        }
        let version = i64::try_from(target).map_err(|_| StoreError::Invalid(format!("schema version {target}")))?;
        tx.execute(
            "INSERT INTO schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = $1",
            &[&version],
        )?;
    }
    if start.max(target) >= SEARCH_INDEXES_SINCE {
        tx.batch(SEARCH_INDEXES)?;
    }
    tx.commit()
}

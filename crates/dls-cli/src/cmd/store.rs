//! `dls store`: tools that work on a database itself, not through a running service.
//!
//! `dls store migrate --from sqlite:PATH --to postgres://…` copies a whole database into
//! an empty one ([`dls_store::dump::copy`]): every table, in one transaction of the target,
//! then verified table by table (rows and a SHA-256 of their contents, read back from the
//! target). The SQLite source is opened read-only: nothing in it changes (an older schema
//! must be upgraded first, by this version's `dls serve`). A PostgreSQL source is opened as
//! the service opens it: an older schema is upgraded (in one transaction), the data is only
//! read. A target that holds data is
//! refused before anything is written. When verification fails the copy is committed: the
//! command says so, and the target must be emptied (dropped and created again) before
//! another attempt.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dls_store::StoreError;
use dls_store::dump::{self, MigrateError, MigrationStore, Row};
use dls_store_postgres::PostgresStore;
use dls_store_sqlite::SqliteStore;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::{MALFORMED, OTHER, fail, usage};

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCmd {
    /// Copy a whole database into an empty one (e.g. SQLite to PostgreSQL), and verify the copy.
    ///
    /// Stop the service first: what it writes during the copy is not copied. The contents
    /// of deployment files are not in the database: copy the data directory's files/ too.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The database to copy: sqlite:PATH (opened read-only) or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, value_name = "DATABASE")]
    from: String,
    /// The empty database to copy into: postgres://USER@HOST:PORT/DATABASE or sqlite:PATH.
    #[arg(long, value_name = "DATABASE")]
    to: String,
}

/// A database named on the command line.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

fn location(text: &str, flag: &str) -> anyhow::Result<Location> {
    if let Some(path) = text.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err(usage(format!("{flag}: sqlite: needs a path (sqlite:/var/lib/dls/dls.db)")));
        }
        return Ok(Location::Sqlite(PathBuf::from(path)));
    }
    // The service's own check of a store URL, whose messages never show the password.
    match dls_server::StoreLocation::new(text).kind() {
        Ok(dls_server::StoreKind::Postgres) => Ok(Location::Postgres(text.to_owned())),
        Ok(_) => Err(usage(format!("{flag}: sqlite needs a path: sqlite:PATH"))),
        Err(why) => Err(usage(format!("{flag}: {why}; expected sqlite:PATH or a postgres:// URL"))),
    }
}

/// A store error with its exit code: data this version cannot read is malformed (3).
fn store_error(e: StoreError, what: &str) -> anyhow::Error {
    let code = if matches!(e, StoreError::Corrupt(_)) { MALFORMED } else { OTHER };
    fail(code, format!("{what}: {e}"))
}

fn open(location: &Location, source: bool) -> anyhow::Result<Box<dyn MigrationStore>> {
    let what = if source { "the source database" } else { "the target database" };
    Ok(match location {
        Location::Sqlite(path) if source => {
            Box::new(SqliteStore::open_read_only(path).map_err(|e| store_error(e, what))?)
        }
        Location::Sqlite(path) => Box::new(SqliteStore::open(path).map_err(|e| store_error(e, what))?),
        Location::Postgres(url) => Box::new(PostgresStore::open(url).map_err(|e| store_error(e, what))?),
    })
}

pub(crate) fn run(cmd: StoreCmd) -> anyhow::Result<()> {
    match cmd {
        StoreCmd::Migrate(args) => migrate(&args),
    }
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let from = location(&args.from, "--from")?;
    let to = location(&args.to, "--to")?;
    if from == to {
        return Err(usage("--from and --to name the same database"));
    }
    let source = open(&from, true)?;
    let target = open(&to, false)?;
    // Rows copied, on standard error when that is a terminal (hidden otherwise).
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} rows copied ({per_sec}) {msg}") {
        bar.set_style(style);
    }
    let progress = |row: &Row| {
        if bar.position().is_multiple_of(1000) {
            bar.set_message(row.table.name);
        }
        bar.inc(1);
    };
    let copied = dump::copy(&*source, &*target, &progress);
    bar.finish_and_clear();
    let copied = copied.map_err(|e| match e {
        MigrateError::Source(e) => store_error(e, "the source database"),
        MigrateError::Target(e) => store_error(e, "the target database"),
        other => fail(OTHER, other),
    })?;
    let mut out = String::new();
    for table in &copied {
        out.push_str(&format!("{}: {} rows copied, verified\n", table.table, table.rows));
    }
    out.push_str(
        "The deployment files' contents are not in the database: copy the data directory's files/ to the new \
         service's data directory (their ids are kept, so files/<id> stay valid).\n",
    );
    std::io::stdout().lock().write_all(out.as_bytes()).context("writing the summary")
}

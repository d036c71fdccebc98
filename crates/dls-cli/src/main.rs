//! `dls`: a DLS-style provisioning service for enterprise desk phones, and its tools.
//!
//! Exit codes, for every subcommand: 0 success, 2 usage error, 3 malformed input,
//! 4 authentication failure, 1 anything else. Errors go to stderr as one line.

// The doc comments of the argument structs are clap's `--help` texts, written for a
// terminal (`[ADDR]:PORT`, plain URLs), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

mod cmd;
mod exit;
mod io;
mod table;
mod upload;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// The allocator of every subcommand: jemalloc. The service allocates and frees a message's
/// items, XML and stored records per request on several threads; with glibc's allocator a
/// known phone's start-up cost 17 % more server CPU (docs/BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// DLS-style provisioning service for OpenStage / OpenScape desk phones (WPI).
#[derive(Debug, Parser)]
#[command(name = "dls", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the DLS service.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Manage devices (through the admin API of a running service).
    #[command(subcommand)]
    Device(cmd::admin::DeviceCmd),
    /// Manage fallback digest credentials for provisioning-file downloads.
    #[command(subcommand)]
    Credentials(cmd::admin::CredentialsCmd),
    /// Queue, list and cancel jobs: server-initiated work (through the admin API).
    #[command(subcommand)]
    Job(cmd::jobs::JobCmd),
    /// Manage deployment files: firmware, ring tones, logos… (through the admin API).
    #[command(subcommand)]
    File(cmd::jobs::FileCmd),
    /// Manage console and API accounts and their API tokens (through the admin API; admin only).
    #[command(subcommand)]
    Account(cmd::accounts::AccountCmd),
    /// Show the audit log: security events and administrative changes (through the admin API).
    Audit(cmd::admin::AuditArgs),
    /// Manage configuration profiles (through the admin API).
    #[command(subcommand)]
    Profile(cmd::admin::ProfileCmd),
    /// Manage mobility users (hot desking): add, list, show, log on and off at a phone
    /// (through the admin API).
    #[command(subcommand)]
    User(cmd::users::UserCmd),
    /// Work on a database itself (not through a running service): move it to another backend.
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// Simulate phones: one phone's interaction, or a fleet for load tests.
    #[command(subcommand)]
    Phone(cmd::phone::PhoneCmd),
    /// Decode and encode WPI messages.
    #[command(subcommand)]
    Message(cmd::message::MessageCmd),
    /// Generate bootstrap PINs.
    #[command(subcommand)]
    Pin(cmd::secure_mode::PinCmd),
    /// Seal and open the encrypted `secure-mode-data` bundle.
    #[command(subcommand, name = "secure-mode-data")]
    SecureModeData(cmd::secure_mode::SecureModeDataCmd),
    /// Print a shell completion script (e.g. `dls completions bash > /etc/bash_completion.d/dls`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, roff (e.g. `dls man | man -l -`).
    Man,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(mut e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            if let Some(variable) = from_the_environment(&e) {
                use clap::error::{ContextKind, ContextValue};
                let mut tips = match e.get(ContextKind::Suggested) {
                    Some(ContextValue::StyledStrs(tips)) => tips.clone(),
                    _ => Vec::new(),
                };
                tips.push(format!("the value is that of the environment variable {variable}").into());
                e.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
            }
            // clap prints help and version on stdout, errors on stderr.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Device(c) => cmd::admin::run_device(c),
        Command::Profile(c) => cmd::admin::run_profile(c),
        Command::User(c) => cmd::users::run(c),
        Command::Audit(a) => cmd::admin::run_audit(a),
        Command::Account(c) => cmd::accounts::run_account(c),
        Command::Job(c) => cmd::jobs::run_job(c),
        Command::File(c) => cmd::jobs::run_file(c),
        Command::Credentials(c) => cmd::admin::run_credentials(c),
        Command::Store(c) => cmd::store::run(c),
        Command::Phone(c) => cmd::phone::run(c),
        Command::Message(c) => cmd::message::run(c),
        Command::Pin(c) => cmd::secure_mode::run_pin(c),
        Command::SecureModeData(c) => cmd::secure_mode::run_secure_mode_data(c),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dls", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let code = exit::code_of(&e);
            eprintln!("dls: {}", exit::one_line(&e));
            ExitCode::from(code)
        }
    }
}

/// The environment variable a value clap refused came from, if it did: clap's message
/// names only the flag, which the command line may not hold.
fn from_the_environment(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    // "--max-connections <N>", "--admin-tls[=<BOOL>]"
    let long = arg.strip_prefix("--")?.split([' ', '[', '=']).next()?;
    let flag = format!("--{long}");
    let given = std::env::args_os().skip(1).any(|a| {
        a.to_str().is_some_and(|a| a == flag || a.strip_prefix(flag.as_str()).is_some_and(|rest| rest.starts_with('=')))
    });
    if given {
        return None;
    }
    fn find(command: &clap::Command, long: &str) -> Option<std::ffi::OsString> {
        let own = command.get_arguments().find(|a| a.get_long() == Some(long)).and_then(|a| a.get_env());
        own.map(ToOwned::to_owned).or_else(|| command.get_subcommands().find_map(|c| find(c, long)))
    }
    let variable = find(&Cli::command(), long)?;
    std::env::var_os(&variable).is_some().then(|| variable.to_string_lossy().into_owned())
}

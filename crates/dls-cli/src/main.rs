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
    /// Show the security audit log (through the admin API).
    Audit(cmd::admin::AuditArgs),
    /// Manage configuration profiles (through the admin API).
    #[command(subcommand)]
    Profile(cmd::admin::ProfileCmd),
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
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            // clap prints help and version on stdout, errors on stderr.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Device(c) => cmd::admin::run_device(c),
        Command::Profile(c) => cmd::admin::run_profile(c),
        Command::Audit(a) => cmd::admin::run_audit(a),
        Command::Job(c) => cmd::jobs::run_job(c),
        Command::File(c) => cmd::jobs::run_file(c),
        Command::Credentials(c) => cmd::admin::run_credentials(c),
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

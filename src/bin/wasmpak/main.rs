//! `wasmpak`: build, inspect, verify and maintain packs of compiled WebAssembly modules.
//!
//! This file holds the command line (clap derive), the dispatch to one module per command, and
//! the one place where failures are printed and turned into exit codes, so that every command
//! fails the same way: one `error:` line on stderr, a documented exit code, never a panic
//! message or a backtrace.

#![deny(unsafe_code)]

mod artifact;
mod build;
mod compact;
mod demo;
mod engine;
mod error;
mod extract;
mod info;
mod input;
mod install;
mod keygen;
mod list;
mod merge;
mod open;
mod output;
mod panics;
mod resolve;
mod rm;
mod run;
mod sign;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Exit codes, shown by every `--help`: scripts depend on them. A macro so that `concat!` can
/// append it to each command's examples.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    success
  1    error: a missing, unreadable or invalid file, a damaged pack, a pack of another engine
       identity, a full disk, ... (one `error:` line on stderr; the pack is left unchanged)
  2    usage: the command line is invalid or asks for something this build cannot do
  3    verification failed: `verify` found a damaged, unsigned or altered entry, or `install`
       refused the pack for it
  4    `verify --deep` cannot load the pack's modules on this host (another target or CPU);
       the checksums are intact
  101  internal error (a bug in wasmpak), also reported in one line"
    };
}

/// A command's help epilogue: its examples for `-h`; examples and exit codes for `--help`.
macro_rules! help {
    ($($example:literal),+ $(,)?) => {
        concat!("Examples:", $("\n  ", $example),+)
    };
    (long: $($example:literal),+ $(,)?) => {
        concat!("Examples:", $("\n  ", $example),+, "\n\n", exit_codes!())
    };
}

/// Compiled WebAssembly modules for wasmer, cached in one pack file per engine identity.
#[derive(Debug, Parser)]
#[command(
    name = "wasmpak",
    version,
    about = "Build, inspect and verify packs of compiled WebAssembly modules for wasmer",
    long_about = "Build, inspect and verify packs of compiled WebAssembly modules for wasmer.\n\n\
        A pack is one append-only, memory-mapped, checksummed file holding the modules compiled by \
        one engine (compiler, wasmer version, target, CPU features), each under the SHA-256 of its \
        wasm bytes. Compile once in CI with `build`, ship the pack next to the application, and \
        every node loads from it.",
    after_help = help!(
        "wasmpak demo",
        "wasmpak build app.wpk modules/*.wasm",
        "wasmpak list app.wpk",
        "wasmpak verify --deep app.wpk",
        "wasmpak run app.wpk modules/math.wasm --invoke add 2 3",
    ),
    after_long_help = help!(long:
        "wasmpak demo",
        "wasmpak build app.wpk modules/*.wasm",
        "wasmpak list app.wpk",
        "wasmpak verify --deep app.wpk",
        "wasmpak run app.wpk modules/math.wasm --invoke add 2 3",
    ),
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Open packs that users other than their owner or root can modify. Refused by default:
    /// whoever can write a pack can run code in every process that loads from it.
    #[arg(long, global = true)]
    allow_shared_write: bool,
}

/// The commands, one module each.
#[derive(Debug, Subcommand)]
enum Command {
    /// Compile .wasm and .wat files in parallel and append them to a pack
    #[command(
        after_help = help!(
            "wasmpak build app.wpk modules/*.wasm",
            "wasmpak build -j 4 app.wpk a.wasm b.wat",
            "wasmpak build --target aarch64-unknown-linux-gnu arm.wpk modules/*.wasm",
            "wasmpak build app.wpk modules/*.wasm --sign ci.pem",
        ),
        after_long_help = help!(long:
            "wasmpak build app.wpk modules/*.wasm",
            "wasmpak build -j 4 app.wpk a.wasm b.wat",
            "wasmpak build --target aarch64-unknown-linux-gnu arm.wpk modules/*.wasm",
        )
    )]
    Build(build::Args),
    /// List a pack's entries: key, label, size, offset
    #[command(
        after_help = help!(
            "wasmpak list app.wpk",
            "wasmpak list --json app.wpk | jq -r '.entries[].label'",
        ),
        after_long_help = help!(long:
            "wasmpak list app.wpk",
            "wasmpak list --json app.wpk | jq -r '.entries[].label'",
        )
    )]
    List(list::Args),
    /// Show a pack's identity, generation, entries and space use
    #[command(
        after_help = help!("wasmpak info app.wpk", "wasmpak info --json app.wpk"),
        after_long_help = help!(long: "wasmpak info app.wpk", "wasmpak info --json app.wpk")
    )]
    Info(info::Args),
    /// Check every entry's checksum; --key also its signature, --deep loads each module
    #[command(
        after_help = help!(
            "wasmpak verify app.wpk",
            "wasmpak verify app.wpk --key ci.pub.pem",
            "wasmpak verify --deep app.wpk || echo \"damaged (3) or not loadable here (4)\"",
        ),
        after_long_help = help!(long:
            "wasmpak verify app.wpk",
            "wasmpak verify app.wpk --key ci.pub.pem",
            "wasmpak verify --deep app.wpk || echo \"damaged (3) or not loadable here (4)\"",
        )
    )]
    Verify(verify::Args),
    /// Create an Ed25519 key pair for signing packs (PEM, as openssl writes them)
    #[command(
        after_help = help!("wasmpak keygen ci.pem", "wasmpak keygen keys/ci.pem --public keys/nodes.pem"),
        after_long_help = help!(long:
            "wasmpak keygen ci.pem",
            "wasmpak keygen keys/ci.pem --public keys/nodes.pem",
        )
    )]
    Keygen(keygen::Args),
    /// Sign every entry of a pack with a secret key
    #[command(
        after_help = help!("wasmpak sign app.wpk --key ci.pem"),
        after_long_help = help!(long: "wasmpak sign app.wpk --key ci.pem")
    )]
    Sign(sign::Args),
    /// Copy a pack into a directory atomically, verify every byte (and its signatures with
    /// --key), and leave it sealed and read-only
    #[command(
        after_help = help!(
            "wasmpak install app.wpk /opt/app/modules --key ci.pub.pem",
            "wasmpak install app.wpk /opt/app/modules",
        ),
        after_long_help = help!(long:
            "wasmpak install app.wpk /opt/app/modules --key ci.pub.pem",
            "wasmpak install app.wpk /opt/app/modules",
        )
    )]
    Install(install::Args),
    /// Rewrite a pack without dead bytes, optionally evicting least recently used entries
    #[command(
        after_help = help!(
            "wasmpak compact app.wpk",
            "wasmpak compact --max-bytes 500M --max-entries 1000 app.wpk",
        ),
        after_long_help = help!(long:
            "wasmpak compact app.wpk",
            "wasmpak compact --max-bytes 500M --max-entries 1000 app.wpk",
        )
    )]
    Compact(compact::Args),
    /// Remove entries by key, label or key prefix
    #[command(
        after_help = help!("wasmpak rm app.wpk hello.wasm", "wasmpak rm app.wpk 3f2a9c01 old.wat"),
        after_long_help = help!(long:
            "wasmpak rm app.wpk hello.wasm",
            "wasmpak rm app.wpk 3f2a9c01 old.wat",
        )
    )]
    Rm(rm::Args),
    /// Write one entry's raw artifact to a file, loadable by Module::deserialize
    #[command(
        after_help = help!(
            "wasmpak extract app.wpk hello.wasm -o hello.bin",
            "wasmpak extract app.wpk 3f2a9c01 -o - > hello.bin",
        ),
        after_long_help = help!(long:
            "wasmpak extract app.wpk hello.wasm -o hello.bin",
            "wasmpak extract app.wpk 3f2a9c01 -o - > hello.bin",
        )
    )]
    Extract(extract::Args),
    /// Copy the entries of packs of the same engine identity into one
    #[command(
        after_help = help!("wasmpak merge all.wpk job1.wpk job2.wpk"),
        after_long_help = help!(long: "wasmpak merge all.wpk job1.wpk job2.wpk")
    )]
    Merge(merge::Args),
    /// Load a module as a runtime would (pack hit, or compile and save), instantiate it and
    /// optionally call a function
    #[command(
        after_help = help!(
            "wasmpak run app.wpk hello.wasm",
            "wasmpak run app.wpk math.wat --invoke add 2 -3",
        ),
        after_long_help = help!(long:
            "wasmpak run app.wpk hello.wasm",
            "wasmpak run app.wpk math.wat --invoke add 2 -3",
        )
    )]
    Run(run::Args),
    /// Compare compiling, loading from a pack and loading one file per module (no arguments,
    /// no network, no files needed)
    #[command(
        after_help = help!("wasmpak demo"),
        after_long_help = help!(long: "wasmpak demo")
    )]
    Demo,
}

/// Parses the command line (clap exits with 2 on usage errors, 0 for `--help`), runs the
/// command, and reports its failure.
fn main() -> ExitCode {
    panics::install_hook();
    let cli = Cli::parse();
    open::allow_shared_write(cli.allow_shared_write);
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::List(args) => list::run(args),
        Command::Info(args) => info::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Install(args) => install::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Run(args) => run::run(args),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// Prints `error: ...` and returns the error's exit code.
fn report(error: &CliError) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
    ExitCode::from(error.exit() as u8)
}

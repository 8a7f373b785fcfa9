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
#[cfg(feature = "object-store")]
mod delta;
mod demo;
mod demo_caches;
#[cfg(feature = "object-store")]
mod download;
mod engine;
mod error;
mod extract;
mod import;
mod info;
mod input;
mod install;
mod invoke;
mod keygen;
mod list;
mod merge;
mod open;
mod output;
mod panics;
#[cfg(feature = "object-store")]
mod pull;
#[cfg(feature = "object-store")]
mod push;
#[cfg(feature = "object-store")]
mod remote;
mod resolve;
mod rm;
mod run;
mod sign;
mod verify;
mod wasi;

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
        "wasmpak build --cpu-features x86-64-v3 packs/ modules/*.wasm",
        "wasmpak list app.wpk",
        "wasmpak verify --deep app.wpk",
        "wasmpak run app.wpk modules/tool.wasm -- ARGS...",
    ),
    after_long_help = help!(long:
        "wasmpak demo",
        "wasmpak build app.wpk modules/*.wasm",
        "wasmpak build --cpu-features x86-64-v3 packs/ modules/*.wasm",
        "wasmpak list app.wpk",
        "wasmpak verify --deep app.wpk",
        "wasmpak run app.wpk modules/tool.wasm -- ARGS...",
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
            "wasmpak build --cpu-features x86-64-v2 packs/ modules/*.wasm",
            "wasmpak build --target aarch64-unknown-linux-gnu arm.wpk modules/*.wasm",
            "wasmpak build app.wpk modules/*.wasm --sign ci.pem",
        ),
        after_long_help = help!(long:
            "wasmpak build app.wpk modules/*.wasm",
            "wasmpak build -j 4 app.wpk a.wasm b.wat",
            "wasmpak build --cpu-features x86-64-v2 packs/ modules/*.wasm",
            "wasmpak build --target aarch64-unknown-linux-gnu arm.wpk modules/*.wasm",
            "wasmpak build --force app.wpk modules/*.wasm",
        )
    )]
    Build(build::Args),
    /// Copy the artifacts of an existing module cache (wasix's FileSystemCache layout, or
    /// .bin files) that this host's wasmer accepts into a pack, without compiling
    #[command(
        after_help = help!(
            "wasmpak import /var/cache/app/packs/ ~/.wasmer/cache/compiled",
            "wasmpak import app.wpk old-cache/cranelift-opts-wasmer-universal-v12 extra.bin",
        ),
        after_long_help = help!(long:
            "wasmpak import /var/cache/app/packs/ ~/.wasmer/cache/compiled",
            "wasmpak import app.wpk old-cache/cranelift-opts-wasmer-universal-v12 extra.bin",
        )
    )]
    Import(import::Args),
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
        after_help = help!(
            "wasmpak rm app.wpk hello.wasm",
            "wasmpak rm app.wpk 3f2a9c01 old.wat",
            "wasmpak rm -f app.wpk maybe-gone.wasm",
        ),
        after_long_help = help!(long:
            "wasmpak rm app.wpk hello.wasm",
            "wasmpak rm app.wpk 3f2a9c01 old.wat",
            "wasmpak rm -f app.wpk maybe-gone.wasm",
        )
    )]
    Rm(rm::Args),
    /// Write one entry's raw artifact to a file, loadable by Module::deserialize
    #[command(
        after_help = help!(
            "wasmpak extract app.wpk hello.wasm          # to hello.bin",
            "wasmpak extract app.wpk 3f2a9c01 > hello.bin",
            "wasmpak extract app.wpk hello.wasm -o /tmp/hello.bin",
        ),
        after_long_help = help!(long:
            "wasmpak extract app.wpk hello.wasm          # to hello.bin",
            "wasmpak extract app.wpk 3f2a9c01 > hello.bin",
            "wasmpak extract app.wpk hello.wasm -o /tmp/hello.bin",
        )
    )]
    Extract(extract::Args),
    /// Copy the entries of packs of the same engine identity into one
    #[command(
        after_help = help!("wasmpak merge all.wpk job1.wpk job2.wpk"),
        after_long_help = help!(long: "wasmpak merge all.wpk job1.wpk job2.wpk")
    )]
    Merge(merge::Args),
    /// Load a module as a runtime would (pack hit, or compile and save), then run it as a WASI
    /// program (its exit code becomes wasmpak's) or call one of its functions
    #[command(
        after_help = help!(
            "wasmpak run app.wpk tool.wasm -- --verbose input.txt",
            "wasmpak run app.wpk tool.wasm --env LANG=C --dir ./data:/data -- /data/in.txt",
            "wasmpak run app.wpk math.wat --invoke add 2 -3",
        ),
        after_long_help = concat!(
            help!(long:
                "wasmpak run app.wpk tool.wasm -- --verbose input.txt",
                "wasmpak run app.wpk tool.wasm --env LANG=C --dir ./data:/data -- /data/in.txt",
                "wasmpak run app.wpk math.wat --invoke add 2 -3",
            ),
            "\n\nA WASI program's own exit code is wasmpak's, as with `wasmer run`; the codes \
            above are wasmpak's own failures; a trap is 45, as in wasix. Status lines (hit, \
            miss) go to stderr. Running WASI programs needs the `wasix` cargo feature."
        )
    )]
    Run(run::Args),
    /// Upload a pack to an object store (S3, GCS, Azure, a directory), verified, all at once
    #[cfg(feature = "object-store")]
    #[command(
        after_help = help!(
            "wasmpak push app.wpk s3://my-bucket/packs/",
            "AWS_ENDPOINT_URL=http://127.0.0.1:9000 wasmpak push app.wpk s3://local/app.wpk",
        ),
        after_long_help = help!(long:
            "wasmpak push app.wpk s3://my-bucket/packs/",
            "AWS_ENDPOINT_URL=http://127.0.0.1:9000 wasmpak push app.wpk s3://local/app.wpk",
        )
    )]
    Push(push::Args),
    /// Download a pack from an object store into a directory, verified before it appears;
    /// into an existing pack, fetch only the entries it lacks
    #[cfg(feature = "object-store")]
    #[command(
        after_help = help!(
            "wasmpak pull s3://my-bucket/packs/app.wpk /var/cache/app",
            "wasmpak pull --replace gs://my-bucket/app.wpk ./packs",
        ),
        after_long_help = help!(long:
            "wasmpak pull s3://my-bucket/packs/app.wpk /var/cache/app",
            "wasmpak pull --replace gs://my-bucket/app.wpk ./packs",
        )
    )]
    Pull(pull::Args),
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
    let json = cli.command.prints_json();
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Import(args) => import::run(args),
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
        #[cfg(feature = "object-store")]
        Command::Push(args) => push::run(args),
        #[cfg(feature = "object-store")]
        Command::Pull(args) => pull::run(args),
        Command::Run(args) => {
            return match run::run(args) {
                // Like a shell, keep the low 8 bits of a WASI exit code.
                Ok(code) => ExitCode::from(code as u8),
                Err(error) => report(&error, json),
            };
        }
        Command::Demo => demo::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error, json),
    }
}

impl Command {
    /// Whether the command was asked for JSON output: its errors are JSON too.
    fn prints_json(&self) -> bool {
        match self {
            Command::List(args) => args.json,
            Command::Info(args) => args.json,
            _ => false,
        }
    }
}

/// Prints `error: ...` on stderr (and for `--json` commands, the error as a JSON document on
/// stdout, where the script reading the output looks) and returns the error's exit code.
fn report(error: &CliError, json: bool) -> ExitCode {
    if json {
        let _ = output::print_json(&error.to_json());
    }
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
    ExitCode::from(error.exit() as u8)
}

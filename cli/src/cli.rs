//! The command line: the global flags, one subcommand per command, and each command's help
//! epilogue (examples, exit codes). Parsing only; `main.rs` dispatches.

use clap::{Parser, Subcommand};

use crate::commands::{
    build, compact, extract, import, info, install, keygen, list, merge, rm, run, sign, verify,
};
#[cfg(feature = "object-store")]
use crate::commands::{pull, push};
use crate::context::Global;

/// Exit codes, shown by every `--help`: scripts depend on them. A macro so that `concat!` can
/// append it to each command's examples; the numbers are `ErrorKind::exit_code`'s.
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

/// A command's help epilogues: `short`, its examples, for `-h`; `long`, the examples and the
/// exit codes (and a note, if any), for `--help`.
struct Help {
    short: &'static str,
    long: &'static str,
}

/// [`Help`] from examples, written once for both.
macro_rules! help {
    ($($example:literal),+ $(,)? $(; note: $note:literal)?) => {
        Help {
            short: concat!("Examples:", $("\n  ", $example),+),
            long: concat!(
                "Examples:", $("\n  ", $example),+, "\n\n", exit_codes!() $(, "\n\n", $note)?
            ),
        }
    };
}

/// The help epilogues, one per command.
mod examples {
    use super::Help;

    pub const WASMPAK: Help = help!(
        "wasmpak demo",
        "wasmpak build app.wpk modules/*.wasm",
        "wasmpak build --cpu-features x86-64-v3 packs/ modules/*.wasm",
        "wasmpak list app.wpk",
        "wasmpak verify --deep app.wpk",
        "wasmpak run app.wpk modules/tool.wasm -- ARGS...",
    );
    pub const BUILD: Help = help!(
        "wasmpak build app.wpk modules/*.wasm",
        "wasmpak build -j 4 app.wpk a.wasm b.wat",
        "wasmpak build --cpu-features x86-64-v2 packs/ modules/*.wasm",
        "wasmpak build --target aarch64-unknown-linux-gnu arm.wpk modules/*.wasm",
        "wasmpak build app.wpk modules/*.wasm --sign ci.pem",
        "wasmpak build --force app.wpk modules/*.wasm",
    );
    pub const IMPORT: Help = help!(
        "wasmpak import /var/cache/app/packs/ ~/.wasmer/cache/compiled",
        "wasmpak import app.wpk old-cache/cranelift-opts-wasmer-universal-v12 extra.bin",
    );
    pub const LIST: Help = help!(
        "wasmpak list app.wpk",
        "wasmpak list --json app.wpk | jq -r '.entries[].label'",
    );
    pub const INFO: Help = help!("wasmpak info app.wpk", "wasmpak info --json app.wpk");
    pub const VERIFY: Help = help!(
        "wasmpak verify app.wpk",
        "wasmpak verify app.wpk --key ci.pub.pem",
        "wasmpak verify --deep app.wpk || echo \"damaged (3) or not loadable here (4)\"",
    );
    pub const KEYGEN: Help = help!(
        "wasmpak keygen ci.pem",
        "wasmpak keygen keys/ci.pem --public keys/nodes.pem",
    );
    pub const SIGN: Help = help!("wasmpak sign app.wpk --key ci.pem");
    pub const INSTALL: Help = help!(
        "wasmpak install app.wpk /opt/app/modules --key ci.pub.pem",
        "wasmpak install app.wpk /opt/app/modules",
    );
    pub const COMPACT: Help = help!(
        "wasmpak compact app.wpk",
        "wasmpak compact --max-bytes 500M --max-entries 1000 app.wpk",
    );
    pub const RM: Help = help!(
        "wasmpak rm app.wpk hello.wasm",
        "wasmpak rm app.wpk 3f2a9c01 old.wat",
        "wasmpak rm -f app.wpk maybe-gone.wasm",
    );
    pub const EXTRACT: Help = help!(
        "wasmpak extract app.wpk hello.wasm          # to hello.bin",
        "wasmpak extract app.wpk 3f2a9c01 > hello.bin",
        "wasmpak extract app.wpk hello.wasm -o /tmp/hello.bin",
    );
    pub const MERGE: Help = help!("wasmpak merge all.wpk job1.wpk job2.wpk");
    pub const RUN: Help = help!(
        "wasmpak run app.wpk tool.wasm -- --verbose input.txt",
        "wasmpak run app.wpk tool.wasm --env LANG=C --dir ./data:/data -- /data/in.txt",
        "wasmpak run app.wpk math.wat --invoke add 2 -3";
        note: "A WASI program's own exit code is wasmpak's, as with `wasmer run`; the codes \
            above are wasmpak's own failures; a trap is 45, as in wasix. Status lines (hit, \
            miss) go to stderr. Running WASI programs needs the `wasix` cargo feature."
    );
    #[cfg(feature = "object-store")]
    pub const PUSH: Help = help!(
        "wasmpak push app.wpk s3://my-bucket/packs/",
        "AWS_ENDPOINT_URL=http://127.0.0.1:9000 wasmpak push app.wpk s3://local/app.wpk",
    );
    #[cfg(feature = "object-store")]
    pub const PULL: Help = help!(
        "wasmpak pull s3://my-bucket/packs/app.wpk /var/cache/app",
        "wasmpak pull --replace gs://my-bucket/app.wpk ./packs",
    );
    pub const DEMO: Help = help!("wasmpak demo");
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
    after_help = examples::WASMPAK.short,
    after_long_help = examples::WASMPAK.long,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// The commands, one module each under `commands/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile .wasm and .wat files in parallel and append them to a pack
    #[command(after_help = examples::BUILD.short, after_long_help = examples::BUILD.long)]
    Build(build::Args),
    /// Copy the artifacts of an existing module cache (wasix's FileSystemCache layout, or
    /// .bin files) that this host's wasmer accepts into a pack, without compiling
    #[command(after_help = examples::IMPORT.short, after_long_help = examples::IMPORT.long)]
    Import(import::Args),
    /// List a pack's entries: key, label, size, offset
    #[command(after_help = examples::LIST.short, after_long_help = examples::LIST.long)]
    List(list::Args),
    /// Show a pack's identity, generation, entries and space use
    #[command(after_help = examples::INFO.short, after_long_help = examples::INFO.long)]
    Info(info::Args),
    /// Check every entry's checksum; --key also its signature, --deep loads each module
    #[command(after_help = examples::VERIFY.short, after_long_help = examples::VERIFY.long)]
    Verify(verify::Args),
    /// Create an Ed25519 key pair for signing packs (PEM, as openssl writes them)
    #[command(after_help = examples::KEYGEN.short, after_long_help = examples::KEYGEN.long)]
    Keygen(keygen::Args),
    /// Sign every entry of a pack with a secret key
    #[command(after_help = examples::SIGN.short, after_long_help = examples::SIGN.long)]
    Sign(sign::Args),
    /// Copy a pack into a directory atomically, verify every byte (and its signatures with
    /// --key), and leave it sealed and read-only
    #[command(after_help = examples::INSTALL.short, after_long_help = examples::INSTALL.long)]
    Install(install::Args),
    /// Rewrite a pack without dead bytes, optionally evicting least recently used entries
    #[command(after_help = examples::COMPACT.short, after_long_help = examples::COMPACT.long)]
    Compact(compact::Args),
    /// Remove entries by key, label or key prefix
    #[command(after_help = examples::RM.short, after_long_help = examples::RM.long)]
    Rm(rm::Args),
    /// Write one entry's raw artifact to a file, loadable by Module::deserialize
    #[command(after_help = examples::EXTRACT.short, after_long_help = examples::EXTRACT.long)]
    Extract(extract::Args),
    /// Copy the entries of packs of the same engine identity into one
    #[command(after_help = examples::MERGE.short, after_long_help = examples::MERGE.long)]
    Merge(merge::Args),
    /// Load a module as a runtime would (pack hit, or compile and save), then run it as a WASI
    /// program (its exit code becomes wasmpak's) or call one of its functions
    #[command(after_help = examples::RUN.short, after_long_help = examples::RUN.long)]
    Run(run::Args),
    /// Upload a pack to an object store (S3, GCS, Azure, a directory), verified, all at once
    #[cfg(feature = "object-store")]
    #[command(after_help = examples::PUSH.short, after_long_help = examples::PUSH.long)]
    Push(push::Args),
    /// Download a pack from an object store into a directory, verified before it appears;
    /// into an existing pack, fetch only the entries it lacks
    #[cfg(feature = "object-store")]
    #[command(after_help = examples::PULL.short, after_long_help = examples::PULL.long)]
    Pull(pull::Args),
    /// Compare compiling, loading from a pack and loading one file per module (no arguments,
    /// no network, no files needed)
    #[command(after_help = examples::DEMO.short, after_long_help = examples::DEMO.long)]
    Demo,
}

impl Command {
    /// Whether the command was asked for JSON output: its errors are JSON too.
    pub fn prints_json(&self) -> bool {
        match self {
            Command::List(args) => args.json,
            Command::Info(args) => args.json,
            _ => false,
        }
    }
}

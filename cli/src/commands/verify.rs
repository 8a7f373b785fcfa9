//! `wasmpak verify`: is every byte of the pack what was written, and (with `--deep`) does
//! wasmer accept every module?
//!
//! `--deep` hands wasmer only entries that passed every check asked for: their checksums,
//! and with `--key` their signatures (the pack is opened with the keys, so each value is
//! hashed again as it is read). Deserializing is not safe for bytes that fail a check: a
//! forged artifact with valid checksums can crash the process or worse. Without `--key`, or
//! on an unsigned pack, it says that it trusts the bytes as written.
//!
//! The report goes to stdout, one line per problem, each naming the entry's key and label;
//! the verdict is the exit code (0 intact, 3 damaged, 4 cannot deep-check on this host) plus
//! one `error:` line on stderr. A pack too damaged to open is "damaged" too (3), unless it is
//! not a pack at all or cannot be read (1).

use std::path::PathBuf;

use wasmpak::{CacheErrorKind, Key, Pack};

use crate::context::Context;
use crate::engine;
use crate::error::{CliError, ErrorKind, deserialize_detail};
use crate::output::{self, say};
use crate::resolve::Labels;
use crate::signing;

/// Arguments of `wasmpak verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to check
    pub pack: PathBuf,
    /// Also load every module with a headless wasmer engine (needs a host matching the pack's
    /// target and CPU features)
    #[arg(long)]
    pub deep: bool,
    /// Also require every entry to be signed by this public key (SPKI PEM) and to hash to what
    /// it signed; repeat for several trusted keys
    #[arg(long, value_name = "PUBLIC.pem")]
    pub key: Vec<PathBuf>,
}

/// Runs `wasmpak verify`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let keys = signing::read_public_keys(&args.key)?;
    let pack = ctx
        .pack_options()
        .trusted_keys(keys.iter().copied())
        .open_any(&args.pack)
        .map_err(damaged)?;
    let labels = Labels::of(&pack);
    let name = |key: &Key| match labels.get(key) {
        Some(label) => format!("{key} ({label})"),
        None => key.to_string(),
    };

    let report = pack.verify().map_err(damaged)?;
    let mut bad: Vec<String> = Vec::new();
    for problem in report.problems() {
        let line = match problem.key() {
            Some(key) => format!(
                "entry {} at offset {}: {}",
                name(key),
                problem.offset(),
                problem.detail()
            ),
            None => format!("offset {}: {}", problem.offset(), problem.detail()),
        };
        say!("bad  {line}")?;
        bad.push(line);
    }
    say!(
        "checksums: {}, {} checked, {}",
        output::count(report.entries(), "entry", "entries"),
        output::bytes(report.bytes()),
        if report.is_ok() {
            "all intact".to_string()
        } else {
            output::count(bad.len() as u64, "problem", "problems")
        }
    )?;

    let mut untrusted: Vec<Key> = Vec::new();
    if !keys.is_empty() {
        let signed = pack.verify_signatures(&keys).map_err(damaged)?;
        let mut unsigned = 0;
        for problem in signed.problems() {
            let line = match problem.key() {
                Some(key) => format!("entry {}: not trusted: {}", name(key), problem.detail()),
                None => format!("offset {}: {}", problem.offset(), problem.detail()),
            };
            if let Some(key) = problem.key() {
                unsigned += 1;
                untrusted.push(*key);
            }
            say!("bad  {line}")?;
            bad.push(line);
        }
        say!(
            "signatures: {}, {} trusted by {}",
            output::count(signed.entries(), "entry", "entries"),
            if signed.is_ok() {
                "all".to_string()
            } else {
                format!("{} not", unsigned)
            },
            signing::key_ids(&keys)
        )?;
    }

    let mut cannot_load_here = None;
    if args.deep {
        let already_bad: Vec<Key> = report
            .problems()
            .iter()
            .filter_map(|p| p.key().copied())
            .chain(untrusted)
            .collect();
        match engine::host_can_load(pack.identity()) {
            Ok(()) => {
                if keys.is_empty() {
                    let why = match pack.signatures().map(|s| s.is_empty()) {
                        Ok(true) => "the pack is not signed",
                        _ => "signatures not checked (no --key)",
                    };
                    say!("deep: {why}: trusting its bytes as written")?;
                }
                let (loaded, problems) = deep(&pack, &already_bad, &name)?;
                say!(
                    "deep: {} loaded by wasmer, {}",
                    output::count(loaded as u64, "entry", "entries"),
                    if problems.is_empty() {
                        "all accepted".to_string()
                    } else {
                        format!("{} refused", problems.len())
                    }
                )?;
                bad.extend(problems);
            }
            Err(why) => {
                say!("deep: skipped, this host cannot load the pack's modules: {why}")?;
                cannot_load_here = Some(why);
            }
        }
    }

    let shown = args.pack.display();
    match (bad.as_slice(), cannot_load_here) {
        ([], None) => Ok(()),
        ([], Some(why)) => Err(CliError::new(
            ErrorKind::CannotLoadHere,
            format!(
                "cannot deep-verify pack {shown} on this host ({why}); its checksums are intact"
            ),
        )),
        ([one], _) => Err(CliError::new(
            ErrorKind::VerifyFailed,
            format!("pack {shown} failed verification: {one}"),
        )),
        (many, _) => Err(CliError::new(
            ErrorKind::VerifyFailed,
            format!(
                "pack {shown} failed verification: {} problems, the first: {}",
                many.len(),
                many[0]
            ),
        )),
    }
}

/// Loads every live entry not already found bad; returns how many loaded and a line per
/// refusal. A fresh engine per entry keeps memory flat: an engine keeps the code of every
/// module it loaded.
fn deep(
    pack: &Pack,
    already_bad: &[Key],
    name: &dyn Fn(&Key) -> String,
) -> Result<(usize, Vec<String>), CliError> {
    let mut problems = Vec::new();
    let mut loaded = 0;
    for key in pack.keys().map_err(damaged)? {
        if already_bad.contains(&key) {
            continue;
        }
        let engine = engine::headless();
        let detail = match wasmpak::load_module(pack, &key, &engine) {
            Ok(_) => {
                loaded += 1;
                continue;
            }
            Err(e) if e.kind() == CacheErrorKind::NotFound => "removed while verifying".to_string(),
            Err(e) if e.kind() == CacheErrorKind::Deserialize => {
                format!("wasmer refuses it: {}", deserialize_detail(&e))
            }
            Err(e) => e.to_string(),
        };
        let line = format!("entry {}: {detail}", name(&key));
        say!("bad  {line}")?;
        problems.push(line);
    }
    Ok((loaded, problems))
}

/// A pack error as a verdict: structures failing their checks are damage (exit 3); a file
/// that is not a pack, or cannot be read, is an ordinary error (exit 1).
fn damaged(error: wasmpak::Error) -> CliError {
    if error.kind() == wasmpak::ErrorKind::Corrupt {
        CliError::new(ErrorKind::VerifyFailed, error)
    } else {
        error.into()
    }
}

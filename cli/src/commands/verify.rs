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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;
use wasmpak::{CacheErrorKind, Key, Pack};

use crate::context::Context;
use crate::engine;
use crate::error::{CliError, ErrorKind, deserialize_detail};
use crate::open;
use crate::output::{self, EntryJson};
use crate::resolve::Labels;
use crate::signing;

/// Arguments of `wasmpak verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to check (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
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

/// The JSON document `verify --json` prints, failed or not.
#[derive(Serialize, Default)]
struct Report {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    /// Whether the pack passed every check asked for.
    ok: bool,
    checksums: Checked,
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<Checked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deep: Option<Deep>,
    /// Every live entry (as far as the index can be read), with the problems found in it.
    entries: Vec<EntryReport>,
    /// Why `ok` is false, as every `--json` error is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

/// What one check found.
#[derive(Serialize, Default)]
struct Checked {
    entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// Key ids of the trusted keys (signatures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<String>>,
    problems: Vec<ProblemJson>,
}

/// `--deep`: what wasmer made of the modules.
#[derive(Serialize, Default)]
struct Deep {
    loaded: u64,
    problems: Vec<ProblemJson>,
    /// Why this host could not load them, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

#[derive(Serialize, Clone)]
struct ProblemJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    detail: String,
}

#[derive(Serialize)]
struct EntryReport {
    #[serde(flatten)]
    entry: EntryJson,
    problems: Vec<String>,
}

/// Runs `wasmpak verify`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let keys = signing::read_public_keys(&args.key)?;
    let path = open::host_pack_path(&args.pack);
    let pack = ctx
        .pack_options()
        .trusted_keys(keys.iter().copied())
        .open_any(&path)
        .map_err(damaged)?;
    let mut json = Report {
        pack: path.display().to_string(),
        identity: output::identity_json(pack.identity()),
        ..Report::default()
    };
    // Lines as they are found, unless stdout is for the JSON document.
    let say = output::lines(ctx.json);
    let labels = Labels::of(&pack);
    let name = |key: &Key| match labels.get(key) {
        Some(label) => format!("{key} ({label})"),
        None => key.to_string(),
    };

    // Problems by entry, for the JSON document's `entries`.
    let mut by_key: HashMap<Key, Vec<String>> = HashMap::new();
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
        if let Some(key) = problem.key() {
            by_key
                .entry(*key)
                .or_default()
                .push(problem.detail().to_string());
        }
        json.checksums.problems.push(ProblemJson {
            key: problem.key().map(Key::to_string),
            offset: Some(problem.offset()),
            detail: problem.detail().to_string(),
        });
        say(format!("bad  {line}"))?;
        bad.push(line);
    }
    json.checksums.entries = report.entries();
    json.checksums.bytes = Some(report.bytes());
    say(format!(
        "checksums: {}, {} checked, {}",
        output::count(report.entries(), "entry", "entries"),
        output::bytes(report.bytes()),
        if report.is_ok() {
            "all intact".to_string()
        } else {
            output::count(bad.len() as u64, "problem", "problems")
        }
    ))?;

    let mut untrusted: Vec<Key> = Vec::new();
    if !keys.is_empty() {
        let signed = pack.verify_signatures(&keys).map_err(damaged)?;
        let mut unsigned = 0;
        let mut checked = Checked {
            entries: signed.entries(),
            keys: Some(keys.iter().map(|k| k.id()).collect()),
            ..Checked::default()
        };
        for problem in signed.problems() {
            let line = match problem.key() {
                Some(key) => format!("entry {}: not trusted: {}", name(key), problem.detail()),
                None => format!("offset {}: {}", problem.offset(), problem.detail()),
            };
            if let Some(key) = problem.key() {
                unsigned += 1;
                let detail = format!("not trusted: {}", problem.detail());
                by_key.entry(*key).or_default().push(detail);
                untrusted.push(*key);
            }
            checked.problems.push(ProblemJson {
                key: problem.key().map(Key::to_string),
                offset: problem.key().is_none().then(|| problem.offset()),
                detail: problem.detail().to_string(),
            });
            say(format!("bad  {line}"))?;
            bad.push(line);
        }
        json.signatures = Some(checked);
        say(format!(
            "signatures: {}, {} trusted by {}",
            output::count(signed.entries(), "entry", "entries"),
            if signed.is_ok() {
                "all".to_string()
            } else {
                format!("{} not", unsigned)
            },
            signing::key_ids(&keys)
        ))?;
    }

    let mut cannot_load_here = None;
    if args.deep {
        let already_bad: Vec<Key> = report
            .problems()
            .iter()
            .filter_map(|p| p.key().copied())
            .chain(untrusted)
            .collect();
        let mut report = Deep::default();
        match engine::host_can_load(pack.identity()) {
            Ok(()) => {
                if keys.is_empty() {
                    let why = match pack.signatures().map(|s| s.is_empty()) {
                        Ok(true) => "the pack is not signed",
                        _ => "signatures not checked (no --key)",
                    };
                    say(format!("deep: {why}: trusting its bytes as written"))?;
                }
                let (loaded, problems) = deep(&pack, &already_bad, &name, &say)?;
                report.loaded = loaded as u64;
                for (key, detail) in &problems {
                    by_key.entry(*key).or_default().push(detail.clone());
                    report.problems.push(ProblemJson {
                        key: Some(key.to_string()),
                        offset: None,
                        detail: detail.clone(),
                    });
                }
                say(format!(
                    "deep: {} loaded by wasmer, {}",
                    output::count(loaded as u64, "entry", "entries"),
                    if problems.is_empty() {
                        "all accepted".to_string()
                    } else {
                        format!("{} refused", problems.len())
                    }
                ))?;
                bad.extend(
                    problems
                        .into_iter()
                        .map(|(key, detail)| format!("entry {}: {detail}", name(&key))),
                );
            }
            Err(why) => {
                say(format!(
                    "deep: skipped, this host cannot load the pack's modules: {why}"
                ))?;
                report.skipped = Some(why.clone());
                cannot_load_here = Some(why);
            }
        }
        json.deep = Some(report);
    }

    let verdict = verdict(&path, &bad, cannot_load_here);
    if !ctx.json {
        return verdict;
    }
    let signatures = output::signatures(&pack);
    json.entries = pack
        .iter()
        .map(|entries| {
            entries
                .map(|e| EntryReport {
                    problems: by_key.remove(e.key()).unwrap_or_default(),
                    entry: EntryJson::new(&e, &signatures),
                })
                .collect()
        })
        .unwrap_or_default();
    json.ok = verdict.is_ok();
    json.error = verdict.as_ref().err().map(|e| e.to_json()["error"].clone());
    output::print_json(&json)?;
    verdict.map_err(CliError::in_report)
}

/// The verdict: success, damage (3), or intact but not loadable here (4).
fn verdict(
    path: &std::path::Path,
    bad: &[String],
    cannot_load_here: Option<String>,
) -> Result<(), CliError> {
    let shown = path.display();
    match (bad, cannot_load_here) {
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

/// Loads every live entry not already found bad; returns how many loaded and each refusal.
/// A fresh engine per entry keeps memory flat: an engine keeps the code of every module it
/// loaded.
fn deep(
    pack: &Pack,
    already_bad: &[Key],
    name: &dyn Fn(&Key) -> String,
    say: &dyn Fn(String) -> Result<(), CliError>,
) -> Result<(usize, Vec<(Key, String)>), CliError> {
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
        say(format!("bad  entry {}: {detail}", name(&key)))?;
        problems.push((key, detail));
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

//! `wasmpak build`: compile modules in parallel and append them to a pack in one commit.
//!
//! All or nothing: every input is read and compiled before the pack is touched, so a bad input
//! leaves the pack exactly as it was (and creates none). The writer lock is held only for the
//! append and commit, so builds into the same pack from several processes compile in parallel
//! and queue only to write; the presence check is repeated under the lock, so a module another
//! build added meanwhile is skipped rather than written twice, and nothing is lost.
//!
//! An entry already in the pack is kept only if its checksum holds: a damaged one is compiled
//! again and replaced (and said so), so rebuilding in CI repairs a pack. `--force` replaces
//! every entry. Given a directory, `build` writes the pack named for the engine identity,
//! which is the name a `PackCache` looks for there.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmer::Engine;
use wasmpak::{EngineIdentity, Key, Pack};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, corrupt_detail};
use crate::input::Input;
use crate::interrupt;
use crate::open::{self, NewDirs};
use crate::output::{self, EntryJson, say};
use crate::progress::{Bar, Progress};
use crate::signing::{self, Signed};

/// Arguments of `wasmpak build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to append to (created if missing), or a directory: then the pack in it named
    /// for the engine identity, as a PackCache looks for it there
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// Modules to compile: .wasm binaries or .wat text
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Compile for another target triple (e.g. aarch64-unknown-linux-gnu): the pack can be
    /// shipped to such machines but not loaded here
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Modules compiled at once, each by an engine of its own [default: the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Sign every entry of the pack afterwards with this secret key (PKCS#8 PEM)
    #[arg(long, value_name = "SECRET.pem")]
    pub sign: Option<PathBuf>,
    /// With --sign: name this release in the signature (see `wasmpak sign --release`)
    #[arg(long, value_name = "N", requires = "sign", value_parser = clap::value_parser!(u64).range(1..))]
    pub release: Option<u64>,
    /// Compile every input and replace its entry, even if the pack has an intact one
    #[arg(long)]
    pub force: bool,
}

/// What the pack holds for an input before the build.
enum Present {
    Absent,
    Intact,
    /// An entry whose checksum fails: compiled again and replaced.
    Damaged(String),
}

/// One compiled module, waiting for the commit.
struct Compiled {
    artifact: bytes::Bytes,
    /// From the start of its compile to its serialized artifact: never time spent waiting for
    /// a worker or an engine.
    took: Duration,
}

/// The JSON document `build --json` prints.
#[derive(Serialize)]
struct Built {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    cpu_level: String,
    added: u64,
    replaced: u64,
    skipped: u64,
    /// One per distinct input, as the pack now holds it.
    entries: Vec<BuiltEntry>,
    /// Live entries and bytes of the whole pack.
    live_entries: u64,
    live_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<Signed>,
}

#[derive(Serialize)]
struct BuiltEntry {
    #[serde(flatten)]
    entry: EntryJson,
    /// The input file.
    input: String,
    /// `added`, `replaced` or `skipped`.
    status: &'static str,
    /// Why it was skipped or replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// How long it took to compile, if it was compiled.
    #[serde(skip_serializing_if = "Option::is_none")]
    compile_nanos: Option<u64>,
}

/// What became of one input, for the report.
struct Outcome {
    input: usize,
    status: &'static str,
    reason: Option<String>,
    compile_nanos: Option<u64>,
}

/// Runs `wasmpak build`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    // A bad key fails before minutes of compiling, not after.
    let signing_key = args.sign.as_deref().map(signing::read_secret).transpose()?;
    let new_engine = || engine::build(&args.engine, args.target.as_deref());
    let engine = new_engine()?;
    let engine_identity = EngineIdentity::of(&engine);
    let identity = engine_identity.to_pack_identity();
    let pack_path = open::pack_path(&args.pack, &engine_identity);

    let inputs = args
        .inputs
        .iter()
        .map(|path| Input::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    warn_shared_labels(&inputs);

    let existing = open::existing_for(ctx, &pack_path, &identity, open::Purpose::Build)?;
    if let Some(pack) = &existing
        && pack.is_sealed()?
    {
        return Err(CliError::failed(format!(
            "pack {} is sealed (installed): build into another pack, and install that",
            pack_path.display()
        )));
    }
    let lines = Progress::new(ctx);
    let say = |line: String| {
        if !ctx.json {
            lines.line(&line);
        }
    };

    // Decide what to compile: not what the pack has intact, and each distinct module once.
    let mut first_with_key: HashMap<Key, usize> = HashMap::new();
    let mut todo = Vec::new();
    let mut replacing = Vec::new();
    let mut outcomes = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if let Some(&earlier) = first_with_key.get(&input.key) {
            let why = format!("same module as {}", inputs[earlier].path.display());
            say(format!("skipped   {}  ({why})", input.label));
            outcomes.push(Outcome::skipped(i, why));
            continue;
        }
        first_with_key.insert(input.key, i);
        let present = match &existing {
            Some(pack) => present(pack, &input.key)?,
            None => Present::Absent,
        };
        match present {
            Present::Intact if !args.force => {
                say(format!("skipped   {}  (already in pack)", input.label));
                outcomes.push(Outcome::skipped(i, "already in pack".to_string()));
                continue;
            }
            Present::Intact => replacing.push(Some("--force".to_string())),
            Present::Damaged(why) => {
                say(format!(
                    "replacing {}  (its entry is damaged: {why})",
                    input.label
                ));
                replacing.push(Some(format!("its entry was damaged: {why}")));
            }
            Present::Absent => replacing.push(None),
        }
        todo.push(i);
    }

    if !todo.is_empty() {
        // Before minutes of compiling, not after.
        open::check_can_write(&pack_path, existing.is_some())?;
    }
    let jobs = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(todo.len().max(1));
    // An engine per worker, each checked to be the pack's.
    let engines = (0..if todo.is_empty() { 0 } else { jobs })
        .map(|_| new_engine().and_then(|engine| same(engine, &engine_identity)))
        .collect::<Result<Vec<_>, _>>()?;
    let compiled = compile_all(engines, &inputs, &todo, &lines, ctx)?;
    // The last moment to stop with nothing written; once the commit starts, it finishes.
    interrupt::check()?;

    let (mut added, mut replaced) = (0usize, 0usize);
    let (mut added_bytes, mut replaced_bytes) = (0u64, 0u64);
    let mut pack = existing;
    let dirs = NewDirs::for_file(&pack_path)?;
    if !compiled.is_empty() {
        let target = open::or_create(ctx, &pack_path, &identity, open::Purpose::Build)?;
        let mut batch = target.batch();
        for ((&i, done), replace) in todo.iter().zip(&compiled).zip(&replacing) {
            let input = &inputs[i];
            if replace.is_none() && batch.contains(&input.key)? {
                say(format!(
                    "skipped   {}  (added by another build meanwhile)",
                    input.label
                ));
                outcomes.push(Outcome::skipped(
                    i,
                    "added by another build meanwhile".into(),
                ));
                continue;
            }
            batch.insert_with_label(&input.key, &done.artifact, &input.label)?;
            let len = done.artifact.len() as u64;
            let nanos = Some(done.took.as_nanos() as u64);
            if replace.is_some() {
                replaced += 1;
                replaced_bytes += len;
                outcomes.push(Outcome {
                    input: i,
                    status: "replaced",
                    reason: replace.clone(),
                    compile_nanos: nanos,
                });
            } else {
                added += 1;
                added_bytes += len;
                outcomes.push(Outcome {
                    input: i,
                    status: "added",
                    reason: None,
                    compile_nanos: nanos,
                });
            }
        }
        batch.commit()?;
        pack = Some(target);
    }

    let mut signed = None;
    if let Some(key) = &signing_key {
        let target = match pack {
            Some(pack) => pack,
            None => open::or_create(ctx, &pack_path, &identity, open::Purpose::Build)?,
        };
        let signature = signing::sign_quietly(&target, key, args.release)?;
        if !ctx.json {
            signing::report(&signature)?;
        }
        signed = Some(signature);
        pack = Some(target);
    }
    dirs.keep();
    let stats = pack.as_ref().map(|p| p.stats()).transpose()?;
    let skipped = outcomes.iter().filter(|o| o.status == "skipped").count();
    if ctx.json {
        let listed: HashMap<Key, EntryJson> = match &pack {
            Some(pack) => {
                let signatures = output::signatures(pack);
                pack.iter()?
                    .map(|e| (*e.key(), EntryJson::new(&e, &signatures)))
                    .collect()
            }
            None => HashMap::new(),
        };
        outcomes.sort_by_key(|o| o.input);
        return output::print_json(&Built {
            pack: pack_path.display().to_string(),
            identity: output::identity_json(&identity),
            cpu_level: engine_identity.cpu_level(),
            added: added as u64,
            replaced: replaced as u64,
            skipped: skipped as u64,
            entries: outcomes
                .into_iter()
                .filter_map(|o| {
                    let input = &inputs[o.input];
                    Some(BuiltEntry {
                        entry: listed.get(&input.key)?.clone(),
                        input: input.path.display().to_string(),
                        status: o.status,
                        reason: o.reason,
                        compile_nanos: o.compile_nanos,
                    })
                })
                .collect(),
            live_entries: stats.map_or(0, |s| s.entries),
            live_bytes: stats.map_or(0, |s| s.live_bytes),
            signed,
        });
    }
    say!(
        "{}: added {added} ({}), replaced {replaced} ({}), skipped {skipped}; {}, {} live",
        pack_path.display(),
        output::bytes(added_bytes),
        output::bytes(replaced_bytes),
        output::count(stats.map_or(0, |s| s.entries), "entry", "entries"),
        output::bytes(stats.map_or(0, |s| s.live_bytes)),
    )?;
    say!("identity: {identity}")?;
    say!(
        "loads on: {} hosts with at least CPU level {}",
        engine_identity.target_triple(),
        engine_identity.cpu_level()
    )?;
    Ok(())
}

impl Outcome {
    fn skipped(input: usize, reason: String) -> Outcome {
        Outcome {
            input,
            status: "skipped",
            reason: Some(reason),
            compile_nanos: None,
        }
    }
}

/// Whether `pack` has an intact entry under `key`: the checksum is checked, so that a build
/// repairs damage instead of keeping it.
fn present(pack: &Pack, key: &Key) -> Result<Present, CliError> {
    match pack.get(key) {
        Ok(Some(_)) => Ok(Present::Intact),
        Ok(None) => Ok(Present::Absent),
        Err(e) if e.kind() == wasmpak::ErrorKind::Corrupt => {
            Ok(Present::Damaged(corrupt_detail(&e)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Warns (on stderr) when different modules get the same label: `rm` and `extract` then need
/// a key to tell them apart.
fn warn_shared_labels(inputs: &[Input]) {
    let mut by_label: HashMap<&str, Vec<&Input>> = HashMap::new();
    for input in inputs {
        let same = by_label.entry(input.label.as_str()).or_default();
        if !same.iter().any(|other| other.key == input.key) {
            same.push(input);
        }
    }
    let mut shared: Vec<(&str, Vec<&Input>)> =
        by_label.into_iter().filter(|(_, v)| v.len() > 1).collect();
    shared.sort_by_key(|(label, _)| *label);
    for (label, inputs) in shared {
        let paths: Vec<String> = inputs
            .iter()
            .map(|i| i.path.display().to_string())
            .collect();
        eprintln!(
            "warning: {} different modules are labelled {label:?} ({}); `rm` and `extract` \
             will need their keys to tell them apart",
            inputs.len(),
            paths.join(", ")
        );
    }
}

/// Compiles `inputs[todo[..]]` on `jobs` threads, each with an engine of its own (a wasmer
/// engine compiles one module at a time: workers sharing one would queue, and a module's time
/// would include its wait), and serializes each module. Returns the artifacts in `todo`'s
/// order, or the error of the first input (in command-line order) that failed; after a failure
/// or a signal, no new compilation starts and those under way stop.
fn compile_all(
    engines: Vec<Engine>,
    inputs: &[Input],
    todo: &[usize],
    progress: &Progress,
    ctx: &Context,
) -> Result<Vec<Compiled>, CliError> {
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<Option<Result<Compiled, CliError>>> =
        (0..todo.len()).map(|_| None).collect();
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for engine in engines {
            let sender = sender.clone();
            let (next, failed) = (&next, &failed);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) && interrupt::received().is_none() {
                    let slot = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(slot) else { break };
                    let input = &inputs[i];
                    let bar = progress.spinner(&format!("compiling {}", input.label), None);
                    let result = compile_one(&engine, input, &bar);
                    bar.done();
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if sender.send((slot, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (slot, result) in receiver {
            let input = &inputs[todo[slot]];
            if let Ok(done) = &result
                && !ctx.json
            {
                progress.line(&format!(
                    "compiled  {}  {} in {}",
                    input.label,
                    output::bytes(done.artifact.len() as u64),
                    output::duration(done.took)
                ));
            }
            results[slot] = Some(result);
        }
    });
    interrupt::check()?;
    // Slots are claimed in order, so every slot before an unstarted one finished: the first
    // error met here is the failing input that comes first on the command line.
    let mut compiled = Vec::with_capacity(todo.len());
    for result in results {
        match result {
            Some(Ok(done)) => compiled.push(done),
            Some(Err(e)) => return Err(e),
            None => return Err(CliError::failed("compilation stopped after an error")),
        }
    }
    Ok(compiled)
}

/// `engine`, checked to have the identity the pack is built for.
fn same(engine: Engine, identity: &EngineIdentity) -> Result<Engine, CliError> {
    if EngineIdentity::of(&engine) == *identity {
        Ok(engine)
    } else {
        Err(CliError::failed(
            "the compiler's engines disagree on their identity; build with -j 1",
        ))
    }
}

/// Compiles and serializes one input, moving `bar` with the compiler's progress.
fn compile_one(engine: &Engine, input: &Input, bar: &Bar) -> Result<Compiled, CliError> {
    let started = Instant::now();
    let module = input.compile_with_progress(engine, bar)?;
    let artifact = module.serialize().map_err(|e| {
        CliError::failed(format!(
            "cannot serialize the module compiled from {}: {e}",
            input.path.display()
        ))
    })?;
    Ok(Compiled {
        artifact,
        took: started.elapsed(),
    })
}

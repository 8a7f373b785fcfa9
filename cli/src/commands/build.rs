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

use std::collections::HashMap;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use wasmer::Engine;
use wasmpak::{EngineIdentity, Key, Pack};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, corrupt_detail};
use crate::input::Input;
use crate::open;
use crate::output::{self, say};
use crate::signing;

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
    /// Modules compiled at once [default: the number of CPUs]
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
    took: Duration,
}

/// Runs `wasmpak build`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    // A bad key fails before minutes of compiling, not after.
    let signing_key = args.sign.as_deref().map(signing::read_secret).transpose()?;
    let engine = engine::build(&args.engine, args.target.as_deref())?;
    let engine_identity = EngineIdentity::of(&engine);
    let identity = engine_identity.to_pack_identity();
    let pack_path = open::pack_in(&args.pack, &engine_identity)?;

    let inputs = args
        .inputs
        .iter()
        .map(|path| Input::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    warn_shared_labels(&inputs);

    let existing = open::existing_for(ctx, &pack_path, &identity, open::Purpose::Build)?;

    // Decide what to compile: not what the pack has intact, and each distinct module once.
    let mut first_with_key: HashMap<Key, usize> = HashMap::new();
    let mut todo = Vec::new();
    let mut replacing = Vec::new();
    let mut skipped = 0usize;
    for (i, input) in inputs.iter().enumerate() {
        if let Some(&earlier) = first_with_key.get(&input.key) {
            say!(
                "skipped   {}  (same module as {})",
                input.label,
                inputs[earlier].path.display()
            )?;
            skipped += 1;
            continue;
        }
        first_with_key.insert(input.key, i);
        let present = match &existing {
            Some(pack) => present(pack, &input.key)?,
            None => Present::Absent,
        };
        match present {
            Present::Intact if !args.force => {
                say!("skipped   {}  (already in pack)", input.label)?;
                skipped += 1;
                continue;
            }
            Present::Intact => replacing.push(true),
            Present::Damaged(why) => {
                say!("replacing {}  (its entry is damaged: {why})", input.label)?;
                replacing.push(true);
            }
            Present::Absent => replacing.push(false),
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
    let compiled = compile_all(&engine, &inputs, &todo, jobs)?;

    let (mut added, mut replaced) = (0usize, 0usize);
    let (mut added_bytes, mut replaced_bytes) = (0u64, 0u64);
    let mut pack = existing;
    if !compiled.is_empty() {
        let target = open::or_create(ctx, &pack_path, &identity, open::Purpose::Build)?;
        let mut batch = target.batch();
        for ((&i, done), &replace) in todo.iter().zip(&compiled).zip(&replacing) {
            let input = &inputs[i];
            if !replace && batch.contains(&input.key)? {
                say!(
                    "skipped   {}  (added by another build meanwhile)",
                    input.label
                )?;
                skipped += 1;
                continue;
            }
            batch.insert_with_label(&input.key, &done.artifact, &input.label)?;
            let len = done.artifact.len() as u64;
            if replace {
                replaced += 1;
                replaced_bytes += len;
            } else {
                added += 1;
                added_bytes += len;
            }
        }
        batch.commit()?;
        pack = Some(target);
    }

    if let Some(key) = &signing_key {
        let target = match pack {
            Some(pack) => pack,
            None => open::or_create(ctx, &pack_path, &identity, open::Purpose::Build)?,
        };
        signing::sign(&target, key, args.release)?;
        pack = Some(target);
    }
    let stats = pack.as_ref().map(|p| p.stats()).transpose()?;
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

/// Compiles `inputs[todo[..]]` on `jobs` threads and serializes each module. Returns the
/// artifacts in `todo`'s order, or the error of the first input (in command-line order) that
/// failed; after a failure, no new compilation starts.
fn compile_all(
    engine: &Engine,
    inputs: &[Input],
    todo: &[usize],
    jobs: usize,
) -> Result<Vec<Compiled>, CliError> {
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let progress = Progress::new(todo.len() as u64);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<Option<Result<Compiled, CliError>>> =
        (0..todo.len()).map(|_| None).collect();
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let (next, failed) = (&next, &failed);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) {
                    let slot = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(slot) else { break };
                    let result = compile_one(engine, &inputs[i]);
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
            if let Ok(done) = &result {
                progress.line(&format!(
                    "compiled  {}  {} in {}",
                    input.label,
                    output::bytes(done.artifact.len() as u64),
                    output::duration(done.took)
                ));
            }
            progress.advance(&input.label);
            results[slot] = Some(result);
        }
    });
    progress.finish();
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

/// Compiles and serializes one input.
fn compile_one(engine: &Engine, input: &Input) -> Result<Compiled, CliError> {
    let started = Instant::now();
    let module = input.compile(engine)?;
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

/// Progress of a build: a bar on a terminal, plain lines otherwise (CI logs, pipes).
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar only when a person watches stderr; a log gets the plain lines alone.
    fn new(len: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} compiling [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar: Some(bar) }
    }

    /// Prints a line on stdout, above the bar if there is one. Output errors are ignored
    /// here: losing a progress line must not abandon the compilation.
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| {
                let _ = say!("{text}");
            }),
            None => {
                let _ = say!("{text}");
            }
        }
    }

    /// Counts one module done, naming it so a slow one is visible.
    fn advance(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_string());
            bar.inc(1);
        }
    }

    /// Clears the bar, so the summary is the last thing on screen.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

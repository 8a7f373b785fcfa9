//! `wasmpak demo`: what a pack buys, measured on this machine in a few seconds, against the
//! caches its users have today.
//!
//! Needs nothing: it generates modules from about 7 KB to about 7.5 MB of machine code,
//! compiles them, saves them through `PackCache` (one pack) and through the peers of
//! `demo/caches.rs` (one file per module: `wasmer-cache`, and wasix's cache in builds with the
//! `wasix` feature) in a temporary directory, then loads each back as a freshly started
//! process would, and once more from the in-process memo. Every loaded module is run to show
//! it is the real thing. Worker processes (`demo/child.rs`) then measure the memory (PSS) of
//! processes holding their first loads, and what each cache does with a stored artifact that
//! has one byte flipped. The directory is removed at the end, also on error.

mod caches;
mod child;
mod children;

use std::time::{Duration, Instant};

use serde::Serialize;
use wasmer::sys::NativeEngineExt;
use wasmer::{Engine, Instance, Module, Store};
use wasmpak::{ModuleCache, PackCache};
use wasmpak_samples::SAMPLES;

use self::caches::{DemoCache, Keys, peers};
use crate::context::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::output::{self, Align, Table, say};
use crate::progress::Progress;

/// Arguments of `wasmpak demo`: none but the global ones.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The JSON document `demo --json` prints; times in nanoseconds (medians of fresh loads).
#[derive(Serialize)]
struct DemoJson {
    target: String,
    modules: Vec<ModuleJson>,
    /// Opening the pack, once per process (the median of the rounds).
    open_nanos: u64,
}

#[derive(Serialize)]
struct ModuleJson {
    name: &'static str,
    wasm_bytes: u64,
    artifact_bytes: u64,
    compile_nanos: u64,
    pack_first_load_nanos: u64,
    pack_repeated_load_nanos: u64,
    /// First loads from the caches compared with, by name.
    peers: std::collections::BTreeMap<String, u64>,
}

/// Repeated loads timed to get a stable per-load figure for the memo.
const REPEATS: u32 = 100;
/// Fresh-process loads per module and cache; the median is shown.
const ROUNDS: usize = 5;
/// Worker processes per cache whose memory is summed.
const WORKERS: usize = 4;
/// The sample whose stored artifact is damaged (the medium one).
const DAMAGED: usize = 2;

/// One generated module and what was measured for it.
struct Row {
    name: &'static str,
    seed: u32,
    keys: Keys,
    wasm_len: usize,
    artifact_len: usize,
    compile: Duration,
    pack_first: Duration,
    pack_again: Duration,
    /// First loads from each peer, in the order of [`peers`].
    peers: Vec<Duration>,
}

/// Runs `wasmpak demo`. Interrupted, it stops between steps and removes its directory.
pub fn run(ctx: &Context, _args: Args) -> Result<(), CliError> {
    // A worker process the demo started (memory and damage are measured in fresh processes).
    if let Ok(spec) = std::env::var(child::ROLE) {
        return child::run(&spec);
    }
    let _stoppable = interrupt::stoppable();
    // Lines as they are found, unless stdout is for the JSON document.
    let say = output::lines(ctx.json);
    let dir = tempfile::Builder::new()
        .prefix("wasmpak-demo-")
        .tempdir()
        .map_err(|e| CliError::failed(format!("cannot create a temporary directory: {e}")))?;
    // A server's runtime, as the workers of `demo/child.rs` use.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let engine = Engine::default();
    let peers = peers();
    say(format!(
        "wasmpak demo: {} generated modules compiled by cranelift for {}, cached in a temporary \
         directory; load times are the median of {ROUNDS} first loads (a new cache each time, \
         in this process; memory and damage are measured in fresh worker processes)\n",
        SAMPLES.len(),
        engine.target().triple()
    ))?;
    let progress = Progress::new(ctx);
    let failed =
        |what: &str, e: &dyn std::fmt::Display| CliError::failed(format!("demo: {what}: {e}"));

    let pack_dir = dir.path().join("pack");
    let mut rows = Vec::new();
    let mut damaged_artifact = Vec::new();
    let open = runtime.block_on(async {
        // Compile and save, as the CI side does once.
        let mut writer = DemoCache::Pack(PackCache::builder(&pack_dir).auto_compact(false).build());
        let mut others = peers
            .iter()
            .map(|(_, name)| DemoCache::peer(dir.path(), name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed("creating a cache", &e))?;
        for (i, sample) in SAMPLES.iter().enumerate() {
            interrupt::check()?;
            let bar = progress.spinner(&format!("compiling the {} module", sample.name), None);
            let seed = child::seed(i);
            let wasm = child::wasm(i).map_err(|e| failed("generating a module", &e))?;
            let keys = Keys::of(&wasm);
            let started = Instant::now();
            let module = Module::new(&engine, &wasm).map_err(|e| failed("compiling", &e))?;
            let compile = started.elapsed();
            let artifact = module.serialize().map_err(|e| failed("serializing", &e))?;
            let artifact_len = artifact.len();
            if i == DAMAGED {
                damaged_artifact = artifact.to_vec();
            }
            for cache in std::iter::once(&mut writer).chain(others.iter_mut()) {
                cache
                    .save(&keys, &engine, &module)
                    .await
                    .map_err(|e| failed("saving", &e))?;
            }
            rows.push(Row {
                name: sample.name,
                seed,
                keys,
                wasm_len: wasm.len(),
                artifact_len,
                compile,
                pack_first: Duration::ZERO,
                pack_again: Duration::ZERO,
                peers: vec![Duration::ZERO; peers.len()],
            });
            bar.done();
        }
        let bar = progress.spinner("loading from each cache", None);

        // Load, as every node does at startup: a fresh cache is a fresh process. Rounds
        // rotate which cache goes first and the median is kept, so that one-time costs (the
        // first blocking thread, the allocator's first large mapping) favour none.
        let mut opens = Vec::new();
        let caches = 1 + peers.len();
        let mut times = vec![vec![Vec::new(); caches]; rows.len()];
        for round in 0..ROUNDS {
            interrupt::check()?;
            // Opening the pack, timed apart: asking whether it has a module it has (a key it
            // lacks would also time the directory listing a miss is followed by).
            let reader = PackCache::new(&pack_dir);
            let started = Instant::now();
            reader
                .contains(rows[0].keys.module, &engine)
                .await
                .map_err(|e| failed("opening the pack", &e))?;
            opens.push(started.elapsed());
            let mut fresh = vec![DemoCache::Pack(reader.clone())];
            for (_, name) in &peers {
                fresh.push(DemoCache::peer(dir.path(), name).map_err(|e| failed("opening", &e))?);
            }
            for (i, row) in rows.iter().enumerate() {
                for turn in 0..caches {
                    let which = (turn + round) % caches;
                    let started = Instant::now();
                    let module = fresh[which]
                        .load(&row.keys, &engine)
                        .await
                        .map_err(|e| failed("loading", &e))?;
                    times[i][which].push(started.elapsed());
                    check_answer(&engine, &module, row)?;
                }
            }
            if round == ROUNDS - 1 {
                for row in rows.iter_mut() {
                    let started = Instant::now();
                    for _ in 0..REPEATS {
                        reader
                            .load(row.keys.module, &engine)
                            .await
                            .map_err(|e| failed("loading from the pack", &e))?;
                    }
                    row.pack_again = started.elapsed() / REPEATS;
                }
            }
        }
        for (row, times) in rows.iter_mut().zip(times.iter_mut()) {
            row.pack_first = median(&mut times[0]);
            for (p, peer) in row.peers.iter_mut().enumerate() {
                *peer = median(&mut times[1 + p]);
            }
        }
        bar.done();
        Ok::<Duration, CliError>(median(&mut opens))
    })?;
    if ctx.json {
        let nanos = |d: Duration| d.as_nanos() as u64;
        output::print_json(&DemoJson {
            target: engine.target().triple().to_string(),
            modules: rows
                .iter()
                .map(|row| ModuleJson {
                    name: row.name,
                    wasm_bytes: row.wasm_len as u64,
                    artifact_bytes: row.artifact_len as u64,
                    compile_nanos: nanos(row.compile),
                    pack_first_load_nanos: nanos(row.pack_first),
                    pack_repeated_load_nanos: nanos(row.pack_again),
                    peers: peers
                        .iter()
                        .zip(&row.peers)
                        .map(|((_, name), d)| (name.to_string(), nanos(*d)))
                        .collect(),
                })
                .collect(),
            open_nanos: nanos(open),
        })?;
        return close(dir);
    }

    let mut columns = vec![
        ("MODULE", Align::Left),
        ("WASM", Align::Right),
        ("ARTIFACT", Align::Right),
        ("COMPILE", Align::Right),
        ("PACK FIRST LOAD", Align::Right),
        ("PACK REPEATED", Align::Right),
    ];
    columns.extend(peers.iter().map(|(title, _)| (*title, Align::Right)));
    let mut table = Table::new(&columns);
    for row in &rows {
        let mut cells = vec![
            row.name.to_string(),
            output::bytes(row.wasm_len as u64),
            output::bytes(row.artifact_len as u64),
            output::duration(row.compile),
            output::duration(row.pack_first),
            output::duration(row.pack_again),
        ];
        cells.extend(row.peers.iter().map(|d| output::duration(*d)));
        table.row(cells);
    }
    let total = |f: &dyn Fn(&Row) -> Duration| rows.iter().map(f).sum::<Duration>();
    let (compile, pack) = (total(&|r| r.compile), total(&|r| r.pack_first));
    let peer_totals: Vec<Duration> = (0..peers.len()).map(|p| total(&|r| r.peers[p])).collect();
    let mut cells = vec![
        "total".to_string(),
        output::bytes(rows.iter().map(|r| r.wasm_len as u64).sum()),
        output::bytes(rows.iter().map(|r| r.artifact_len as u64).sum()),
        output::duration(compile),
        output::duration(pack),
        output::duration(total(&|r| r.pack_again)),
    ];
    cells.extend(peer_totals.iter().map(|d| output::duration(*d)));
    table.row(cells);
    say!("{}\n", table.render())?;

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    // What a process that loads every module pays: its pack is opened once, then each load.
    let pack_process = pack + open;
    say!(
        "first loads from the pack: {:.0}x faster than compiling",
        ratio(compile, pack_process)
    )?;
    for (p, ((title, _), peer)) in peers.iter().zip(&peer_totals).enumerate() {
        let name = title.to_lowercase();
        let verdict = if pack_process <= *peer {
            format!("{:.2}x faster than {name}", ratio(*peer, pack_process))
        } else {
            format!("{:.2}x slower than {name}", ratio(pack_process, *peer))
        };
        let by_module: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {:.2}x", r.name, ratio(r.pack_first, r.peers[p])))
            .collect();
        say!(
            "first loads of all {} modules, the pack opened once: {verdict}, the pack checking a \
             CRC-32 of every artifact byte, {name} nothing (per module, without the open: pack \
             time / {name} time: {})",
            rows.len(),
            by_module.join(", ")
        )?;
    }
    say!(
        "opening the pack took {} (once per process, counted once in the totals); the keys \
         were computed before the timing, as a runtime has them; repeated loads come from the \
         in-process memo; every loaded module ran and answered correctly",
        output::duration(open)
    )?;

    // Memory: processes that hold their first loads, all alive at once.
    let all: Vec<(usize, Keys)> = rows.iter().map(|r| r.keys).enumerate().collect();
    let pss_pack = children::total_pss("pack", dir.path(), &all, WORKERS)?;
    let mut memory = format!(
        "memory, total PSS of {WORKERS} processes holding the first loads of all {} modules \
         (of it, file-backed): pack {} ({})",
        rows.len(),
        output::bytes(pss_pack.total),
        output::bytes(pss_pack.file)
    );
    for (title, name) in &peers {
        let pss = children::total_pss(name, dir.path(), &all, WORKERS)?;
        memory += &format!(
            ", {} {} ({}): pack {:.2}x",
            title.to_lowercase(),
            output::bytes(pss.total),
            output::bytes(pss.file),
            pss_pack.total as f64 / pss.total.max(1) as f64
        );
    }
    say!("{memory}")?;

    // Damage: one byte flipped in one stored artifact of each cache, loaded by a fresh process.
    let damaged = &rows[DAMAGED];
    say!(
        "damage: one byte flipped in the middle of the {} module's stored artifact, then a \
         fresh process's first load:",
        damaged.name
    )?;
    for (title, name) in std::iter::once(&("PACK", "pack")).chain(peers.iter()) {
        children::flip_stored_byte(&dir.path().join(name), &damaged_artifact)?;
        let outcome = children::first_load_outcome(name, dir.path(), DAMAGED, damaged.keys)?;
        say!(
            "  {}: {}",
            title.to_lowercase(),
            damage_verdict(&outcome, damaged.seed)
        )?;
    }
    close(dir)?;
    say!("removed the temporary directory")
}

/// Removes the demo's directory.
fn close(dir: tempfile::TempDir) -> Result<(), CliError> {
    let path = dir.path().to_path_buf();
    dir.close()
        .map_err(|e| CliError::failed(format!("cannot remove {}: {e}", path.display())))
}

/// The middle value.
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Runs the module's `answer` export, which returns the seed it was generated with.
pub(crate) fn run_answer(engine: &Engine, module: &Module) -> Result<i32, String> {
    let mut store = Store::new(engine.clone());
    let instance =
        Instance::new(&mut store, module, &wasmer::imports! {}).map_err(|e| e.to_string())?;
    instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .map_err(|e| e.to_string())?
        .call(&mut store)
        .map_err(|e| e.to_string())
}

/// Checks that `module` is `row`'s: it runs and answers its seed.
fn check_answer(engine: &Engine, module: &Module, row: &Row) -> Result<(), CliError> {
    let wrong = |e: &dyn std::fmt::Display| {
        CliError::failed(format!("demo: the {} module does not run: {e}", row.name))
    };
    let answer = run_answer(engine, module).map_err(|e| wrong(&e))?;
    if answer != row.seed as i32 {
        return Err(wrong(&format!(
            "answer() returned {answer}, expected {}",
            row.seed
        )));
    }
    Ok(())
}

/// What a fresh process's first load did with the damaged artifact, in a few words.
fn damage_verdict(outcome: &str, seed: u32) -> String {
    if let Some(rest) = outcome.strip_prefix("refused: ") {
        let (why, after) = rest.rsplit_once("; recompiled ").unwrap_or((rest, "?"));
        let ran = if after == seed.to_string() {
            "ran correctly"
        } else {
            "answered wrongly"
        };
        return format!("refused it, a miss ({why}); recompiled, {ran}");
    }
    match outcome.strip_prefix("loaded ") {
        Some(answer) if answer == seed.to_string() => {
            "loaded the damaged bytes unnoticed; this module still answered correctly".into()
        }
        Some(answer) => format!("loaded the damaged bytes unnoticed; {answer}"),
        None => format!("loaded the damaged bytes: the process {outcome}"),
    }
}

//! The long-running life of a pack. In the test suite a short run (15 s of churn); set
//! `WASMPAK_SOAK_SECS` for a longer one: the README's figures come from
//! `WASMPAK_SOAK_SECS=90 cargo test --profile ci --all-features -p wasmpak --test tests -- soak::
//! --nocapture`.
//!
//! 1. **Churn.** Writer processes save modules through `PackCache`, reader processes load and
//!    run them, a compactor process compacts under retention limits (max entries and live
//!    bytes, least recently used first, by the readers' recency sidecar) once a second, and
//!    the parent SIGKILLs a random writer or reader every few hundred milliseconds and starts
//!    another. Checked: every load is the module saved under its key (it runs and returns the
//!    seed it was generated with: 0 wrong modules); no worker dies of its own failure; every
//!    module whose save a writer saw return after the compactor last reported evicting it is in
//!    the pack at the end (0 lost entries; the compactor stops between compactions at the end,
//!    so no eviction goes unreported); the pack verifies; its file never exceeds the limits
//!    plus what one compaction interval can add. A long-running reader, never killed, reports
//!    its resident memory over time.
//! 2. **Engine recycling.** One process loads 2,000 distinct modules from a pack, with one
//!    engine (wasmer keeps every artifact an engine deserialized until the engine is dropped)
//!    and with the recycling pattern of the README (a new engine every 250 distinct loads, the
//!    memo bounded to match); its resident memory is printed for both.
//!
//! The workers are this test binary again, each playing a role (`crate::common::child`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use wasmer::{Engine, Module};
use wasmpak::{EngineIdentity, Key, ModuleCache, ModuleHash, Pack, PackCache, Retention};

use crate::common::{assert_passed, child, env_path, env_u64, played};

const MODULES: usize = 40;
const MAX_ENTRIES: u64 = 16;
const MAX_LIVE_BYTES: u64 = 4 << 20;
const RECYCLE_MODULES: usize = 2000;
const RECYCLE_EVERY: usize = 250;
/// The churn's length in the test suite, unless `WASMPAK_SOAK_SECS` says otherwise.
const CHURN_SECS: u64 = 15;

/// The churn: see the module documentation.
#[test]
fn churn_with_kills_loses_and_confuses_nothing() {
    if played(&[
        ("writer", || worker("writer")),
        ("reader", || worker("reader")),
        ("long-reader", || worker("long-reader")),
        ("compactor", compactor),
    ]) {
        return;
    }
    let seconds = std::env::var("WASMPAK_SOAK_SECS").map_or(CHURN_SECS, |s| {
        s.parse()
            .unwrap_or_else(|_| panic!("WASMPAK_SOAK_SECS is a number of seconds, not {s:?}"))
    });
    churn(Duration::from_secs(seconds));
}

/// Engine recycling: see the module documentation.
#[test]
fn recycled_engines_bound_the_memory_of_a_process_loading_ever_more_modules() {
    if played(&[
        ("one-engine", || loader(false)),
        ("recycled", || loader(true)),
    ]) {
        return;
    }
    recycling();
}

/// Module `i` of the churn corpus: about 5 KB to 500 KB of artifact; `answer` returns the seed.
fn churn_wat(i: usize) -> (u32, String) {
    let seed = 5000 + i as u32;
    let functions = 1 + (i as u32 * i as u32) / 24;
    (seed, wasmpak_samples::module_wat(seed, functions, 400))
}

/// The corpus compiled once per target directory: artifact files named by index.
fn corpus(
    dir: &Path,
    count: usize,
    wat: impl Fn(usize) -> (u32, String),
) -> Vec<(u32, ModuleHash)> {
    let engine = Engine::default();
    let dir = dir.join(EngineIdentity::of(&engine).file_stem());
    std::fs::create_dir_all(&dir).unwrap();
    (0..count)
        .map(|i| {
            let (seed, text) = wat(i);
            let wasm = wasmer::wat2wasm(text.as_bytes()).unwrap().into_owned();
            let key = ModuleHash::new(&wasm);
            let path = dir.join(format!("{key}.bin"));
            if !path.exists() {
                let bytes = Module::new(&engine, &wasm).unwrap().serialize().unwrap();
                std::fs::write(path.with_extension("partial"), &bytes).unwrap();
                std::fs::rename(path.with_extension("partial"), &path).unwrap();
            }
            (seed, key)
        })
        .collect::<Vec<_>>()
        .tap(|modules| {
            let text: String = modules.iter().map(|(s, k)| format!("{s} {k}\n")).collect();
            std::fs::write(dir.join("manifest.txt"), text).unwrap();
        })
}

/// The corpus as [`corpus`] last wrote it, for child processes (no compiling, no WAT).
fn manifest(name: &str) -> Vec<(u32, ModuleHash)> {
    std::fs::read_to_string(artifact_dir(name).join("manifest.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let (seed, key) = line.split_once(' ').unwrap();
            let key: Key = key.parse().unwrap();
            (
                seed.parse().unwrap(),
                ModuleHash::from_bytes(*key.as_bytes()),
            )
        })
        .collect()
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}
impl<T> Tap for T {}

fn artifact_dir(name: &str) -> PathBuf {
    let engine = Engine::default();
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .join(EngineIdentity::of(&engine).file_stem())
}

fn key_of(hash: &ModuleHash) -> Key {
    Key::from_bytes(hash.as_bytes().try_into().unwrap())
}

/// Runs `module` and returns what `answer` returns.
fn answer(engine: &Engine, module: &Module) -> i32 {
    let mut store = wasmer::Store::new(engine.clone());
    let instance = wasmer::Instance::new(&mut store, module, &wasmer::imports! {}).unwrap();
    instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap()
        .call(&mut store)
        .unwrap()
}

/// Resident memory of this process in bytes: (anonymous, file-backed). The file-backed part
/// is page cache the process has mapped (the pack's pages it read): shared, and reclaimable
/// by the kernel. The anonymous part is what the process itself holds.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("RssAnon:"), field("RssFile:"))
}

struct Worker {
    role: &'static str,
    child: Child,
}

/// A line a child printed, stamped when it arrived.
type Line = (Instant, String);

fn spawn(role: &'static str, dir: &Path, seed: u64, lines: &mpsc::Sender<Line>) -> Worker {
    let mut child = child(role)
        .env("WASMPAK_SOAK_DIR", dir)
        .env("WASMPAK_SOAK_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let sender = lines.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if sender.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    Worker { role, child }
}

impl Worker {
    /// Asserts that the worker is still running: they end only when killed.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("a {} died of its own failure: {status}", self.role);
        }
    }
}

/// Whether `line` is libtest's, in a worker's stdout before its own lines.
fn harness_line(line: &str) -> bool {
    line.is_empty() || line == "running 1 test"
}

fn churn(length: Duration) {
    let started = Instant::now();
    let modules = corpus(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("soak-churn")
            .as_path(),
        MODULES,
        churn_wat,
    );
    let corpus_bytes: u64 = sys_files_len(&artifact_dir("soak-churn"));
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let by_key: BTreeMap<Key, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, (_, k))| (key_of(k), i))
        .collect();

    let (tx, rx) = mpsc::channel();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut seed = 0u64;
    let mut next_seed = || {
        seed += 1;
        seed
    };
    let mut workers: Vec<Worker> = Vec::new();
    for role in ["writer", "writer", "reader", "reader", "reader"] {
        workers.push(spawn(role, &dir, next_seed(), &tx));
    }
    let mut long_reader = spawn("long-reader", &dir, next_seed(), &tx);
    let mut compactor = None;

    // Per module: when a writer last saw its save return, when the compactor last reported
    // evicting it.
    let (mut saved, mut evicted) = (BTreeMap::<usize, Instant>::new(), BTreeMap::new());
    let (mut loads, mut misses, mut wrong, mut kills, mut compactions) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut rss_samples: Vec<(u64, u64)> = Vec::new();
    let mut max_size = 0u64;
    let pack_path = PackCache::new(&dir)
        .pack_path(&Engine::default())
        .expect("a cache with a directory has a pack path");
    let mut next_kill = Instant::now() + Duration::from_millis(500);
    while started.elapsed() < length {
        while let Ok((at, line)) = rx.try_recv() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("saved"), Some(i)) => {
                    saved.insert(i.parse::<usize>().unwrap(), at);
                }
                (Some("ok"), _) => loads += 1,
                (Some("miss"), _) => misses += 1,
                (Some("wrong"), _) => wrong += 1,
                (Some("evicted"), Some(key)) => {
                    evicted.insert(by_key[&key.parse::<Key>().unwrap()], at);
                }
                (Some("compacted"), _) => compactions += 1,
                (Some("rss"), Some(bytes)) => {
                    rss_samples.push((started.elapsed().as_secs(), bytes.parse().unwrap()))
                }
                _ if harness_line(&line) => {}
                _ => panic!("unexpected line from a child: {line}"),
            }
        }
        if compactor.is_none() && pack_path.exists() {
            compactor = Some(spawn("compactor", &dir, next_seed(), &tx));
        }
        if let Ok(meta) = std::fs::metadata(&pack_path) {
            max_size = max_size.max(meta.len());
        }
        if Instant::now() >= next_kill {
            let victim = rng.random_range(0..workers.len());
            let role = workers[victim].role;
            workers[victim].assert_running();
            workers[victim].child.kill().unwrap(); // SIGKILL
            workers[victim].child.wait().unwrap();
            workers[victim] = spawn(role, &dir, next_seed(), &tx);
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(200..800));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The compactor stops between compactions, so that every eviction is reported; then the
    // others are killed.
    std::fs::write(dir.join("stop-compactor"), b"").unwrap();
    if let Some(compactor) = compactor.as_mut() {
        assert!(
            compactor.child.wait().unwrap().success(),
            "the compactor failed"
        );
    }
    for worker in workers.iter_mut().chain([&mut long_reader]) {
        worker.assert_running();
        worker.child.kill().unwrap();
        worker.child.wait().unwrap();
    }
    drop(tx);
    for (at, line) in rx.iter() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("saved"), Some(i)) => {
                saved.insert(i.parse::<usize>().unwrap(), at);
            }
            (Some("evicted"), Some(key)) => {
                evicted.insert(by_key[&key.parse::<Key>().unwrap()], at);
            }
            (Some("wrong"), _) => wrong += 1,
            _ => {}
        }
    }

    // What is left: every entry intact and the module saved under its key; nothing lost.
    let engine = Engine::default();
    let identity = EngineIdentity::of(&engine).to_pack_identity();
    let pack = Pack::open(&pack_path, &identity).unwrap();
    let report = pack.verify().unwrap();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let cache = PackCache::new(&dir);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut present = BTreeSet::new();
    for (i, (seed, key)) in modules.iter().enumerate() {
        match tokio.block_on(cache.load(*key, &engine)) {
            Ok(module) => {
                assert_eq!(
                    answer(&engine, &module),
                    *seed as i32,
                    "module {i} is wrong"
                );
                present.insert(i);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("module {i}: {e}"),
        }
    }
    // Lost: gone although its last save returned well after its last reported eviction (the
    // margin covers a save that found the entry still there just before a compaction evicted
    // it, and lines of different children arriving out of order).
    let margin = Duration::from_secs(1);
    let must_be_there: Vec<usize> = saved
        .iter()
        .filter(|(i, acked)| {
            evicted
                .get(*i)
                .is_none_or(|evicted_at| **acked > *evicted_at + margin)
        })
        .map(|(i, _)| *i)
        .collect();
    let lost: Vec<usize> = must_be_there
        .iter()
        .filter(|i| !present.contains(*i))
        .copied()
        .collect();
    let size_bound = MAX_LIVE_BYTES + corpus_bytes + (1 << 20);
    println!(
        "soak churn: {:.0} s, {kills} SIGKILLs, {} modules saved (distinct), {loads} verified \
         loads, {misses} misses, {wrong} wrong, {compactions} compactions evicting {} modules, \
         {} entries at the end ({} live), pack at most {} bytes (bound {size_bound}), {} of the {} \
         modules saved since their last eviction lost",
        started.elapsed().as_secs_f64(),
        saved.len(),
        evicted.len(),
        pack.len().unwrap(),
        pack.stats().unwrap().live_bytes,
        max_size,
        lost.len(),
        must_be_there.len()
    );
    println!("soak churn: long-running reader resident memory (seconds, bytes): {rss_samples:?}");
    assert_eq!(wrong, 0, "a load returned another module");
    assert!(lost.is_empty(), "saved, never evicted, gone: {lost:?}");
    assert!(
        loads > 0 && !saved.is_empty() && compactions > 0 && kills > 0,
        "the soak did too little"
    );
    assert!(max_size <= size_bound, "the pack grew to {max_size}");
}

fn sys_files_len(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Loads 2,000 distinct modules in one process with one engine, then recycling engines.
fn recycling() {
    let modules = corpus(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("soak-recycle")
            .as_path(),
        RECYCLE_MODULES,
        |i| {
            let seed = 90_000 + i as u32;
            (seed, wasmpak_samples::module_wat(seed, 2, 40))
        },
    );
    let scratch = tempfile::tempdir().unwrap();
    {
        let engine = Engine::default();
        let dir = artifact_dir("soak-recycle");
        let pack = PackCache::builder(scratch.path())
            .durability(wasmpak::Durability::None)
            .auto_compact(false)
            .build();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (_, key) in &modules {
            let bytes = std::fs::read(dir.join(format!("{key}.bin"))).unwrap();
            // SAFETY: `Module::serialize` output of this engine configuration, written by
            // `corpus` (the directory is named after the engine identity).
            let module = unsafe { Module::deserialize(&engine, bytes) }.unwrap();
            tokio.block_on(pack.save(*key, &engine, &module)).unwrap();
        }
    }
    let mut results = BTreeMap::new();
    for mode in ["one-engine", "recycled"] {
        let output = child(mode)
            .env("WASMPAK_SOAK_DIR", scratch.path())
            .output()
            .unwrap();
        assert_passed(&output, mode);
        let samples: Vec<(usize, u64, u64)> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "rss").then_some(())?;
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                ))
            })
            .collect();
        results.insert(mode, samples);
    }
    println!(
        "soak recycling: resident memory after N distinct loads, anonymous (the process's own) \
         and file-backed (pack pages read, shared page cache), MiB:"
    );
    println!("| loads | one engine: anon | file | new engine every {RECYCLE_EVERY}: anon | file |");
    println!("|---:|---:|---:|---:|---:|");
    let mib = |b: u64| b as f64 / 1048576.0;
    for ((n, one, one_file), (_, rec, rec_file)) in
        results["one-engine"].iter().zip(&results["recycled"])
    {
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} |",
            mib(*one),
            mib(*one_file),
            mib(*rec),
            mib(*rec_file)
        );
    }
    // Growth of the process's own memory over the second half of the loads.
    let growth = |mode: &str| {
        let s = &results[mode];
        s.last().unwrap().1 as i64 - s[s.len() / 2].1 as i64
    };
    println!(
        "soak recycling: anonymous growth over the last {} loads: one engine {:.1} MiB, \
         recycled {:.1} MiB",
        RECYCLE_MODULES / 2,
        growth("one-engine") as f64 / 1048576.0,
        growth("recycled") as f64 / 1048576.0
    );
    assert!(
        growth("recycled") < growth("one-engine") / 2,
        "recycling engines must bound the growth"
    );
}

/// A writer, a reader or the long-running reader of the churn, until killed.
fn worker(role: &str) {
    let dir = env_path("WASMPAK_SOAK_DIR");
    let mut rng = rand::rngs::StdRng::seed_from_u64(env_u64("WASMPAK_SOAK_SEED"));
    let mut out = std::io::stdout().lock();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let modules = manifest("soak-churn");
    let artifacts = artifact_dir("soak-churn");
    let engine = Engine::default();
    let cache = PackCache::builder(&dir).auto_compact(false).build();
    let mut last_rss = Instant::now();
    loop {
        let i = rng.random_range(0..modules.len());
        let (seed, key) = modules[i];
        if role == "writer" {
            let bytes = std::fs::read(artifacts.join(format!("{key}.bin"))).unwrap();
            // SAFETY: `Module::serialize` output of this engine configuration.
            let module = unsafe { Module::deserialize(&engine, bytes) }.unwrap();
            tokio.block_on(cache.save(key, &engine, &module)).unwrap();
            writeln!(out, "saved {i}").unwrap();
            std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
        } else {
            match tokio.block_on(cache.load(key, &engine)) {
                Ok(module) if answer(&engine, &module) == seed as i32 => {
                    writeln!(out, "ok {i}").unwrap()
                }
                Ok(_) => writeln!(out, "wrong {i}").unwrap(),
                Err(e) if e.is_not_found() => writeln!(out, "miss {i}").unwrap(),
                Err(e) => panic!("load failed: {e}"),
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(1..10)));
        }
        if role == "long-reader" && last_rss.elapsed() >= Duration::from_secs(5) {
            writeln!(out, "rss {}", rss().0).unwrap();
            last_rss = Instant::now();
        }
        out.flush().unwrap();
    }
}

/// The churn's compactor: once a second, until told to stop.
fn compactor() {
    let dir = env_path("WASMPAK_SOAK_DIR");
    let mut out = std::io::stdout().lock();
    let engine = Engine::default();
    let path = PackCache::new(&dir)
        .pack_path(&engine)
        .expect("a cache with a directory has a pack path");
    let pack = Pack::open(&path, &EngineIdentity::of(&engine).to_pack_identity()).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if dir.join("stop-compactor").exists() {
            return;
        }
        let mut retention = Retention::new()
            .max_entries(MAX_ENTRIES)
            .max_live_bytes(MAX_LIVE_BYTES);
        retention.touch_from_sidecar(&path);
        let report = pack.compact_with(&retention).unwrap();
        for key in report.evicted() {
            writeln!(out, "evicted {key}").unwrap();
        }
        writeln!(out, "compacted").unwrap();
        out.flush().unwrap();
    }
}

/// The recycling test's process: loads every module of the pack, with one engine or a new one
/// every `RECYCLE_EVERY` loads, printing its resident memory as it goes.
fn loader(recycle: bool) {
    let dir = env_path("WASMPAK_SOAK_DIR");
    let mut out = std::io::stdout().lock();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let modules = manifest("soak-recycle");
    let cache = if recycle {
        PackCache::builder(&dir).memo_entries(RECYCLE_EVERY).build()
    } else {
        PackCache::new(&dir)
    };
    let mut engine = Engine::default();
    for (n, (seed, key)) in modules.iter().enumerate() {
        if recycle && n > 0 && n % RECYCLE_EVERY == 0 {
            // The pattern: a fresh engine; the old one is freed once the memo has let go of
            // its modules and no instance of them runs.
            engine = Engine::default();
        }
        let module = tokio.block_on(cache.load(*key, &engine)).unwrap();
        assert_eq!(answer(&engine, &module), *seed as i32);
        if (n + 1) % RECYCLE_EVERY == 0 {
            let (anon, file) = rss();
            writeln!(out, "rss {} {anon} {file}", n + 1).unwrap();
        }
    }
    out.flush().unwrap();
}

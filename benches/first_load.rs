//! A process's first load, the way a runtime's worker meets it: a fresh process creates the
//! cache and loads one module. `PackCache` (a CRC-32 of every artifact byte before wasmer
//! reads it) against the `wasmer-cache` crate's `FileSystemCache` (what `wasmer run` uses:
//! `Module::deserialize_from_file`, which maps the file and validates the archive's layout,
//! no checksum), for artifacts of about 7 KiB, 4 MB and 22 MB.
//!
//! ```sh
//! cargo bench --profile ci --all-features --bench first_load             # 21 rounds
//! cargo bench --profile ci --all-features --bench first_load -- --rounds 7
//! cargo bench --profile ci --all-features --bench first_load -- --keep   # caches for other tools
//! cargo bench --profile ci --all-features --bench first_load -- --warm-code
//! ```
//!
//! `--warm-code` is a diagnosis, not the measurement: each worker first makes the same load
//! once through another cache instance, untimed, and then evicts the CPU caches and times a
//! new cache's load as usual. The timed load then finds its code's pages mapped and lazy
//! statics initialized (and, for the pack, its engine's identity remembered, which wasmpak
//! keeps per process), but fetches its code and data from memory again: what is left of the
//! gap between the caches is the cost of the code each one runs, not of faulting it in.
//!
//! Two floors run beside the caches, on `wasmer-cache`'s own file, with no cache code at
//! all: `mapped` opens and maps the file and hands its bytes to
//! `Module::deserialize_unchecked` (what the pack does after its checks), and `mapped+crc`
//! does the same after a CRC-32 of every byte, compared with the one computed when the file
//! was saved. `mapped+crc` is the least any cache can take whose first load checks every byte
//! of the artifact as the pack does; its ratio to `wasmer-cache` bounds what a leaner pack
//! could reach.
//!
//! `FIRST_LOAD_CPU_LEVEL=x86-64-v3` compiles for that level instead of this host's features
//! (valgrind, for one, offers no AVX-512).
//!
//! Each round starts one process per cache and size, alternating the caches, so that drift
//! in the machine's speed (other builds share it) affects both alike; the table shows medians.
//! A worker first builds what a server has before its first request (an engine, a
//! multi-thread tokio runtime), then overwrites a buffer larger than the CPU's last-level
//! cache (the machine did other work since the module was last read), and then times creating
//! the cache and loading the module, the page cache warm. `PackCache` is driven through its
//! async `load` with `block_on`, as the edge workload's workers do; `wasmer-cache` is
//! synchronous. The CPU time and minor page faults of the timed part are shown too (CPU time
//! does not count the time the process waited for a core). Every loaded module is run,
//! untimed, to check it is the one saved. The modules are compiled once and kept under the
//! target directory.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmer::{Engine, Module};
use wasmer_cache::Cache as _;
use wasmpak::{ModuleCache, ModuleHash, PackCache};

/// (name, functions, ops of the generated module): about 7 KiB, 4 MB and 22 MB of artifact.
const SHAPES: [(&str, u32, u32); 3] = [("7 KiB", 1, 4), ("4 MB", 550, 500), ("22 MB", 1850, 1000)];
/// The caches and the two floors (see above), in the table's order.
const CACHES: [&str; 4] = ["pack", "wasmer-cache", "mapped", "mapped+crc"];
/// What every module's `answer` export returns.
const SEED: u32 = 7;

/// One module of the corpus, as the workers find it.
struct Case {
    key: ModuleHash,
    blake3: wasmer_cache::Hash,
    /// CRC-32 of `wasmer-cache`'s file for this module, for the `mapped+crc` floor.
    crc: u32,
    artifact_len: usize,
}

fn main() {
    if let Ok(spec) = std::env::var("FIRST_LOAD_WORKER") {
        worker(&spec);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let rounds = common::rounds(21);
    let warm_code = args.iter().any(|a| a == "--warm-code");
    let dir = tempfile::tempdir().unwrap();
    let cases = populate(dir.path());
    if args.iter().any(|a| a == "--keep") {
        // Leave the caches for outside tools (whole-process timers, callgrind): one worker
        // spec per line, `FIRST_LOAD_WORKER=SPEC` runs it.
        for case in &cases {
            for cache in CACHES {
                println!("{}", spec(cache, dir.path(), case));
            }
        }
        let _ = dir.keep();
        return;
    }
    println!(
        "first load in a fresh process{}: medians of {rounds} interleaved rounds; load: {}",
        if warm_code {
            " (--warm-code: the same load made once before, untimed)"
        } else {
            ""
        },
        loadavg()
    );
    println!(
        "{:>9} | {:>9} {:>13} {:>6} | {:>9} {:>9} {:>6} | {:>13} | {:>9} {:>10} {:>6}",
        "artifact",
        "pack",
        "wasmer-cache",
        "ratio",
        "pack CPU",
        "w-c CPU",
        "ratio",
        "faults (p/w-c)",
        "mapped",
        "mapped+crc",
        "ratio"
    );
    for case in &cases {
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); CACHES.len()];
        for round in 0..rounds {
            for turn in 0..CACHES.len() {
                let which = (turn + round) % CACHES.len();
                runs[which].push(spawn(CACHES[which], dir.path(), case, warm_code));
            }
        }
        let median = |which: usize, f: fn(&Run) -> f64| {
            let mut values: Vec<f64> = runs[which].iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let wall = |r: &Run| r.wall.as_secs_f64();
        let cpu = |r: &Run| r.cpu.as_secs_f64();
        let faults = |r: &Run| r.faults as f64;
        println!(
            "{:>9} | {:>9} {:>13} {:>6.2} | {:>9} {:>9} {:>6.2} | {:>13} | {:>9} {:>10} {:>6.2}",
            size(case.artifact_len),
            show(median(0, wall)),
            show(median(1, wall)),
            median(0, wall) / median(1, wall),
            show(median(0, cpu)),
            show(median(1, cpu)),
            median(0, cpu) / median(1, cpu),
            format!("{:.0} / {:.0}", median(0, faults), median(1, faults)),
            show(median(2, wall)),
            show(median(3, wall)),
            median(3, wall) / median(1, wall),
        );
    }
    println!("load at the end: {}", loadavg());
}

/// What one worker measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
    faults: u64,
}

/// What a worker is told: which cache, where, and the module's keys and CRC.
fn spec(cache: &str, dir: &Path, case: &Case) -> String {
    let (key, blake3, crc) = (case.key, case.blake3, case.crc);
    format!("{cache};{};{key};{blake3};{crc}", dir.display())
}

fn spawn(cache: &str, dir: &Path, case: &Case, warm_code: bool) -> Run {
    let spec = spec(cache, dir, case);
    let mut env = vec![("FIRST_LOAD_WORKER", spec.as_str())];
    if warm_code {
        env.push(("FIRST_LOAD_WARM_CODE", "1"));
    }
    let text = common::run_worker(&env, cache);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    Run {
        wall: Duration::from_nanos(numbers[0]),
        cpu: Duration::from_nanos(numbers[1]),
        faults: numbers[2],
    }
}

/// The worker: one first load, timed, then checked.
fn worker(spec: &str) {
    let mut lines = spec.split(';');
    let (cache, dir) = (lines.next().unwrap(), PathBuf::from(lines.next().unwrap()));
    let key: wasmpak::Key = lines.next().unwrap().parse().unwrap();
    let key = ModuleHash::from_bytes(*key.as_bytes());
    let blake3: wasmer_cache::Hash = lines.next().unwrap().parse().unwrap();
    let crc: u32 = lines.next().unwrap().parse().unwrap();
    let engine = engine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("FIRST_LOAD_WARM_CODE").is_some() {
        drop(timed_load(cache, &dir, key, blake3, crc, &engine, &runtime));
    }
    common::evict_cpu_caches();

    let (faults, cpu) = (minor_faults(), process_cpu());
    let started = Instant::now();
    let (module, keep) = timed_load(cache, &dir, key, blake3, crc, &engine, &runtime);
    let wall = started.elapsed();
    let (cpu, faults) = (process_cpu() - cpu, minor_faults() - faults);
    check(&engine, &module);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {} {faults}", wall.as_nanos(), cpu.as_nanos()).unwrap();
    // The pack cache's recency stamps are flushed when it drops, after the measurement.
    drop(keep);
}

/// Creates the cache and makes the first load: the timed part, a function of its own so that
/// an instruction count can be limited to it
/// (`valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*timed_load*'`).
#[inline(never)]
fn timed_load(
    cache: &str,
    dir: &Path,
    key: ModuleHash,
    blake3: wasmer_cache::Hash,
    crc: u32,
    engine: &Engine,
    runtime: &tokio::runtime::Runtime,
) -> (Module, Option<PackCache>) {
    match cache {
        "pack" => {
            let cache = PackCache::new(dir.join("pack"));
            let module = runtime.block_on(cache.load(key, engine)).unwrap();
            (module, Some(cache))
        }
        "wasmer-cache" => {
            let cache = wasmer_cache::FileSystemCache::new(dir.join("wasmer-cache")).unwrap();
            // SAFETY: the directory holds only what `populate` stored: `Module::serialize`
            // output of an engine with this configuration.
            (unsafe { cache.load(engine, blake3) }.unwrap(), None)
        }
        floor @ ("mapped" | "mapped+crc") => {
            // wasmer-cache's file name: the key's hex (`FileSystemCache` adds no extension).
            let path = dir.join("wasmer-cache").join(blake3.to_string());
            let file = std::fs::File::open(path).unwrap();
            // SAFETY: the benchmark's own file, which nothing writes while a worker runs.
            let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
            if floor == "mapped+crc" {
                assert_eq!(
                    crc32fast::hash(&map),
                    crc,
                    "the file changed since it was saved"
                );
            }
            let bytes = bytes::Bytes::from_owner(map);
            // SAFETY: the file holds `Module::serialize` output of an engine with this
            // configuration, stored by `populate` (and, for `mapped+crc`, checked just now).
            (
                unsafe { Module::deserialize_unchecked(engine, bytes) }.unwrap(),
                None,
            )
        }
        other => panic!("unknown cache {other}"),
    }
}

/// Compiles each shape once (kept under the target directory) and saves it in both caches.
fn populate(dir: &Path) -> Vec<Case> {
    let compiled = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmpak-first-load");
    std::fs::create_dir_all(&compiled).unwrap();
    let engine = engine();
    let identity = wasmpak::EngineIdentity::of(&engine).file_stem();
    let pack = PackCache::new(dir.join("pack"));
    let mut files = wasmer_cache::FileSystemCache::new(dir.join("wasmer-cache")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    SHAPES
        .iter()
        .map(|&(name, functions, ops)| {
            let wat = wasmpak_samples::module_wat(SEED, functions, ops);
            let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
            let key = ModuleHash::new(&wasm);
            let artifact = compiled.join(format!("{identity}-{key}.bin"));
            if !artifact.exists() {
                eprintln!("compiling the {name} module once...");
                let bytes = Module::new(&engine, &wasm).unwrap().serialize().unwrap();
                std::fs::write(artifact.with_extension("partial"), &bytes).unwrap();
                std::fs::rename(artifact.with_extension("partial"), &artifact).unwrap();
            }
            // SAFETY: the file holds `Module::serialize` output of an engine with this
            // identity (its name says which), written whole (renamed into place).
            let module = unsafe { Module::deserialize_from_file(&engine, &artifact) }.unwrap();
            runtime.block_on(pack.save(key, &engine, &module)).unwrap();
            let blake3 = wasmer_cache::Hash::generate(&wasm);
            files.store(blake3, &module).unwrap();
            let stored = std::fs::read(dir.join("wasmer-cache").join(blake3.to_string())).unwrap();
            Case {
                key,
                blake3,
                crc: crc32fast::hash(&stored),
                artifact_len: std::fs::metadata(&artifact).unwrap().len() as usize,
            }
        })
        .collect()
}

/// What a runtime on this host uses, or an engine for `FIRST_LOAD_CPU_LEVEL`'s features.
fn engine() -> Engine {
    use wasmer::sys::{CpuFeature, Cranelift, EngineBuilder, Target, Triple};
    let Ok(level) = std::env::var("FIRST_LOAD_CPU_LEVEL") else {
        return Engine::default();
    };
    let level = wasmpak::CpuLevel::named(&level).expect("a CPU level such as x86-64-v3");
    let mut features = CpuFeature::set();
    features.extend(level.features().iter().copied());
    let target = Target::new(Triple::host(), features);
    Engine::from(EngineBuilder::new(Cranelift::default()).set_target(Some(target)))
}

/// Checks that `module` is the one saved: its `answer` export returns the seed.
fn check(engine: &Engine, module: &Module) {
    let mut store = wasmer::Store::new(engine.clone());
    let instance = wasmer::Instance::new(&mut store, module, &wasmer::imports! {}).unwrap();
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap()
        .call(&mut store)
        .unwrap();
    assert_eq!(
        answer, SEED as i32,
        "the loaded module is not the one saved"
    );
}

/// This process's minor page faults so far.
fn minor_faults() -> u64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    usage.ru_minflt as u64
}

/// CPU time of every thread of this process so far.
fn process_cpu() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes the timespec it is given and reads nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) };
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

fn size(bytes: usize) -> String {
    match bytes as f64 {
        b if b >= (1 << 20) as f64 => format!("{:.1} MiB", b / (1 << 20) as f64),
        b => format!("{:.1} KiB", b / 1024.0),
    }
}

fn show(seconds: f64) -> String {
    match seconds {
        s if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        s => format!("{:.0} µs", s * 1e6),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

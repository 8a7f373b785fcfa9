//! The fleet tier on loopback, against a real S3-compatible server (moto, started here):
//!
//! 1. a module's first load through the remote tier (an empty local pack in front of an
//!    `ObjectStoreCache`: download, check, deserialize, promote into the pack) against its
//!    first load from a local pack;
//! 2. `wasmpak pull` of a pack against a plain `object_store` GET of the same object into
//!    memory (goal: pull at least 0.8x the GET's throughput, though it also writes, syncs and
//!    verifies the file);
//! 3. a delta pull into a pack that has 90% of the entries, against a full pull (goal: at
//!    most 0.2x the bytes);
//! 4. a save through an `ObjectStoreCache` with background uploads, against a stalled server:
//!    how soon it returns (goal: well under the 800 ms upload timeout; the save must not wait
//!    for its upload).
//!
//! Run: `cargo bench --features object-store,cli --bench fleet` (append `-- pull`, `-- load`,
//! `-- delta` or `-- save` for one part; set `FLEET_BASELINE_WASMPAK` to another build of the tool to
//! time its pulls in the same rounds). Variants are interleaved round by round and medians
//! reported, so drift in the machine's speed affects all alike.

#[path = "../tests/fleet/moto.rs"]
mod moto;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wasmer::{Engine, Module};
use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::object_store::{ObjectStoreExt, PutPayload};
use wasmpak::{
    Durability, Key, ModuleCache, ModuleHash, ObjectStoreCache, PackCache, PackIdentity,
    PackOptions,
};
use wasmpak_samples::{SAMPLES, module_wat};

const BIN: &str = env!("CARGO_BIN_EXE_wasmpak");
const ROUNDS: usize = 9;
/// Pulls are short and the machine noisy: more rounds for them.
const PULL_ROUNDS: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs benches with no argument
    // and expects them to be quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet: run with `cargo bench --features object-store --bench fleet`");
        return;
    }
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let moto = moto::Moto::start();
    if wanted("load") {
        first_load(&moto);
    }
    if wanted("pull") {
        pull_throughput(&moto);
    }
    if wanted("delta") {
        delta_bytes(&moto);
    }
    if wanted("save") {
        background_save();
    }
}

fn first_load(moto: &moto::Moto) {
    println!("\n1. First load of a module: through the remote tier vs from the local pack");
    println!(
        "| module | artifact | remote tier (+ promote) | remote tier alone | local pack | remote/local |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let rt = runtime();
    let bucket = moto.bucket("bench-load");
    let store = moto.store(&bucket);
    for sample in &SAMPLES[1..] {
        let wat = module_wat(1, sample.functions, sample.ops);
        let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
        let key = ModuleHash::new(&wasm);
        let compiler = Engine::default();
        let module = Module::new(&compiler, &wasm).unwrap();
        let artifact = module.serialize().unwrap().len();
        let seed = ObjectStoreCache::builder(store.clone(), "bench")
            .background_saves(false)
            .build();
        rt.block_on(seed.save(key, &compiler, &module)).unwrap();
        let local = tempfile::tempdir().unwrap();
        rt.block_on(PackCache::new(local.path()).save(key, &compiler, &module))
            .unwrap();
        let (mut chain, mut remote, mut pack) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let engine = Engine::default();
            let empty = tempfile::tempdir().unwrap();
            let cache = PackCache::new(empty.path())
                .with_fallback(ObjectStoreCache::new(store.clone(), "bench"));
            let started = Instant::now();
            rt.block_on(cache.load(key, &engine)).unwrap();
            chain.push(started.elapsed());

            let engine = Engine::default();
            let cache = ObjectStoreCache::new(store.clone(), "bench");
            let started = Instant::now();
            rt.block_on(cache.load(key, &engine)).unwrap();
            remote.push(started.elapsed());

            let engine = Engine::default();
            let cache = PackCache::new(local.path());
            let started = Instant::now();
            rt.block_on(cache.load(key, &engine)).unwrap();
            pack.push(started.elapsed());
        }
        let (chain, remote, pack) = (median(chain), median(remote), median(pack));
        println!(
            "| {} | {:.1} KiB | {:.2} ms | {:.2} ms | {:.3} ms | {:.1}x |",
            sample.name,
            artifact as f64 / 1024.0,
            ms(chain),
            ms(remote),
            ms(pack),
            remote.as_secs_f64() / pack.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn key(n: u64) -> Key {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Key::from_bytes(std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }))
}

fn value(n: u64, len: usize) -> Vec<u8> {
    let mut state = n | 1;
    (0..len / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect()
}

fn pack_with(path: &Path, range: std::ops::Range<u64>, len: usize) {
    let identity = PackIdentity::new().with("engine", "bench");
    let pack = PackOptions::new()
        .durability(Durability::None)
        .open_or_create(path, &identity)
        .unwrap();
    let mut batch = pack.batch();
    for n in range {
        batch
            .insert_with_label(&key(n), &value(n, len), &format!("m{n}"))
            .unwrap();
    }
    batch.commit().unwrap();
}

fn wasmpak(moto: &moto::Moto, args: &[&str]) -> serde_json::Value {
    let output = Command::new(BIN)
        .args(args)
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

fn pull_throughput(moto: &moto::Moto) {
    const MIB: usize = 1 << 20;
    const PHASES: [&str; 7] = [
        "connect", "request", "download", "check", "sync", "verify", "install",
    ];
    println!("\n2. Pull throughput vs a plain object_store GET of the same object (into memory)");
    let rt = runtime();
    let bucket = moto.bucket("bench-pull");
    let store = moto.store(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let mut table = Vec::new();
    let mut breakdown = Vec::new();
    // Another build of the tool to compare with, pulling in the same rounds.
    let baseline = std::env::var_os("FLEET_BASELINE_WASMPAK");
    let mut baseline_rows = Vec::new();
    for size in [4 * MIB, 16 * MIB, 64 * MIB, 128 * MIB] {
        let source = dir.path().join(format!("p{size}.wpk"));
        pack_with(&source, 0..(size / MIB) as u64, MIB);
        let url = format!("s3://{bucket}/p{size}.wpk");
        wasmpak(moto, &["push", source.to_str().unwrap(), &url]);
        let path = ObjectPath::from(format!("p{size}.wpk"));
        let (mut get, mut first_byte, mut cold) = (Vec::new(), Vec::new(), Vec::new());
        let (mut disk, mut before) = (Vec::new(), Vec::new());
        let (mut pull, mut inside, mut other) = (Vec::new(), Vec::new(), Vec::new());
        let mut phases = vec![Vec::new(); PHASES.len()];
        for round in 0..PULL_ROUNDS {
            // A GET on a client that has served requests already (its connection open).
            let started = Instant::now();
            let bytes = rt
                .block_on(async {
                    let response = store.get(&path).await?;
                    first_byte.push(started.elapsed());
                    response.bytes().await
                })
                .unwrap();
            get.push(started.elapsed());
            drop(bytes);
            // What a new process must do first too: build a client, open a connection.
            let started = Instant::now();
            let fresh = moto.store(&bucket);
            let bytes = rt
                .block_on(async { fresh.get(&path).await?.bytes().await })
                .unwrap();
            cold.push(started.elapsed());
            drop(fresh);

            // The floor of any durable install: the same bytes written and synced, alone.
            let floor = dir.path().join(format!("floor-{size}-{round}"));
            let started = Instant::now();
            let file = std::fs::File::create(&floor).unwrap();
            std::io::Write::write_all(&mut &file, &bytes).unwrap();
            file.sync_data().unwrap();
            disk.push(started.elapsed());
            drop(file);
            std::fs::remove_file(&floor).unwrap();

            let node = dir.path().join(format!("node-{size}-{round}"));
            let started = Instant::now();
            let summary = wasmpak(moto, &["pull", &url, node.to_str().unwrap(), "--json"]);
            pull.push(started.elapsed());
            inside.push(Duration::from_nanos(summary["nanos"].as_u64().unwrap()));
            let phase = |name: &str| summary["phases"][name].as_u64().unwrap();
            for (name, samples) in PHASES.iter().zip(&mut phases) {
                samples.push(Duration::from_nanos(phase(name)));
            }
            // The rest of `run`: what no phase covers (check, check, sync and verify overlap).
            let covered = ["connect", "request", "download", "install"]
                .map(phase)
                .iter()
                .sum::<u64>()
                + phase("check").max(phase("sync")).max(phase("verify"));
            other.push(Duration::from_nanos(
                summary["nanos"].as_u64().unwrap().saturating_sub(covered),
            ));
            std::fs::remove_dir_all(&node).unwrap();

            if let Some(baseline) = &baseline {
                let started = Instant::now();
                let output = Command::new(baseline)
                    .args(["pull", &url, node.to_str().unwrap()])
                    .envs(moto.env())
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{output:?}");
                before.push(started.elapsed());
                std::fs::remove_dir_all(&node).unwrap();
            }
        }
        if !before.is_empty() {
            let (before, now) = (median(before.clone()), median(pull.clone()));
            baseline_rows.push(format!(
                "| {} MiB | {:.1} ms | {:.1} ms | {:.2}x |",
                size / MIB,
                ms(before),
                ms(now),
                now.as_secs_f64() / before.as_secs_f64()
            ));
        }
        let (get, first_byte, cold) = (median(get), median(first_byte), median(cold));
        let disk = median(disk);
        let (pull, inside) = (median(pull), median(inside));
        let mib = (size / MIB) as f64;
        let rate = |d: Duration| mib / d.as_secs_f64();
        table.push(format!(
            "| {} MiB | {:.0} MiB/s | {:.0} MiB/s | {:.0} MiB/s | {:.2}x | {:.2}x | {:.2}x |",
            size / MIB,
            rate(get),
            rate(cold),
            rate(pull),
            rate(pull) / rate(get),
            rate(pull) / rate(cold),
            rate(inside) / rate(get),
        ));
        let mut row = format!(
            "| {} MiB | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            size / MIB,
            ms(first_byte),
            ms(get),
            ms(cold),
            ms(disk),
            ms(pull),
            ms(pull.saturating_sub(inside))
        );
        for samples in phases {
            row += &format!(" {:.1} |", ms(median(samples)));
        }
        row += &format!(" {:.1} |", ms(median(other)));
        breakdown.push(row);
        std::fs::remove_file(&source).unwrap();
        rt.block_on(store.put(&path, PutPayload::from_static(b"")))
            .unwrap();
    }
    println!(
        "| pack | GET | GET, new client | pull (a process) | pull/GET | pull/GET, new client \
         | pull inside the process/GET |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in table {
        println!("{row}");
    }
    println!(
        "\nWhere the time goes (medians, ms; `process` is the pull's wall time outside its `run`, \
         check, sync and verify overlap)"
    );
    println!(
        "| pack | GET: first byte | GET | GET, new client | write + fdatasync alone | pull \
         | process | {} | other |",
        PHASES.join(" | ")
    );
    println!("|---:|{}", "---:|".repeat(PHASES.len() + 7));
    for row in breakdown {
        println!("{row}");
    }
    if !baseline_rows.is_empty() {
        println!("\nThis build's pull against FLEET_BASELINE_WASMPAK's, same rounds");
        println!("| pack | baseline pull | this pull | this/baseline time |");
        println!("|---:|---:|---:|---:|");
        for row in baseline_rows {
            println!("{row}");
        }
    }
}

fn delta_bytes(moto: &moto::Moto) {
    println!("\n3. Delta pull vs full pull, 100 entries of 256 KiB, 90 already local");
    let bucket = moto.bucket("bench-delta");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, 0..100, 256 << 10);
    let url = format!("s3://{bucket}/app.wpk");
    wasmpak(moto, &["push", source.to_str().unwrap(), &url]);
    let full_dir = dir.path().join("full");
    let full = wasmpak(moto, &["pull", &url, full_dir.to_str().unwrap(), "--json"]);
    let delta_dir = dir.path().join("delta");
    std::fs::create_dir(&delta_dir).unwrap();
    // The node's 90 entries, shuffled relative to the remote pack's order.
    pack_with(&delta_dir.join("app.wpk"), 10..100, 256 << 10);
    let delta = wasmpak(moto, &["pull", &url, delta_dir.to_str().unwrap(), "--json"]);
    let bytes = |v: &serde_json::Value| v["bytes_downloaded"].as_u64().unwrap();
    let requests = |v: &serde_json::Value| v["requests"].as_u64().unwrap();
    println!("| pull | bytes | requests | entries added | time |");
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in [("full", &full), ("delta", &delta)] {
        println!(
            "| {name} | {} | {} | {} | {:.1} ms |",
            bytes(v),
            requests(v),
            v["entries_added"],
            v["nanos"].as_u64().unwrap() as f64 / 1e6
        );
    }
    println!(
        "delta/full bytes: {:.3}x",
        bytes(&delta) as f64 / bytes(&full) as f64
    );
}

fn background_save() {
    const TIMEOUT: Duration = Duration::from_millis(800);
    println!(
        "\n4. A save with background uploads against a stalled server (upload timeout {} ms)",
        TIMEOUT.as_millis()
    );
    let rt = runtime();
    let moto = moto::Moto::start();
    let bucket = moto.bucket("bench-save");
    let engine = Engine::default();
    let modules: Vec<(ModuleHash, Module, Duration)> = (0..ROUNDS as u32)
        .map(|round| {
            let wasm = wasmer::wat2wasm(module_wat(700 + round, 4, 50).as_bytes())
                .unwrap()
                .into_owned();
            let started = Instant::now();
            let module = Module::new(&engine, &wasm).unwrap();
            (ModuleHash::new(&wasm), module, started.elapsed())
        })
        .collect();
    moto.stall();
    let mut saves = Vec::new();
    let mut caches = Vec::new();
    for (key, module, _) in &modules {
        let cache = ObjectStoreCache::builder(moto.store(&bucket), "bench")
            .timeout(TIMEOUT)
            .build();
        let started = Instant::now();
        rt.block_on(cache.save(*key, &engine, module)).unwrap();
        saves.push(started.elapsed());
        caches.push(cache);
    }
    for cache in &caches {
        rt.block_on(cache.flush());
        assert_eq!(cache.stats().failures, 1, "the stalled upload timed out");
    }
    moto.resume();
    let compile = median(modules.iter().map(|(_, _, d)| *d).collect());
    let save = median(saves);
    println!("| compile (not in the save) | save returns |");
    println!("|---:|---:|");
    println!("| {:.2} ms | {:.3} ms |", ms(compile), ms(save));
    println!(
        "goal (well under the timeout): {}",
        if save < TIMEOUT / 10 { "met" } else { "missed" }
    );
}

//! Where the first load of an artifact belongs inside a tokio runtime: on the executor thread,
//! or on the blocking pool.
//!
//! Run: `cargo bench --features wasmer --bench load_async`. For artifacts from about 7 KB to
//! 3.6 MB, from a pack already open, on a current-thread runtime, it times:
//!
//! - *inline*: `Pack::get` (CRC-32 of the artifact) and deserialization on the executor thread,
//!   which is what `PackCache` does for artifacts below its inline threshold; the executor
//!   can run nothing else meanwhile;
//! - *pool*: the same work sent to tokio's blocking pool and awaited, which is what it does
//!   above the threshold; the executor is free meanwhile;
//! - *cache*: `PackCache::load` itself (memo off, checksum on every load), to show which of the
//!   two it does.
//!
//! The difference *pool − inline* is the price of the trip to the pool: below the size where
//! the inline load takes about as long as that trip, sending it away costs the caller more
//! than it spares the other tasks. Medians of interleaved rounds, a fresh `Engine` per load
//! (created outside the timing), warm page cache.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use wasmer::{Engine, Module};
use wasmpak::{EngineIdentity, Key, ModuleCache, ModuleHash, Pack, PackCache, PackOptions, Verify};

/// (name, functions, ops) of `wasmpak_samples::module_wat`.
const SHAPES: [(&str, u32, u32); 6] = [
    ("7KB", 1, 4),
    ("46KB", 20, 100),
    ("120KB", 40, 130),
    ("250KB", 60, 180),
    ("0.9MB", 200, 250),
    ("3.6MB", 500, 450),
];

const ROUNDS: usize = 41;

struct Case {
    name: &'static str,
    key: ModuleHash,
    len: usize,
}

fn pack_key(key: &ModuleHash) -> Key {
    Key::from_bytes(key.as_bytes().try_into().unwrap())
}

/// Compiles every shape into a pack of the default engine's identity in `dir`.
fn cases(dir: &Path) -> Vec<Case> {
    let engine = Engine::default();
    let identity = EngineIdentity::of(&engine);
    let path = dir.join(identity.pack_file_name());
    let pack = Pack::open_or_create(&path, &identity.to_pack_identity()).unwrap();
    SHAPES
        .iter()
        .map(|&(name, functions, ops)| {
            let wat = wasmpak_samples::module_wat(3, functions, ops);
            let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
            let key = ModuleHash::new(&wasm);
            let artifact = Module::new(&engine, &wasm).unwrap().serialize().unwrap();
            pack.insert(&pack_key(&key), &artifact).unwrap();
            Case {
                name,
                key,
                len: artifact.len(),
            }
        })
        .collect()
}

/// Checksum and deserialize, as a first load does once the pack is open.
fn load(pack: &Pack, key: &Key, engine: &Engine) -> Module {
    wasmpak::load_module(pack, key, engine).unwrap()
}

fn time(runtime: &tokio::runtime::Runtime, run: impl AsyncFnOnce(&Engine) -> Module) -> Duration {
    let engine = Engine::default();
    let start = Instant::now();
    let module = runtime.block_on(run(&engine));
    let elapsed = start.elapsed();
    black_box(module);
    elapsed
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    let identity = EngineIdentity::of(&Engine::default());
    let pack = PackOptions::new()
        .verify(Verify::Always)
        .open(
            dir.path().join(identity.pack_file_name()),
            &identity.to_pack_identity(),
        )
        .unwrap();
    let cache = PackCache::builder(dir.path())
        .memo_entries(0)
        .verify_every_load(true)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Open everything once: the table is about loads from open packs.
    for case in &cases {
        runtime
            .block_on(cache.load(case.key, &Engine::default()))
            .unwrap();
    }

    println!("first load from an open pack, current-thread runtime: medians of {ROUNDS} rounds");
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>13} {:>10}",
        "module", "artifact", "inline", "pool", "pool-inline", "cache"
    );
    for case in &cases {
        let key = pack_key(&case.key);
        let (mut inline, mut pool, mut cached) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            inline.push(time(&runtime, async |engine| load(&pack, &key, engine)));
            pool.push(time(&runtime, async |engine| {
                let (pack, engine) = (pack.clone(), engine.clone());
                tokio::task::spawn_blocking(move || load(&pack, &key, &engine))
                    .await
                    .unwrap()
            }));
            cached.push(time(&runtime, async |engine| {
                cache.load(case.key, engine).await.unwrap()
            }));
        }
        let (inline, pool, cached) = (median(inline), median(pool), median(cached));
        println!(
            "{:>7} {:>9}K {:>10.1?} {:>10.1?} {:>13.1?} {:>10.1?}",
            case.name,
            case.len / 1024,
            inline,
            pool,
            pool.saturating_sub(inline),
            cached
        );
    }
}

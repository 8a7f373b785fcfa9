use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmer::{Engine, Module};

use super::cache::key_of;
use super::load::INLINE_LOAD_BYTES;
use super::{PackCache, PackCacheBuilder};
use crate::cache::conformance::{self, CHECKS, CacheUnderTest};
// The lower-CPU-level tests are x86_64's alone (see `baseline_engine`).
#[cfg(target_arch = "x86_64")]
use crate::cache::test_support::baseline_engine;
#[cfg(target_arch = "x86_64")]
use wasmpak_testkit::machine::missing;

use crate::cache::test_support::{
    answer, compiled, compiled_by, engine, engine_without_cpu_features, key, loaded_answer, misses,
    poll_ready, save_numbered, warnings_during, wat_module,
};
use crate::cache::{CacheError, ModuleCache, ModuleHash};
use crate::{EngineIdentity, Pack, PackIdentity};

/// A pack cache under the conformance checks; damage is two bytes overwritten in the
/// middle of the module's value.
struct Packs(tempfile::TempDir, PackCache);

impl CacheUnderTest for Packs {
    type Cache = PackCache;

    fn cache(&self) -> &PackCache {
        &self.1
    }

    fn reopen(&self) -> Option<PackCache> {
        Some(PackCache::new(self.0.path()))
    }

    fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool {
        let path = self.1.pack_path(engine).unwrap();
        let entry = Pack::open_any(&path)
            .unwrap()
            .iter()
            .unwrap()
            .find(|entry| *entry.key() == key_of(&key))
            .expect("the saved module is in the pack");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"\xde\xad", entry.offset() + entry.size() / 2)
            .unwrap();
        true
    }
}

#[test]
fn conforms() {
    let dir = tempfile::tempdir().unwrap();
    let cache = PackCache::new(dir.path());
    let report = conformance::run(&Packs(dir, cache)).unwrap();
    assert_eq!(report.ran, CHECKS);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn saves_and_loads_across_caches_without_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    assert!(poll_ready(misses(&cache, 1, engine)));
    assert!(!poll_ready(cache.contains(key(1), engine)).unwrap());
    poll_ready(save_numbered(&cache, 1, engine));
    assert!(cache.pack_path(engine).unwrap().exists());

    let fresh = PackCache::new(dir.path());
    assert!(poll_ready(fresh.contains(key(1), engine)).unwrap());
    let loaded = poll_ready(fresh.load(key(1), engine)).unwrap();
    assert_eq!(answer(&loaded, engine), 1);
    assert_eq!(
        loaded.serialize().unwrap(),
        compiled(1).serialize().unwrap()
    );
    let stats = fresh.stats();
    assert_eq!((stats.hits, stats.memo_hits, stats.misses), (1, 0, 0));
    assert!(stats.bytes_mapped > 0);
}

#[test]
fn repeated_loads_come_from_the_memo() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    poll_ready(PackCache::new(dir.path()).save(key(2), engine, &compiled(2))).unwrap();
    let cache = PackCache::new(dir.path());
    let first = poll_ready(cache.load(key(2), engine)).unwrap();
    for _ in 0..10 {
        let again = poll_ready(cache.load(key(2), engine)).unwrap();
        assert_eq!(
            again, first,
            "the same module, not a second deserialization"
        );
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.memo_hits, stats.memo_entries),
        (1, 10, 1)
    );
}

#[test]
fn the_memo_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::builder(dir.path()).memo_entries(2).build();
    for n in 10..15 {
        poll_ready(save_numbered(&cache, n, engine));
    }
    assert_eq!(cache.stats().memo_entries, 2);
    // The most recent two are memoized; the others load from the pack.
    poll_ready(cache.load(key(14), engine)).unwrap();
    poll_ready(cache.load(key(10), engine)).unwrap();
    let stats = cache.stats();
    assert_eq!((stats.memo_hits, stats.hits), (1, 1));
    let off = PackCache::builder(dir.path()).memo_entries(0).build();
    poll_ready(off.load(key(11), engine)).unwrap();
    poll_ready(off.load(key(11), engine)).unwrap();
    assert_eq!((off.stats().hits, off.stats().memo_entries), (2, 0));
}

#[test]
fn concurrent_first_loads_deserialize_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    poll_ready(PackCache::new(dir.path()).save(key(3), engine, &compiled(3))).unwrap();
    let cache = PackCache::new(dir.path());
    let rt = runtime();
    let modules: Vec<Module> = rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                let engine = engine.clone();
                tokio::spawn(async move { cache.load(key(3), &engine).await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    });
    assert!(modules.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn a_corrupt_entry_is_a_miss_and_save_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    poll_ready(save_numbered(&cache, 4, engine));
    let path = cache.pack_path(engine).unwrap();
    let offset = Pack::open_any(&path)
        .unwrap()
        .iter()
        .unwrap()
        .next()
        .unwrap()
        .offset();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"\xde\xad", offset + 200).unwrap();

    let fresh = PackCache::new(dir.path());
    assert!(poll_ready(misses(&fresh, 4, engine)));
    assert_eq!(fresh.stats().stale, 1);
    // It stays a miss (no poisoning), and a save repairs it.
    assert!(poll_ready(misses(&fresh, 4, engine)));
    poll_ready(save_numbered(&fresh, 4, engine));
    let again = PackCache::new(dir.path());
    assert_eq!(poll_ready(loaded_answer(&again, 4, engine)), 4);
}

#[test]
fn a_pack_of_another_identity_is_moved_aside_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    let path = cache.pack_path(engine).unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    Pack::create(&path, &PackIdentity::new().with("engine", "someone-else")).unwrap();
    assert!(poll_ready(misses(&cache, 5, engine)));
    assert_eq!(cache.stats().stale, 1);
    poll_ready(save_numbered(&cache, 5, engine));
    assert!(path.with_extension("wpk.corrupt").exists());
    let fresh = PackCache::new(dir.path());
    assert_eq!(poll_ready(loaded_answer(&fresh, 5, engine)), 5);
}

#[test]
fn garbage_at_the_pack_path_is_a_miss_then_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    let path = cache.pack_path(engine).unwrap();
    std::fs::write(&path, b"not a pack at all").unwrap();
    assert!(poll_ready(misses(&cache, 6, engine)));
    poll_ready(save_numbered(&cache, 6, engine));
    let fresh = PackCache::new(dir.path());
    assert_eq!(poll_ready(loaded_answer(&fresh, 6, engine)), 6);
}

#[test]
fn an_engine_lacking_a_pack_s_cpu_features_misses_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cache = PackCache::new(dir.path());
    let host = engine();
    let plain = engine_without_cpu_features();
    assert_ne!(cache.pack_path(host), cache.pack_path(plain));
    poll_ready(save_numbered(&cache, 7, host));

    let reader = PackCache::new(dir.path());
    let (missed, warnings) = warnings_during(|| poll_ready(reader.load(key(7), plain)));
    assert!(missed.unwrap_err().is_not_found());
    let host_pack = cache.pack_path(host).unwrap();
    let shown = host_pack.display().to_string();
    let about: Vec<&String> = warnings.iter().filter(|w| w.contains(&shown)).collect();
    assert_eq!(about.len(), 1, "{warnings:?}");
    assert!(
        about[0].contains("needs CPU features this engine lacks: "),
        "{about:?}"
    );
    let missing = EngineIdentity::of(host).cpu_features().to_string();
    assert!(about[0].contains(&missing), "{about:?} names {missing}");
    assert_eq!(reader.stats().unusable_packs, 1);

    // Once per pack: later misses stay quiet.
    let (again, warnings) = warnings_during(|| poll_ready(reader.load(key(8), plain)));
    assert!(again.unwrap_err().is_not_found());
    assert!(warnings.iter().all(|w| !w.contains(&shown)), "{warnings:?}");
    assert_eq!(reader.stats().unusable_packs, 1);
    assert!(!poll_ready(reader.contains(key(7), plain)).unwrap());
    assert_eq!(reader.pack_paths(plain), [reader.pack_path(plain).unwrap()]);
}

// x86_64 only: the CPU levels below a host are named for x86_64 alone (every aarch64
// host is `armv8-a`).
#[cfg(target_arch = "x86_64")]
#[test]
fn a_pack_of_a_lower_cpu_level_loads_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let Some(baseline) = baseline_engine() else {
        return missing("cpu", "no CPU level below this host's to compile for");
    };
    let host = engine();
    let built = compiled_by(baseline, 30);
    poll_ready(PackCache::new(dir.path()).save(key(30), baseline, &built)).unwrap();

    let cache = PackCache::new(dir.path());
    let baseline_pack = cache.pack_path(baseline).unwrap();
    assert_eq!(
        cache.pack_paths(host),
        [cache.pack_path(host).unwrap(), baseline_pack]
    );
    let loaded = poll_ready(cache.load(key(30), host)).unwrap();
    assert_eq!(answer(&loaded, host), 30);
    // The baseline artifact, deserialized: nothing was compiled or saved.
    assert_eq!(loaded.serialize().unwrap(), built.serialize().unwrap());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.saves), (1, 0, 0));
    assert!(!cache.pack_path(host).unwrap().exists());
    assert!(poll_ready(cache.contains(key(30), host)).unwrap());
}

#[test]
fn shipped_packs_are_read_first_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let host = engine();
    let shipped = dir.path().join("shipped.wpk");
    let identity = EngineIdentity::of(host).to_pack_identity();
    let pack = Pack::create(&shipped, &identity).unwrap();
    pack.insert(&key_of(&key(31)), &compiled(31).serialize().unwrap())
        .unwrap();
    let before = std::fs::read(&shipped).unwrap();

    let local = dir.path().join("local");
    let cache = PackCache::builder(&local).shipped_pack(&shipped).build();
    assert_eq!(
        cache.pack_paths(host),
        [shipped.clone(), cache.pack_path(host).unwrap()]
    );
    let hit = poll_ready(cache.load(key(31), host)).unwrap();
    assert_eq!(answer(&hit, host), 31);
    // A module the shipment lacks is compiled and saved locally, not into the shipped pack.
    let miss = poll_ready(cache.load(key(32), host)).unwrap_err();
    assert!(miss.is_not_found());
    poll_ready(save_numbered(&cache, 32, host));
    assert!(cache.pack_path(host).unwrap().exists());
    cache.compact().unwrap();
    drop(cache);
    let after = std::fs::read(&shipped).unwrap();
    assert!(after == before, "the shipped pack is unchanged");
    assert!(!dir.path().join("shipped.wpk.recency").exists());

    let fresh = PackCache::builder(&local).shipped_pack(&shipped).build();
    for n in [31, 32] {
        let loaded = poll_ready(fresh.load(key(n), host)).unwrap();
        assert_eq!(answer(&loaded, host), n as i32);
    }
    assert_eq!(fresh.stats().hits, 2);
}

#[test]
fn a_cache_of_shipped_packs_only_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = engine();
    let cache = PackCacheBuilder::new()
        .shipped_pack(dir.path().join("missing.wpk"))
        .build();
    assert_eq!(cache.pack_path(host), None);
    let (missed, warnings) = warnings_during(|| poll_ready(cache.load(key(33), host)));
    assert!(missed.unwrap_err().is_not_found());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("missing.wpk") && w.contains("does not exist")),
        "{warnings:?}"
    );
    poll_ready(save_numbered(&cache, 33, host));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(cache.stats().saves, 0);
}

// x86_64 only: the CPU levels below a host are named for x86_64 alone (every aarch64
// host is `armv8-a`).
#[cfg(target_arch = "x86_64")]
#[test]
fn shipped_directories_serve_the_most_specific_pack_first() {
    let dir = tempfile::tempdir().unwrap();
    let host = engine();
    let Some(baseline) = baseline_engine() else {
        return missing("cpu", "no CPU level below this host's to compile for");
    };
    let ships = dir.path().join("ship");
    std::fs::create_dir_all(&ships).unwrap();
    // Two CPU levels of one module, and a pack this host cannot load.
    for engine in [host, baseline] {
        let identity = EngineIdentity::of(engine);
        let path = ships.join(identity.pack_file_name());
        Pack::create(&path, &identity.to_pack_identity())
            .unwrap()
            .insert(
                &key_of(&key(34)),
                &compiled_by(engine, 34).serialize().unwrap(),
            )
            .unwrap();
    }
    let beyond = EngineIdentity::of(host).with_cpu_features(&["neon".into(), "sse2".into()]);
    let beyond_path = ships.join(beyond.pack_file_name());
    Pack::create(&beyond_path, &beyond.to_pack_identity()).unwrap();

    let cache = PackCacheBuilder::new().shipped_dir(&ships).build();
    assert_eq!(
        cache.pack_paths(host),
        [
            ships.join(EngineIdentity::of(host).pack_file_name()),
            ships.join(EngineIdentity::of(baseline).pack_file_name()),
        ]
    );
    let loaded = poll_ready(cache.load(key(34), host)).unwrap();
    assert_eq!(
        loaded.serialize().unwrap(),
        compiled_by(host, 34).serialize().unwrap(),
        "the host's own level, not the baseline"
    );
    let (_, warnings) = warnings_during(|| poll_ready(cache.load(key(35), host)));
    let beyond_shown = beyond_path.display().to_string();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&beyond_shown) && w.contains("neon")),
        "{warnings:?}"
    );
}

#[test]
fn save_replaces_an_intact_entry_wasmer_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    let path = cache.pack_path(engine).unwrap();
    let identity = EngineIdentity::of(engine).to_pack_identity();
    // Checksum intact, artifact refused: what a pack from a broken build would hold.
    Pack::create(&path, &identity)
        .unwrap()
        .insert(&key_of(&key(36)), b"not an artifact")
        .unwrap();
    let miss = poll_ready(cache.load(key(36), engine)).unwrap_err();
    assert!(miss.is_not_found());
    assert_eq!(cache.stats().stale, 1);
    poll_ready(save_numbered(&cache, 36, engine));
    assert_eq!(cache.stats().saves, 1, "the refused entry is replaced");
    let fresh = PackCache::new(dir.path());
    let loaded = poll_ready(fresh.load(key(36), engine)).unwrap();
    assert_eq!(answer(&loaded, engine), 36);
    // Saving the same module again writes nothing, even compiled anew (another process
    // racing to save it): compilation is deterministic, so the bytes are equal.
    let recompiled = Module::new(engine, wat_module(36)).unwrap();
    poll_ready(fresh.save(key(36), engine, &recompiled)).unwrap();
    assert_eq!(fresh.stats().saves, 0);
}

#[test]
fn recency_reaches_the_sidecar_on_flush_and_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    poll_ready(PackCache::new(dir.path()).save(key(37), engine, &compiled(37))).unwrap();
    let path = PackCache::new(dir.path()).pack_path(engine).unwrap();
    let stamp_of = |n| {
        crate::pack::recency::read_sidecar(&path)
            .get(&key_of(&key(n)))
            .copied()
    };
    // The save's stamp arrived when that cache was dropped.
    let saved = stamp_of(37).expect("a dropped cache flushes");

    std::thread::sleep(std::time::Duration::from_millis(5));
    let cache = PackCache::new(dir.path());
    poll_ready(cache.load(key(37), engine)).unwrap();
    assert_eq!(
        stamp_of(37),
        Some(saved),
        "loads never write to disk themselves"
    );
    cache.flush().unwrap();
    let loaded = stamp_of(37).unwrap();
    assert!(loaded > saved, "{loaded} > {saved}");

    std::thread::sleep(std::time::Duration::from_millis(5));
    let short_lived = PackCache::new(dir.path());
    poll_ready(short_lived.load(key(37), engine)).unwrap();
    drop(short_lived);
    assert!(stamp_of(37).unwrap() > loaded, "a dropped cache flushes");
}

#[test]
fn an_unwritable_directory_fails_saves_clearly_and_loads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    poll_ready(PackCache::new(dir.path()).save(key(8), engine, &compiled(8))).unwrap();
    // A cache whose directory is a file: nothing can be created under it.
    let blocked = dir.path().join("a-file");
    std::fs::write(&blocked, b"").unwrap();
    let broken = PackCache::new(blocked.join("cache"));
    let err = poll_ready(broken.save(key(8), engine, &compiled(8))).unwrap_err();
    assert!(matches!(err, CacheError::FileWrite { .. }), "{err}");
    assert!(err.to_string().contains("a-file"), "{err}");
    let good = PackCache::new(dir.path());
    assert_eq!(poll_ready(loaded_answer(&good, 8, engine)), 8);
}

#[test]
fn works_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let rt = runtime();
    rt.block_on(async {
        let cache = PackCache::new(dir.path());
        save_numbered(&cache, 9, engine).await;
        let fresh = PackCache::new(dir.path());
        assert_eq!(loaded_answer(&fresh, 9, engine).await, 9);
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    current.block_on(async {
        let fresh = PackCache::new(dir.path());
        assert_eq!(loaded_answer(&fresh, 9, engine).await, 9);
    });
}

#[test]
fn background_compaction_evicts_beyond_the_soft_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::builder(dir.path())
        .max_entries(3)
        .compact_min_dead_bytes(0)
        .build();
    for n in 20..26 {
        poll_ready(save_numbered(&cache, n, engine));
        // Recently loaded: key 20 must survive eviction.
        poll_ready(cache.load(key(20), engine)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Only saves start compactions here, on the background thread: the test never compacts.
    // A save that finds one running starts none, so the wait saves again (a module the pack
    // holds already: nothing is written, but the save looks at the limits once more).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pack_len = || {
        Pack::open_any(cache.pack_path(engine).unwrap())
            .unwrap()
            .len()
            .unwrap()
    };
    // The compaction replaces the pack first and prunes the sidecar after: wait for both.
    let sidecar_len =
        || crate::pack::recency::read_sidecar(&cache.pack_path(engine).unwrap()).len();
    while pack_len() > 3 || sidecar_len() > 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background compaction brought the pack down to 3 modules and the sidecar to 4 \
             stamps: {} and {}",
            pack_len(),
            sidecar_len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        poll_ready(save_numbered(&cache, 25, engine));
    }
    let stats = cache.stats();
    assert!(stats.compactions > 0, "{stats:?}");
    assert_eq!(stats.saves, 6, "the waiting saves wrote nothing");
    let pack = Pack::open_any(cache.pack_path(engine).unwrap()).unwrap();
    assert!(
        pack.contains(&key_of(&key(20))).unwrap(),
        "the recently used module survives"
    );
    assert!(sidecar_len() <= 4);
}

/// A module whose artifact is larger than [`INLINE_LOAD_BYTES`], saved in a pack in `dir`.
fn large_module_in(dir: &std::path::Path) -> (ModuleHash, Module) {
    static LARGE: std::sync::OnceLock<(ModuleHash, Module)> = std::sync::OnceLock::new();
    let (key, module) = LARGE
        .get_or_init(|| {
            let wat = wasmpak_samples::module_wat(7, 80, 250);
            let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
            let module = Module::new(engine(), &wasm).unwrap();
            (ModuleHash::new(&wasm), module)
        })
        .clone();
    let len = module.serialize().unwrap().len() as u64;
    assert!(len >= INLINE_LOAD_BYTES, "{len} bytes");
    poll_ready(PackCache::new(dir).save(key, engine(), &module)).unwrap();
    (key, module)
}

/// Runs `load` and a task that counts how often it gets to run until `load` is done, on one
/// current-thread runtime: a load that blocks the thread leaves the counter at zero.
fn turns_of_another_task_during<T>(load: impl std::future::Future<Output = T>) -> (T, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let turns = AtomicU64::new(0);
    let result = runtime.block_on(async {
        let load = async {
            let result = load.await;
            done.store(true, Ordering::SeqCst);
            result
        };
        let other = async {
            while !done.load(Ordering::SeqCst) {
                turns.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        };
        // `join!` polls the load first: if it completes on that poll, the counter stays 0.
        tokio::join!(load, other).0
    });
    (result, turns.load(Ordering::Relaxed))
}

#[test]
fn a_large_first_load_leaves_the_executor_free() {
    let dir = tempfile::tempdir().unwrap();
    let (key, module) = large_module_in(dir.path());
    let engine = engine();
    // The pack is not open yet: opening it is file system work too.
    let cache = PackCache::new(dir.path());
    let (loaded, turns) = turns_of_another_task_during(cache.load(key, engine));
    assert_eq!(
        loaded.unwrap().serialize().unwrap(),
        module.serialize().unwrap()
    );
    assert!(turns > 0, "the executor was blocked for the whole load");

    // The pack open, the memo off: the checksum and deserialization alone move too.
    let cache = PackCache::builder(dir.path()).memo_entries(0).build();
    poll_ready(cache.contains(key, engine)).unwrap();
    let (loaded, turns) = turns_of_another_task_during(cache.load(key, engine));
    loaded.unwrap();
    assert!(turns > 0, "the executor was blocked for the whole load");
}

#[test]
fn a_small_first_load_stays_on_the_executor_even_when_it_opens_the_pack() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    poll_ready(PackCache::new(dir.path()).save(key(40), engine, &compiled(40))).unwrap();
    poll_ready(PackCache::new(dir.path()).save(key(41), engine, &compiled(41))).unwrap();
    let cache = PackCache::new(dir.path());
    let runtime = runtime();
    // Inside the runtime, the first load opens the pack and loads on its first poll: a few
    // system calls, no trip to the blocking pool (whose first thread would take longer).
    let _inside = runtime.enter();
    let loaded = poll_ready(cache.load(key(40), engine)).unwrap();
    assert_eq!(answer(&loaded, engine), 40);
    let loaded = poll_ready(cache.load(key(41), engine)).unwrap();
    assert_eq!(answer(&loaded, engine), 41);
    assert!(poll_ready(PackCache::new(dir.path()).contains(key(40), engine)).unwrap());
}

/// Two bytes of `key`'s entry in the pack in `dir` overwritten, at `at` of its length.
fn damage(dir: &std::path::Path, key: ModuleHash, at: f64) {
    let path = PackCache::new(dir).pack_path(engine()).unwrap();
    let entry = Pack::open_any(&path)
        .unwrap()
        .iter()
        .unwrap()
        .find(|entry| *entry.key() == key_of(&key))
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let offset = entry.offset() + (entry.size() as f64 * at) as u64;
    file.write_all_at(b"\xde\xad", offset).unwrap();
}

#[test]
fn a_damaged_large_entry_is_a_miss_wherever_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = large_module_in(dir.path());
    damage(dir.path(), key, 0.9);
    let engine = engine();
    let runtime = runtime();
    // In place, from `block_on` and from a worker, and through the blocking pool.
    let from_block_on = PackCache::new(dir.path());
    assert!(
        runtime
            .block_on(from_block_on.load(key, engine))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(from_block_on.stats().stale, 1);
    let from_worker = PackCache::new(dir.path());
    let cache = from_worker.clone();
    let engine_copy = engine.clone();
    let missed = runtime
        .block_on(runtime.spawn(async move { cache.load(key, &engine_copy).await }))
        .unwrap();
    assert!(missed.unwrap_err().is_not_found());
    assert_eq!(from_worker.stats().stale, 1);
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pooled = PackCache::new(dir.path());
    assert!(
        current_thread
            .block_on(pooled.load(key, engine))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(pooled.stats().stale, 1);
}

#[test]
fn loads_after_the_pages_were_given_back_see_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, module) = large_module_in(dir.path());
    let engine = engine();
    let expected = module.serialize().unwrap();
    // Memo off and every load checked: each load reads the entry again, after the last one
    // gave its pages back.
    let cache = PackCache::builder(dir.path())
        .memo_entries(0)
        .verify_every_load(true)
        .build();
    let runtime = runtime();
    for _ in 0..3 {
        let loaded = runtime.block_on(cache.load(key, engine)).unwrap();
        // wasmer reads the archive again to serialize it: through the released pages.
        assert_eq!(loaded.serialize().unwrap(), expected);
        let mut store = wasmer::Store::new(engine.clone());
        wasmer::Instance::new(&mut store, &loaded, &wasmer::imports! {}).unwrap();
    }
    assert_eq!(cache.stats().hits, 3);
    assert_eq!(cache.stats().stale, 0);
}

// x86_64 only: the CPU levels below a host are named for x86_64 alone (every aarch64
// host is `armv8-a`).
#[cfg(target_arch = "x86_64")]
#[test]
fn a_missing_own_pack_does_not_send_every_load_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let Some(baseline) = baseline_engine() else {
        return missing("cpu", "no CPU level below this host's to compile for");
    };
    let host = engine();
    let writer = PackCache::new(dir.path());
    for n in [43, 44] {
        poll_ready(writer.save(key(n), baseline, &compiled_by(baseline, n))).unwrap();
    }
    let cache = PackCache::new(dir.path());
    let runtime = runtime();
    // The first load finds no pack of the host's own level and lists the directory.
    runtime.block_on(cache.load(key(43), host)).unwrap();
    // The next, inside the runtime, finishes on its first poll from the baseline pack.
    let _inside = runtime.enter();
    let loaded = poll_ready(cache.load(key(44), host)).unwrap();
    assert_eq!(answer(&loaded, host), 44);
    assert!(!cache.pack_path(host).unwrap().exists());
}

#[test]
fn a_damaged_shipped_pack_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = engine();
    let garbage = dir.path().join("modules.wpk");
    std::fs::write(&garbage, b"not a pack at all").unwrap();
    let ships = dir.path().join("ship");
    std::fs::create_dir(&ships).unwrap();
    let named = ships.join(EngineIdentity::of(host).pack_file_name());
    std::fs::write(&named, vec![0u8; 20_000]).unwrap();
    let cache = PackCacheBuilder::new()
        .shipped_pack(&garbage)
        .shipped_dir(&ships)
        .build();

    let (missed, warnings) = warnings_during(|| poll_ready(cache.load(key(50), host)));
    assert!(missed.unwrap_err().is_not_found());
    for path in [&garbage, &named] {
        let shown = path.display().to_string();
        assert!(
            warnings.iter().any(|w| w.contains(&shown)),
            "{shown} in {warnings:?}"
        );
    }
    let (missed, warnings) = warnings_during(|| poll_ready(cache.load(key(51), host)));
    assert!(missed.unwrap_err().is_not_found());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_pack_another_handle_creates_is_seen_at_once() {
    // The own pack was absent a moment ago; another process (here a second handle) saves
    // and so creates it: the next load must find the module, not trust the absence.
    let dir = tempfile::tempdir().unwrap();
    let host = engine();
    let reader = PackCache::new(dir.path());
    let writer = PackCache::new(dir.path());
    assert!(poll_ready(misses(&reader, 61, host)));
    poll_ready(writer.save(key(61), host, &compiled_by(host, 61))).unwrap();
    let loaded = poll_ready(reader.load(key(61), host)).unwrap();
    assert_eq!(answer(&loaded, host), 61);
    assert!(poll_ready(reader.contains(key(61), host)).unwrap());
}

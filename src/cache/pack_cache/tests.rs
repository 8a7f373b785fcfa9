use std::os::unix::fs::FileExt;

use super::*;
use crate::cache::test_support::{
    answer, compiled, engine, engine_without_cpu_features, key, poll_ready,
};
use crate::{Pack, PackIdentity};

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
    assert!(
        poll_ready(cache.load(key(1), engine))
            .unwrap_err()
            .is_not_found()
    );
    assert!(!poll_ready(cache.contains(key(1), engine)).unwrap());
    poll_ready(cache.save(key(1), engine, &compiled(1))).unwrap();
    assert!(cache.pack_path(engine).exists());

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
        poll_ready(cache.save(key(n), engine, &compiled(n))).unwrap();
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
    poll_ready(cache.save(key(4), engine, &compiled(4))).unwrap();
    let path = cache.pack_path(engine);
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
    assert!(
        poll_ready(fresh.load(key(4), engine))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(fresh.stats().stale, 1);
    // It stays a miss (no poisoning), and a save repairs it.
    assert!(
        poll_ready(fresh.load(key(4), engine))
            .unwrap_err()
            .is_not_found()
    );
    poll_ready(fresh.save(key(4), engine, &compiled(4))).unwrap();
    let again = PackCache::new(dir.path());
    assert_eq!(
        answer(&poll_ready(again.load(key(4), engine)).unwrap(), engine),
        4
    );
}

#[test]
fn a_pack_of_another_identity_is_moved_aside_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    let path = cache.pack_path(engine);
    std::fs::create_dir_all(dir.path()).unwrap();
    Pack::create(&path, &PackIdentity::new().with("engine", "someone-else")).unwrap();
    assert!(
        poll_ready(cache.load(key(5), engine))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(cache.stats().stale, 1);
    poll_ready(cache.save(key(5), engine, &compiled(5))).unwrap();
    assert!(path.with_extension("wpk.corrupt").exists());
    let fresh = PackCache::new(dir.path());
    assert_eq!(
        answer(&poll_ready(fresh.load(key(5), engine)).unwrap(), engine),
        5
    );
}

#[test]
fn garbage_at_the_pack_path_is_a_miss_then_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let cache = PackCache::new(dir.path());
    let path = cache.pack_path(engine);
    std::fs::write(&path, b"not a pack at all").unwrap();
    assert!(
        poll_ready(cache.load(key(6), engine))
            .unwrap_err()
            .is_not_found()
    );
    poll_ready(cache.save(key(6), engine, &compiled(6))).unwrap();
    let fresh = PackCache::new(dir.path());
    assert_eq!(
        answer(&poll_ready(fresh.load(key(6), engine)).unwrap(), engine),
        6
    );
}

#[test]
fn engines_with_other_cpu_features_use_their_own_pack() {
    let dir = tempfile::tempdir().unwrap();
    let cache = PackCache::new(dir.path());
    let host = engine();
    let plain = engine_without_cpu_features();
    assert_ne!(cache.pack_path(host), cache.pack_path(plain));
    poll_ready(cache.save(key(7), host, &compiled(7))).unwrap();
    assert!(
        poll_ready(cache.load(key(7), plain))
            .unwrap_err()
            .is_not_found()
    );
    assert!(!poll_ready(cache.contains(key(7), plain)).unwrap());
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
    assert_eq!(
        answer(&poll_ready(good.load(key(8), engine)).unwrap(), engine),
        8
    );
}

#[test]
fn works_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let rt = runtime();
    rt.block_on(async {
        let cache = PackCache::new(dir.path());
        cache.save(key(9), engine, &compiled(9)).await.unwrap();
        let fresh = PackCache::new(dir.path());
        assert_eq!(
            answer(&fresh.load(key(9), engine).await.unwrap(), engine),
            9
        );
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    current.block_on(async {
        let fresh = PackCache::new(dir.path());
        assert_eq!(
            answer(&fresh.load(key(9), engine).await.unwrap(), engine),
            9
        );
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
        poll_ready(cache.save(key(n), engine, &compiled(n))).unwrap();
        // Recently loaded: key 20 must survive eviction.
        poll_ready(cache.load(key(20), engine)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Wait for the background thread to finish its last compaction.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pack_len = || {
        Pack::open_any(cache.pack_path(engine))
            .unwrap()
            .len()
            .unwrap()
    };
    while pack_len() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.compact().unwrap();
    }
    assert!(cache.stats().compactions > 0);
    let pack = Pack::open_any(cache.pack_path(engine)).unwrap();
    assert!(
        pack.contains(&key_of(&key(20))).unwrap(),
        "the recently used module survives"
    );
    assert!(crate::pack::recency::read_sidecar(&cache.pack_path(engine)).len() <= 4);
}

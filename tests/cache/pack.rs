//! `PackCache` across processes, under concurrency, over damaged packs, and in a fallback chain.

use std::sync::Arc;

use crate::common::modules::{assert_same_module, engine, pool};
use crate::common::{assert_passed, child, env_path, missing, on_read_only_fs, played};
use wasmpak::{CacheError, FileSystemCache, ModuleCache, PackCache, SharedCache};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap()
}

#[test]
fn modules_saved_by_another_process_load_here() {
    if played(&[("saver", saves_the_pool)]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = child("saver")
        .env("WASMPAK_TEST_DIR", dir.path())
        .output()
        .unwrap();
    assert_passed(&output, "saver");
    let cache = PackCache::new(dir.path());
    runtime().block_on(async {
        for module in pool() {
            let loaded = cache.load(module.key, engine()).await.unwrap();
            assert_same_module(&loaded, module);
        }
    });
    assert_eq!(cache.stats().hits, pool().len() as u64);
}

fn saves_the_pool() {
    let dir = env_path("WASMPAK_TEST_DIR");
    let cache = PackCache::new(dir);
    runtime().block_on(async {
        for module in pool() {
            cache
                .save(module.key, engine(), &module.module)
                .await
                .unwrap();
        }
    });
}

#[test]
fn many_tasks_and_threads_load_and_save_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(PackCache::new(dir.path()));
    let rt = runtime();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..32usize {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..4 {
                    let module = &pool()[(t + round) % pool().len()];
                    match cache.load(module.key, engine()).await {
                        Ok(loaded) => assert_same_module(&loaded, module),
                        Err(e) => {
                            assert!(e.is_not_found(), "{e}");
                            cache
                                .save(module.key, engine(), &module.module)
                                .await
                                .unwrap();
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    // Plain threads on a second cache over the same directory, no runtime at all.
    let other = PackCache::new(dir.path());
    std::thread::scope(|s| {
        for t in 0..4usize {
            let other = other.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for module in pool().iter().skip(t) {
                    let loaded = rt.block_on(other.load(module.key, engine())).unwrap();
                    assert_same_module(&loaded, module);
                }
            });
        }
    });
    // Each module was deserialized at most once per cache, however many loaded it at once.
    assert!(other.stats().hits <= pool().len() as u64);
}

#[test]
fn a_truncated_pack_is_a_miss_and_is_replaced_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let module = &pool()[2];
    let cache = PackCache::new(dir.path());
    let rt = runtime();
    rt.block_on(cache.save(module.key, engine(), &module.module))
        .unwrap();
    let path = cache.pack_path(engine()).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let fresh = PackCache::new(dir.path());
    let err = rt.block_on(fresh.load(module.key, engine())).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(fresh.stats().stale, 1);
    rt.block_on(fresh.save(module.key, engine(), &module.module))
        .unwrap();
    let again = PackCache::new(dir.path());
    assert_same_module(
        &rt.block_on(again.load(module.key, engine())).unwrap(),
        module,
    );
}

/// Media damage to the newest commit (docs/FORMAT.md, section 4.4): one flipped byte in the
/// newest index root of a pack built by three saves costs that save's module alone. The two
/// older modules load from the pack (hits, nothing compiled), nothing is set aside, and the
/// next save repairs the pack.
#[test]
fn a_damaged_newest_index_root_costs_only_the_module_it_committed() {
    use wasmpak::format::record::RecordHeader;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let modules = &pool()[..3];
    let cache = PackCache::builder(dir.path()).auto_compact(false).build();
    for module in modules {
        rt.block_on(cache.save(module.key, engine(), &module.module))
            .unwrap();
    }
    let path = cache.pack_path(engine()).unwrap();
    drop(cache);
    let root = crate::common::raw::live(&path).root_offset;
    let bytes = std::fs::read(&path).unwrap();
    let (header, _) = RecordHeader::decode(&bytes[root as usize..]).unwrap();
    crate::common::flip(&path, header.payload_offset(root).unwrap() + 5, 0x04);

    let fresh = PackCache::builder(dir.path()).auto_compact(false).build();
    for module in &modules[..2] {
        assert_same_module(
            &rt.block_on(fresh.load(module.key, engine())).unwrap(),
            module,
        );
    }
    let err = rt
        .block_on(fresh.load(modules[2].key, engine()))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let stats = fresh.stats();
    assert_eq!((stats.hits, stats.misses, stats.stale), (2, 1, 0));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".corrupt")),
        "nothing set aside: {names:?}"
    );
    // The next save repairs the pack and lands; every module loads in a fresh process.
    rt.block_on(fresh.save(modules[2].key, engine(), &modules[2].module))
        .unwrap();
    let again = PackCache::new(dir.path());
    for module in modules {
        assert_same_module(
            &rt.block_on(again.load(module.key, engine())).unwrap(),
            module,
        );
    }
    assert_eq!(again.stats().hits, 3);
    let pack = wasmpak::Pack::open_any(&path).unwrap();
    assert_eq!(pack.lost_commit().unwrap(), None);
    assert!(pack.verify().unwrap().is_ok());
}

#[test]
fn memory_in_front_of_a_pack() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b) = (&pool()[0], &pool()[1]);
    rt.block_on(async {
        PackCache::new(dir.path())
            .save(a.key, engine(), &a.module)
            .await
            .unwrap();
        let tiered = SharedCache::default().with_fallback(PackCache::new(dir.path()));
        // Hit in the fallback, promoted into memory.
        assert_same_module(&tiered.load(a.key, engine()).await.unwrap(), a);
        assert_eq!(tiered.primary().len(), 1);
        assert_eq!(tiered.fallback().stats().hits, 1);
        // Hit in the primary: the pack is not asked again.
        assert_same_module(&tiered.load(a.key, engine()).await.unwrap(), a);
        assert_eq!(
            tiered.fallback().stats().hits + tiered.fallback().stats().memo_hits,
            1
        );
        // Miss everywhere.
        assert!(
            tiered
                .load(b.key, engine())
                .await
                .unwrap_err()
                .is_not_found()
        );
        // Save reaches both tiers.
        tiered.save(b.key, engine(), &b.module).await.unwrap();
        assert!(
            PackCache::new(dir.path())
                .contains(b.key, engine())
                .await
                .unwrap()
        );
    });
}

#[test]
fn a_broken_tier_does_not_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, b"").unwrap();
    let rt = runtime();
    let a = &pool()[3];
    rt.block_on(async {
        // A pack cache that cannot create anything, in front of a working file cache.
        let chain = PackCache::new(blocked.join("packs"))
            .with_fallback(FileSystemCache::new(dir.path().join("fs")));
        let err = chain.save(a.key, engine(), &a.module).await.unwrap_err();
        assert!(matches!(err, CacheError::FileWrite { .. }), "{err}");
        // The fallback still got the module and serves it.
        assert_same_module(&chain.load(a.key, engine()).await.unwrap(), a);
    });
}

#[test]
fn trait_objects_work() {
    let dir = tempfile::tempdir().unwrap();
    let a = &pool()[5];
    let boxed: Box<dyn ModuleCache + Send + Sync> = Box::new(PackCache::new(dir.path()));
    let shared: Arc<dyn ModuleCache + Send + Sync> = Arc::new(PackCache::new(dir.path()));
    let rt = runtime();
    rt.block_on(async {
        boxed.save(a.key, engine(), &a.module).await.unwrap();
        assert_same_module(&shared.load(a.key, engine()).await.unwrap(), a);
    });
}

/// A shipped pack on a read-only file system (a private mount namespace with a read-only
/// tmpfs, Linux only): loads come from it, the save of a module it lacks goes to the cache's own
/// directory, and nothing tries to write beside it.
#[cfg(target_os = "linux")]
#[test]
fn shipped_packs_load_from_a_read_only_file_system() {
    if played(&[("loader", loads_a_read_only_shipped_pack)]) {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let writer = PackCache::new(build.path());
    let rt = runtime();
    for module in &pool()[1..] {
        rt.block_on(writer.save(module.key, engine(), &module.module))
            .unwrap();
    }
    let shipped = writer.pack_path(engine()).unwrap();
    let mount = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let mut role = child("loader");
    role.env("WASMPAK_TEST_PACK", mount.path().join("app.wpk"))
        .env("WASMPAK_TEST_DIR", local.path());
    let mut command = match on_read_only_fs(&role, mount.path(), &shipped, "app.wpk") {
        Ok(command) => command,
        Err(why) => return missing("namespaces", why),
    };
    assert_passed(&command.output().unwrap(), "loader");
}

#[cfg(target_os = "linux")]
fn loads_a_read_only_shipped_pack() {
    let shipped = env_path("WASMPAK_TEST_PACK");
    let local = env_path("WASMPAK_TEST_DIR");
    assert!(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&shipped)
            .is_err(),
        "the shipped pack must be on a read-only file system"
    );
    let cache = PackCache::builder(&local).shipped_pack(&shipped).build();
    let rt = runtime();
    rt.block_on(async {
        for module in &pool()[1..] {
            let loaded = cache.load(module.key, engine()).await.unwrap();
            assert_same_module(&loaded, module);
        }
        let lacking = &pool()[0];
        let miss = cache.load(lacking.key, engine()).await.unwrap_err();
        assert!(miss.is_not_found(), "{miss}");
        cache
            .save(lacking.key, engine(), &lacking.module)
            .await
            .unwrap();
    });
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.saves), (pool().len() as u64 - 1, 1));
    assert!(cache.pack_path(engine()).unwrap().is_file());
    cache.compact().unwrap();
    cache.flush().unwrap();
    let fresh = PackCache::builder(&local).shipped_pack(&shipped).build();
    let loaded = rt.block_on(fresh.load(pool()[0].key, engine())).unwrap();
    assert_same_module(&loaded, &pool()[0]);
}

/// Found in review: the recency sidecar was created `0o666` less the umask, so group-writable
/// under umask 002, unlike every other file the library writes. One mode rule for all of them.
#[test]
fn no_file_a_cache_writes_is_group_writable_under_umask_002() {
    use std::os::unix::fs::PermissionsExt;
    if played(&[("umask-002", saves_and_flushes_under_umask_002)]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = child("umask-002")
        .env("WASMPAK_TEST_DIR", dir.path())
        .output()
        .unwrap();
    assert_passed(&output, "umask-002");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(mode & 0o022, 0, "{name} has mode {mode:o}");
        names.push(name);
    }
    assert!(
        names.iter().any(|n| n.ends_with(".wpk")) && names.iter().any(|n| n.ends_with(".recency")),
        "{names:?}"
    );
}

fn saves_and_flushes_under_umask_002() {
    // The umask is per process: this child's alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o002));
    let dir = env_path("WASMPAK_TEST_DIR");
    let module = &pool()[0];
    runtime().block_on(async {
        PackCache::new(&dir)
            .save(module.key, engine(), &module.module)
            .await
            .unwrap();
        // Another cache (no memo of the module) loads it from the pack and stamps its use.
        let reader = PackCache::new(&dir);
        reader.load(module.key, engine()).await.unwrap();
        reader.flush().unwrap();
    });
}

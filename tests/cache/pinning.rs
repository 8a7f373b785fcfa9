//! How long a compacted-away pack stays mapped: wasmer 7.4 engines keep the buffer of every
//! artifact they deserialized for their whole lifetime, so a process pins each old pack file
//! it loaded from until it drops those engines.
//!
//! Linux only: the mappings are read from `/proc/self/maps`.

use crate::common::modules::pool;
use wasmer::Engine;
use wasmpak::{ModuleCache, PackCache};

/// Distinct deleted (compacted-away) files whose path contains `needle` still mapped here.
fn deleted_mappings(needle: &str) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|line| line.contains(needle) && line.ends_with("(deleted)"))
        .filter_map(|line| line.split_whitespace().nth(4)) // the inode
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// [`deleted_mappings`] once it settles at `expected`, or whatever it is after 10 s. A handle
/// that switches to a compacted file lets go of the old one on a short-lived `wasmpak-retire`
/// thread, so the count is only read while no such thread runs, and read again until it
/// matches: releasing only ever lowers it.
fn settled_mappings(needle: &str, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        while retire_threads_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let count = deleted_mappings(needle);
        if count == expected || std::time::Instant::now() >= deadline {
            return count;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether a thread of this process is releasing a replaced pack file.
fn retire_threads_running() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "wasmpak-retire")
        })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn superseded_packs_stay_mapped_until_the_engine_that_loaded_from_them_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let needle = dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let pool = pool();
    let writer = PackCache::builder(dir.path()).auto_compact(false).build();
    let engine = Engine::default();
    for module in pool {
        block_on(writer.save(module.key, crate::common::modules::engine(), &module.module))
            .unwrap();
    }
    // A long-running reader with its own engine: load, compact, load, compact, ...
    let reader = PackCache::builder(dir.path()).memo_entries(0).build();
    for (round, module) in pool.iter().take(4).enumerate() {
        block_on(reader.load(module.key, &engine)).unwrap();
        writer.compact().unwrap();
        // Every file this engine loaded from and that has since been replaced stays mapped.
        assert_eq!(
            settled_mappings(&needle, round + 1),
            round + 1,
            "round {round}"
        );
    }
    // Dropping modules and caches is not enough: the engine holds the artifacts.
    drop(reader);
    assert_eq!(settled_mappings(&needle, 4), 4);
    drop(engine);
    assert_eq!(
        settled_mappings(&needle, 0),
        0,
        "dropping the engine releases every old pack"
    );
}

//! The headline proof: whatever sequence of saves, loads, reopens, second handles and
//! compactions happens, the module loaded is the module saved.

use std::collections::HashSet;

use crate::common::modules::{assert_same_module, engine, pool};
use proptest::prelude::*;
use wasmpak::{ModuleCache, PackCache};

#[derive(Debug, Clone)]
enum Op {
    Save(usize),
    Load(usize),
    Contains(usize),
    /// A new `PackCache` over the same directory: a new process, as far as the memo knows.
    Reopen,
    /// Switch to the other of two live caches.
    SwitchHandle,
    Compact,
    /// Save from both handles at once.
    ConcurrentSave(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = pool_len();
    prop_oneof![
        4 => (0..n).prop_map(Op::Save),
        6 => (0..n).prop_map(Op::Load),
        2 => (0..n).prop_map(Op::Contains),
        1 => Just(Op::Reopen),
        2 => Just(Op::SwitchHandle),
        1 => Just(Op::Compact),
        1 => (0..n, 0..n).prop_map(|(a, b)| Op::ConcurrentSave(a, b)),
    ]
}

fn pool_len() -> usize {
    8
}

fn open_cache(dir: &std::path::Path) -> PackCache {
    PackCache::builder(dir)
        .durability(wasmpak::Durability::None)
        .build()
}

fn run(ops: Vec<Op>) {
    let engine = engine();
    let pool = pool();
    assert_eq!(pool.len(), pool_len());
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut handles = [open_cache(dir.path()), open_cache(dir.path())];
    let mut active = 0;
    let mut saved: HashSet<usize> = HashSet::new();
    runtime.block_on(async {
        for op in ops {
            let cache = &handles[active];
            match op {
                Op::Save(i) => {
                    cache
                        .save(pool[i].key, engine, &pool[i].module)
                        .await
                        .unwrap();
                    saved.insert(i);
                }
                Op::Load(i) => match cache.load(pool[i].key, engine).await {
                    Ok(module) => {
                        assert!(saved.contains(&i), "loaded a module that was never saved");
                        assert_same_module(&module, &pool[i]);
                    }
                    Err(e) => {
                        assert!(e.is_not_found(), "{e}");
                        assert!(!saved.contains(&i), "a saved module went missing");
                    }
                },
                Op::Contains(i) => {
                    assert_eq!(
                        cache.contains(pool[i].key, engine).await.unwrap(),
                        saved.contains(&i)
                    );
                }
                Op::Reopen => handles[active] = open_cache(dir.path()),
                Op::SwitchHandle => active = 1 - active,
                Op::Compact => {
                    let c = cache.clone();
                    tokio::task::spawn_blocking(move || c.compact().unwrap())
                        .await
                        .unwrap();
                }
                Op::ConcurrentSave(a, b) => {
                    let (x, y) = (handles[0].clone(), handles[1].clone());
                    let (ra, rb) = tokio::join!(
                        x.save(pool[a].key, engine, &pool[a].module),
                        y.save(pool[b].key, engine, &pool[b].module)
                    );
                    ra.unwrap();
                    rb.unwrap();
                    saved.insert(a);
                    saved.insert(b);
                }
            }
        }
        // Finally, a fresh cache sees exactly what was saved.
        let fresh = open_cache(dir.path());
        for (i, module) in pool.iter().enumerate() {
            let loaded = fresh.load(module.key, engine).await;
            assert_eq!(loaded.is_ok(), saved.contains(&i));
            if let Ok(loaded) = loaded {
                assert_same_module(&loaded, module);
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_module_loaded_is_the_module_saved(ops in prop::collection::vec(op(), 1..30)) {
        run(ops);
    }
}

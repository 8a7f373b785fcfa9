//! The store against a model: random sequences of operations on a pack behave exactly like
//! the same operations on a `HashMap`, across handles, reopens, batches and crashed writers.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use support::{identity, key, value};
use wasmpak::{Durability, Key, Pack, PackOptions};

const KEYS: u64 = 8;

#[derive(Debug, Clone)]
enum Op {
    Insert {
        k: u64,
        len: usize,
        seed: u64,
    },
    Remove {
        k: u64,
    },
    Batch {
        writes: Vec<(u64, Option<(usize, u64)>)>,
        commit: bool,
    },
    Reopen,
    SwitchHandle,
    CrashedWriterTail {
        garbage: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let write = (
        0..KEYS,
        prop::option::weighted(0.8, (0usize..3000, any::<u64>())),
    );
    prop_oneof![
        6 => (0..KEYS, 0usize..5000, any::<u64>()).prop_map(|(k, len, seed)| Op::Insert { k, len, seed }),
        2 => (0..KEYS).prop_map(|k| Op::Remove { k }),
        2 => (prop::collection::vec(write, 0..12), prop::bool::weighted(0.8))
            .prop_map(|(writes, commit)| Op::Batch { writes, commit }),
        1 => Just(Op::Reopen),
        1 => Just(Op::SwitchHandle),
        1 => (1usize..5000).prop_map(|garbage| Op::CrashedWriterTail { garbage }),
    ]
}

fn open(path: &Path) -> Pack {
    PackOptions::new()
        .durability(Durability::None)
        .open(path, &identity())
        .unwrap()
}

fn check(pack: &Pack, model: &HashMap<Key, Vec<u8>>) {
    for k in 0..KEYS {
        let got = pack.get(&key(k)).unwrap();
        let want = model.get(&key(k));
        assert!(
            got.as_deref() == want.map(|v| &v[..]),
            "key {k}: read {:?} bytes, the model has {:?} bytes",
            got.map(|v| v.len()),
            want.map(Vec::len)
        );
        assert_eq!(pack.contains(&key(k)).unwrap(), model.contains_key(&key(k)));
    }
    assert_eq!(pack.len().unwrap(), model.len() as u64);
    let stats = pack.stats().unwrap();
    assert_eq!(
        stats.live_bytes,
        model.values().map(|v| v.len() as u64).sum::<u64>()
    );
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.wpk");
    PackOptions::new()
        .durability(Durability::None)
        .create(&path, &identity())
        .unwrap();
    let mut handles = [open(&path), open(&path)];
    let mut active = 0;
    let mut model: HashMap<Key, Vec<u8>> = HashMap::new();
    for op in ops {
        let pack = &handles[active];
        match op {
            Op::Insert { k, len, seed } => {
                pack.insert(&key(k), &value(seed, len)).unwrap();
                model.insert(key(k), value(seed, len));
            }
            Op::Remove { k } => {
                let had = pack.remove(&key(k)).unwrap();
                assert_eq!(had, model.remove(&key(k)).is_some());
            }
            Op::Batch { writes, commit } => {
                let mut staged = model.clone();
                let mut batch = pack.batch();
                for (k, write) in writes {
                    match write {
                        Some((len, seed)) => {
                            batch.insert(&key(k), &value(seed, len)).unwrap();
                            staged.insert(key(k), value(seed, len));
                        }
                        None => {
                            let had = batch.remove(&key(k)).unwrap();
                            assert_eq!(had, staged.remove(&key(k)).is_some());
                        }
                    }
                }
                if commit {
                    batch.commit().unwrap();
                    model = staged;
                }
            }
            Op::Reopen => {
                handles = [open(&path), open(&path)];
            }
            Op::SwitchHandle => active = 1 - active,
            Op::CrashedWriterTail { garbage } => {
                // A writer appended part of a batch and died before committing.
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                file.write_all(&value(garbage as u64, garbage)).unwrap();
            }
        }
        check(&handles[active], &model);
        check(&handles[1 - active], &model);
    }
    let fresh = open(&path);
    check(&fresh, &model);
    assert!(fresh.verify().unwrap().is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pack_behaves_like_a_map(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

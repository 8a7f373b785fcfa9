//! The store against a model: random sequences of operations on a pack behave exactly like
//! the same operations on a `HashMap`, across handles, reopens, batches and crashed writers.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::common::{identity, key, value};
use proptest::prelude::*;
use wasmpak::{Durability, Key, Pack, PackOptions, Retention};

const KEYS: u64 = 8;

#[derive(Debug, Clone)]
enum Op {
    Touch {
        k: u64,
    },
    Compact {
        max_entries: Option<u64>,
        max_bytes: Option<u64>,
    },
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
        2 => (0..KEYS).prop_map(|k| Op::Touch { k }),
        1 => (prop::option::of(0..KEYS), prop::option::of(0..12_000u64))
            .prop_map(|(max_entries, max_bytes)| Op::Compact { max_entries, max_bytes }),
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
    // For retention: the order each key's current value was written in, and use stamps.
    let mut written: HashMap<Key, u64> = HashMap::new();
    let mut sequence = 0u64;
    let mut stamps: HashMap<Key, u64> = HashMap::new();
    let mut clock = 0u64;
    for op in ops {
        let pack = &handles[active];
        match op {
            Op::Insert { k, len, seed } => {
                pack.insert(&key(k), &value(seed, len)).unwrap();
                model.insert(key(k), value(seed, len));
                sequence += 1;
                written.insert(key(k), sequence);
            }
            Op::Remove { k } => {
                let had = pack.remove(&key(k)).unwrap();
                assert_eq!(had, model.remove(&key(k)).is_some());
            }
            Op::Batch { writes, commit } => {
                let mut staged = model.clone();
                let mut staged_written = written.clone();
                let mut batch = pack.batch();
                for (k, write) in writes {
                    match write {
                        Some((len, seed)) => {
                            batch.insert(&key(k), &value(seed, len)).unwrap();
                            staged.insert(key(k), value(seed, len));
                            sequence += 1;
                            staged_written.insert(key(k), sequence);
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
                    written = staged_written;
                }
            }
            Op::Reopen => {
                handles = [open(&path), open(&path)];
            }
            Op::SwitchHandle => active = 1 - active,
            Op::Touch { k } => {
                clock += 1;
                stamps.insert(key(k), clock);
            }
            Op::Compact {
                max_entries,
                max_bytes,
            } => {
                let mut retention = Retention::new();
                if let Some(max) = max_entries {
                    retention = retention.max_entries(max);
                }
                if let Some(max) = max_bytes {
                    retention = retention.max_live_bytes(max);
                }
                for (k, stamp) in &stamps {
                    retention.touch(*k, *stamp);
                }
                let report = pack.compact_with(&retention).unwrap();
                // The oracle, from the model's own history rather than the implementation's
                // sort key: the keys in the order they were last used (never touched first,
                // by when their value was written; then touched ones, by their last touch).
                // What can never fit (a value over the byte limit on its own) goes first; of
                // the rest, LRU eviction keeps the longest tail of that order within both
                // limits.
                let mut untouched: Vec<Key> = model
                    .keys()
                    .filter(|k| !stamps.contains_key(k))
                    .copied()
                    .collect();
                untouched.sort_by_key(|k| written[k]);
                let mut touched: Vec<Key> = model
                    .keys()
                    .filter(|k| stamps.contains_key(k))
                    .copied()
                    .collect();
                touched.sort_by_key(|k| stamps[k]);
                let never_fits = |k: &Key| max_bytes.is_some_and(|max| model[k].len() as u64 > max);
                let (mut evicted, rest): (Vec<Key>, Vec<Key>) = untouched
                    .into_iter()
                    .chain(touched)
                    .partition(|k| never_fits(k));
                let fits = |keys: &[Key]| {
                    let bytes: u64 = keys.iter().map(|k| model[k].len() as u64).sum();
                    max_entries.is_none_or(|max| keys.len() as u64 <= max)
                        && max_bytes.is_none_or(|max| bytes <= max)
                };
                let kept_from = (0..=rest.len())
                    .find(|&start| fits(&rest[start..]))
                    .expect("the empty tail fits");
                evicted.extend_from_slice(&rest[..kept_from]);
                for k in &evicted {
                    model.remove(k);
                }
                assert_eq!(report.evicted(), &evicted[..]);
                assert_eq!(pack.stats().unwrap().dead_bytes, 0);
            }
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

//! The pack store's API on good input.

use std::collections::HashMap;

use crate::common::{identity, key, scratch, value};
use wasmpak::{Durability, ErrorKind, Pack, PackIdentity, PackOptions, Verify};

#[test]
fn insert_get_remove_and_reopen() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    assert!(pack.is_empty().unwrap());
    for i in 0..50 {
        pack.insert(&key(i), &value(i, (i * 37) as usize)).unwrap();
    }
    assert_eq!(pack.len().unwrap(), 50);
    assert!(pack.remove(&key(3)).unwrap());
    assert!(!pack.remove(&key(3)).unwrap());
    assert!(!pack.remove(&key(999)).unwrap());
    pack.insert(&key(4), b"replaced").unwrap();
    drop(pack);

    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.len().unwrap(), 49);
    for i in 0..50 {
        let got = pack.get(&key(i)).unwrap();
        match i {
            3 => assert_eq!(got, None),
            4 => assert_eq!(got.as_deref(), Some(&b"replaced"[..])),
            _ => assert_eq!(got.as_deref(), Some(&value(i, (i * 37) as usize)[..])),
        }
        assert_eq!(pack.contains(&key(i)).unwrap(), i != 3);
    }
    assert!(pack.verify().unwrap().is_ok());
}

#[test]
fn values_are_aligned_and_zero_copy() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    pack.insert_with_label(&key(1), &value(1, 1000), "odd label length")
        .unwrap();
    pack.insert(&key(2), &value(2, 3)).unwrap();
    let a = pack.get(&key(1)).unwrap().unwrap();
    let b = pack.get(&key(1)).unwrap().unwrap();
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "both gets borrow the same mapped bytes"
    );
    assert_eq!(
        a.as_ptr() as usize % 64,
        0,
        "values are 64-byte aligned in memory"
    );
    let c = pack.get(&key(2)).unwrap().unwrap();
    assert_eq!(c.as_ptr() as usize % 64, 0);
    // The bytes outlive the pack handle: they own the mapping.
    drop(pack);
    assert_eq!(&a[..], &value(1, 1000)[..]);
}

#[test]
fn labels_and_listing() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let mut expected = HashMap::new();
    for i in 0..20 {
        let label = format!("module-{i}.wasm");
        pack.insert_with_label(&key(i), &value(i, 100 + i as usize), &label)
            .unwrap();
        expected.insert(key(i), (label, 100 + i));
    }
    pack.remove(&key(0)).unwrap();
    expected.remove(&key(0));
    let entries: Vec<_> = pack.iter().unwrap().collect();
    assert_eq!(entries.len(), 19);
    assert!(entries.windows(2).all(|w| w[0].key() < w[1].key()));
    for entry in &entries {
        let (label, size) = &expected[entry.key()];
        assert_eq!(entry.label(), label);
        assert_eq!(entry.size(), *size);
        assert_eq!(entry.offset() % 64, 0);
    }
    let mut keys = pack.keys().unwrap();
    keys.sort();
    let mut want: Vec<_> = expected.keys().copied().collect();
    want.sort();
    assert_eq!(keys, want);
    let too_long = "x".repeat(1025);
    let err = pack
        .insert_with_label(&key(100), b"v", &too_long)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn batch_is_invisible_until_commit_and_dropping_discards() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let reader = Pack::open(&path, &identity()).unwrap();
    {
        let mut batch = pack.batch();
        batch.insert(&key(1), b"one").unwrap();
        assert_eq!(reader.get(&key(1)).unwrap(), None);
        // dropped: discarded
    }
    assert_eq!(reader.get(&key(1)).unwrap(), None);
    let mut batch = pack.batch();
    for i in 0..100 {
        batch.insert(&key(i), &value(i, 10)).unwrap();
    }
    assert!(batch.remove(&key(5)).unwrap());
    batch.insert(&key(6), b"six again").unwrap();
    assert!(batch.contains(&key(7)).unwrap());
    assert!(!batch.contains(&key(5)).unwrap());
    assert_eq!(batch.len(), 102);
    batch.commit().unwrap();
    assert_eq!(reader.len().unwrap(), 99);
    assert_eq!(
        reader.get(&key(6)).unwrap().as_deref(),
        Some(&b"six again"[..])
    );
    assert_eq!(reader.get(&key(5)).unwrap(), None);
    assert_eq!(
        pack.stats().unwrap().index_blocks,
        1,
        "one batch, one block"
    );
}

#[test]
fn many_single_commits_keep_the_index_logarithmic() {
    let (_dir, path) = scratch();
    let pack = PackOptions::new()
        .durability(Durability::None)
        .create(&path, &identity())
        .unwrap();
    for i in 0..1000 {
        pack.insert(&key(i), &i.to_le_bytes()).unwrap();
        let blocks = pack.stats().unwrap().index_blocks;
        assert!(blocks <= 11, "{blocks} blocks after {} commits", i + 1);
    }
    let reopened = Pack::open(&path, &identity()).unwrap();
    for i in 0..1000 {
        assert_eq!(
            reopened.get(&key(i)).unwrap().as_deref(),
            Some(&i.to_le_bytes()[..])
        );
    }
    assert_eq!(reopened.len().unwrap(), 1000);
}

#[test]
fn stats_account_for_every_byte() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let empty = pack.stats().unwrap();
    assert_eq!(
        (empty.entries, empty.live_bytes, empty.dead_bytes),
        (0, 0, 0)
    );
    assert_eq!(empty.generation, 1);
    pack.insert(&key(1), &[1; 100]).unwrap();
    pack.insert(&key(2), &[2; 200]).unwrap();
    let two = pack.stats().unwrap();
    assert_eq!(two.entries, 2);
    assert_eq!(two.live_bytes, 300);
    assert_eq!(two.generation, 3);
    assert_eq!(two.file_size, two.committed_len);
    pack.insert(&key(1), &[9; 1000]).unwrap();
    pack.remove(&key(2)).unwrap();
    let after = pack.stats().unwrap();
    assert_eq!(after.entries, 1);
    assert_eq!(after.live_bytes, 1000);
    // The replaced value (64 + 128 bytes), the removed one (64 + 256), its tombstone (64) and
    // superseded index structures are dead.
    assert!(after.dead_bytes >= 192 + 320 + 64, "{after:?}");
    assert_eq!(
        after.committed_len - 12288,
        after.dead_bytes + after.index_bytes + (64 + 1024),
        "{after:?}"
    );
}

#[test]
fn identity_is_checked_and_open_any_reads_it() {
    let (_dir, path) = scratch();
    Pack::create(&path, &identity()).unwrap();
    let other = PackIdentity::new().with("engine", "other");
    let err = Pack::open(&path, &other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IdentityMismatch);
    let message = err.to_string();
    assert!(
        message.contains("engine=test") && message.contains("engine=other"),
        "{message}"
    );
    let any = Pack::open_any(&path).unwrap();
    assert_eq!(any.identity(), &identity());
    assert_eq!(
        Pack::create(&path, &identity()).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        Pack::open(path.with_extension("missing"), &identity())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn open_or_create_from_many_threads_yields_one_pack() {
    let (_dir, path) = scratch();
    let packs: Vec<Pack> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| Pack::open_or_create(&path, &identity()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, pack) in packs.iter().enumerate() {
        pack.insert(&key(i as u64), b"x").unwrap();
    }
    assert_eq!(Pack::open(&path, &identity()).unwrap().len().unwrap(), 8);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}

#[test]
fn opening_while_another_handle_commits_never_fails() {
    // Regression: open measured the file length before reading the commit slots, so a commit
    // landing in between looked like a slot pointing past the end of the file ("corrupt"),
    // and the cache then moved a healthy pack aside.
    let (_dir, path) = scratch();
    let options = PackOptions::new().durability(Durability::None);
    let writer = options.create(&path, &identity()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut opens = 0u64;
                    let mut last_len = 0;
                    while !done.load(std::sync::atomic::Ordering::Acquire) {
                        let pack = options.open(&path, &identity()).unwrap();
                        let len = pack.len().unwrap();
                        assert!(
                            len >= last_len,
                            "the pack went back from {last_len} to {len}"
                        );
                        last_len = len;
                        opens += 1;
                    }
                    opens
                })
            })
            .collect();
        for i in 0..3000 {
            writer.insert(&key(i), &value(i, 512)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    });
    assert_eq!(Pack::open(&path, &identity()).unwrap().len().unwrap(), 3000);
}

#[test]
fn threads_share_one_handle() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pack = pack.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let k = key(t * 1000 + i);
                    pack.insert(&k, &value(t * 1000 + i, 64)).unwrap();
                    assert_eq!(
                        pack.get(&k).unwrap().as_deref(),
                        Some(&value(t * 1000 + i, 64)[..])
                    );
                }
            });
        }
    });
    assert_eq!(pack.len().unwrap(), 200);
    assert!(pack.verify().unwrap().is_ok());
}

#[test]
fn verify_policies_decide_when_checksums_run() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    pack.insert(&key(1), &[7; 4096]).unwrap();
    let offset = pack.iter().unwrap().next().unwrap().offset();
    let once = PackOptions::new()
        .verify(Verify::Once)
        .open(&path, &identity())
        .unwrap();
    let always = PackOptions::new()
        .verify(Verify::Always)
        .open(&path, &identity())
        .unwrap();
    assert!(once.get(&key(1)).unwrap().is_some());
    assert!(always.get(&key(1)).unwrap().is_some());
    crate::common::flip(&path, offset + 100, 0x01);
    // Once: already verified in this process, the check is not repeated.
    assert!(once.get(&key(1)).unwrap().is_some());
    let err = always.get(&key(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains(&key(1).to_string()));
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.get(&key(1)).unwrap_err().kind(), ErrorKind::Corrupt);
    let never = PackOptions::new()
        .verify(Verify::Never)
        .open(&path, &identity())
        .unwrap();
    assert_eq!(never.get(&key(1)).unwrap().unwrap()[100], 6);
    let report = fresh.verify().unwrap();
    assert_eq!(report.problems().len(), 1);
    assert_eq!(report.problems()[0].key(), Some(&key(1)));
}

#[test]
fn large_values_are_checked_in_both_halves() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let big = value(9, 9 << 20);
    pack.insert(&key(1), &big).unwrap();
    pack.insert(&key(2), &big).unwrap();
    let entries: Vec<_> = pack.iter().unwrap().collect();
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.get(&key(1)).unwrap().as_deref(), Some(&big[..]));
    // Damage near the start of one value and near the end of the other.
    let (one, two) = if entries[0].key() == &key(1) {
        (&entries[0], &entries[1])
    } else {
        (&entries[1], &entries[0])
    };
    crate::common::flip(&path, one.offset() + 10, 0x01);
    crate::common::flip(&path, two.offset() + two.size() - 10, 0x01);
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.get(&key(1)).unwrap_err().kind(), ErrorKind::Corrupt);
    assert_eq!(fresh.get(&key(2)).unwrap_err().kind(), ErrorKind::Corrupt);
}

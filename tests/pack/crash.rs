//! Crash sweep: every torn tail and every damaged commit slot leaves exactly the committed
//! entries, byte-identical; an unsynced commit whose records did not survive gives way to the
//! durable commit before it. (`tests/power_loss/` simulates the power losses themselves.)

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{identity, key, raw, scratch, value};
use wasmpak::format::superblock::{SLOT_LEN, SLOT_OFFSETS};
use wasmpak::{Key, Pack};

type Model = BTreeMap<Key, Vec<u8>>;

fn assert_holds_exactly(path: &Path, model: &Model, context: &str) {
    let pack = Pack::open(path, &identity()).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(pack.len().unwrap(), model.len() as u64, "{context}");
    let keys = pack.keys().unwrap();
    assert_eq!(keys, model.keys().copied().collect::<Vec<_>>(), "{context}");
    for (k, v) in model {
        assert_eq!(pack.get(k).unwrap().as_deref(), Some(&v[..]), "{context}");
    }
    assert!(pack.verify().unwrap().is_ok(), "{context}");
}

/// A pack with committed entries, and the bytes of the same pack after one more commit that
/// was in flight (the "after" file has the new records and both slots updated).
fn before_and_after(path: &Path) -> (Vec<u8>, Model, Vec<u8>, Model) {
    let pack = Pack::create(path, &identity()).unwrap();
    let mut model = Model::new();
    for i in 0..4 {
        let v = value(i, 100 * i as usize + 1);
        pack.insert(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    let before = std::fs::read(path).unwrap();
    let before_model = model.clone();
    let mut batch = pack.batch();
    for i in 4..7 {
        let v = value(i, 300);
        batch.insert_with_label(&key(i), &v, "in flight").unwrap();
        model.insert(key(i), v);
    }
    batch.remove(&key(0)).unwrap();
    model.remove(&key(0));
    batch.commit().unwrap();
    (before, before_model, std::fs::read(path).unwrap(), model)
}

fn slot_range(i: usize) -> std::ops::Range<usize> {
    SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN
}

#[test]
fn torn_tail_at_every_byte_is_invisible() {
    let (dir, path) = scratch();
    let (before, model, after, _) = before_and_after(&path);
    let crashed = dir.path().join("crashed.wpk");
    for cut in before.len()..=after.len() {
        // The writer got `cut` bytes of its records down and crashed before its commit slot.
        let mut bytes = after[..cut].to_vec();
        for i in 0..2 {
            bytes[slot_range(i)].copy_from_slice(&before[slot_range(i)]);
        }
        std::fs::write(&crashed, &bytes).unwrap();
        assert_holds_exactly(&crashed, &model, &format!("tail cut at {cut}"));
    }
}

#[test]
fn next_writer_overwrites_a_torn_tail() {
    let (_dir, path) = scratch();
    let (before, mut model, after, _) = before_and_after(&path);
    let mut bytes = after.clone();
    for i in 0..2 {
        bytes[slot_range(i)].copy_from_slice(&before[slot_range(i)]);
    }
    std::fs::write(&path, &bytes).unwrap();
    let pack = Pack::open(&path, &identity()).unwrap();
    pack.insert(&key(50), b"after the crash").unwrap();
    model.insert(key(50), b"after the crash".to_vec());
    assert_holds_exactly(&path, &model, "after overwrite");
    assert!(std::fs::metadata(&path).unwrap().len() <= after.len() as u64 + 4096);
}

#[test]
fn every_damaged_byte_of_either_slot_loses_nothing_at_rest() {
    let (dir, path) = scratch();
    let (_, _, after, model) = before_and_after(&path);
    let damaged = dir.path().join("damaged.wpk");
    for i in 0..2 {
        for at in slot_range(i) {
            let mut bytes = after.clone();
            bytes[at] ^= 0xff;
            std::fs::write(&damaged, &bytes).unwrap();
            assert_holds_exactly(&damaged, &model, &format!("slot {i} byte {at}"));
        }
    }
}

#[test]
fn a_torn_slot_write_mid_commit_keeps_the_last_good_commit() {
    let (dir, path) = scratch();
    let (before, before_model, after, after_model) = before_and_after(&path);
    let damaged = dir.path().join("damaged.wpk");
    // The commit wrote its first slot and crashed before mirroring it into the second.
    for first in 0..2 {
        let mut midway = after.clone();
        midway[slot_range(1 - first)].copy_from_slice(&before[slot_range(1 - first)]);
        std::fs::write(&damaged, &midway).unwrap();
        assert_holds_exactly(&damaged, &after_model, "first slot written");
        for at in slot_range(first) {
            // The new slot's write tore: the previous commit is still whole.
            let mut bytes = midway.clone();
            bytes[at] ^= 0x5a;
            std::fs::write(&damaged, &bytes).unwrap();
            assert_holds_exactly(&damaged, &before_model, &format!("torn new slot byte {at}"));
        }
        for at in slot_range(1 - first) {
            let mut bytes = midway.clone();
            bytes[at] ^= 0x5a;
            std::fs::write(&damaged, &bytes).unwrap();
            assert_holds_exactly(
                &damaged,
                &after_model,
                &format!("damaged old slot byte {at}"),
            );
        }
    }
}

/// Unsynced commits (`Durability::None`) never overwrite the slot of the last synced commit;
/// when the newest one's index did not reach the disk, readers and the next writer use the
/// synced commit in the other slot, exactly as it was.
#[test]
fn an_unsynced_commit_that_did_not_survive_gives_way_to_the_synced_one() {
    use wasmpak::format::superblock::{self, Publication};
    use wasmpak::{Durability, PackOptions};

    let (dir, path) = scratch();
    let (_, _, _, model) = before_and_after(&path);
    let synced = raw::live(&path);
    let lazy = PackOptions::new()
        .durability(Durability::None)
        .open(&path, &identity())
        .unwrap();
    for i in 20..26 {
        lazy.insert(&key(i), &value(i, 500)).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let slots = [0, 1].map(|i| superblock::CommitSlot::decode(&bytes[slot_range(i)]).unwrap());
    let newest = raw::live(&path);
    assert!(
        slots.contains(&synced) || slots.iter().any(|s| s.generation == synced.generation),
        "the synced commit keeps its slot: {slots:?}"
    );
    assert!(matches!(newest.publication, Publication::Unsynced { .. }));
    assert_eq!(
        Pack::open(&path, &identity()).unwrap().len().unwrap(),
        model.len() as u64 + 6
    );

    // A power loss kept the newest slot but not its index root: the records past the synced
    // commit read back as zeros.
    let mut lost = bytes.clone();
    lost[synced.committed_len as usize..].fill(0);
    let crashed = dir.path().join("crashed.wpk");
    std::fs::write(&crashed, &lost).unwrap();
    assert_holds_exactly(&crashed, &model, "fell back to the synced commit");
    let pack = Pack::open(&crashed, &identity()).unwrap();
    assert_eq!(pack.stats().unwrap().generation, synced.generation);
    pack.insert(&key(40), b"after").unwrap();
    let mut model = model;
    model.insert(key(40), b"after".to_vec());
    assert_holds_exactly(&crashed, &model, "the next commit builds on it");
}

//! Compaction and retention: live entries survive, dead bytes go, readers and writers in
//! other threads and processes never notice except by the file getting smaller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{
    assert_passed, child, env_path, env_u64, identity, key, played, scratch, value,
};
use wasmpak::{Key, Pack, Retention};

fn fill(pack: &Pack) -> BTreeMap<Key, Vec<u8>> {
    let mut model = BTreeMap::new();
    for i in 0..40 {
        let v = value(i, 1000 + i as usize);
        pack.insert_with_label(&key(i), &v, &format!("m{i}"))
            .unwrap();
        model.insert(key(i), v);
    }
    for i in 0..10 {
        let v = value(100 + i, 3000);
        pack.insert(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    for i in 30..40 {
        pack.remove(&key(i)).unwrap();
        model.remove(&key(i));
    }
    model
}

fn assert_holds(pack: &Pack, model: &BTreeMap<Key, Vec<u8>>) {
    assert_eq!(
        pack.keys().unwrap(),
        model.keys().copied().collect::<Vec<_>>()
    );
    for (k, v) in model {
        assert_eq!(pack.get(k).unwrap().as_deref(), Some(&v[..]));
    }
    assert!(pack.verify().unwrap().is_ok());
}

#[test]
fn compaction_keeps_live_entries_and_drops_dead_bytes() {
    let (dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let model = fill(&pack);
    let labels: Vec<_> = pack
        .iter()
        .unwrap()
        .map(|e| (*e.key(), e.label().to_string()))
        .collect();
    let before = pack.stats().unwrap();
    assert!(before.dead_bytes > 0);
    let old_value = pack.get(&key(5)).unwrap().unwrap();
    let other_handle = Pack::open(&path, &identity()).unwrap();
    assert!(other_handle.get(&key(6)).unwrap().is_some());

    let report = pack.compact().unwrap();
    assert_eq!(report.kept(), model.len() as u64);
    assert!(report.evicted().is_empty());
    assert!(report.size_after() < report.size_before());
    let after = pack.stats().unwrap();
    assert_eq!(after.dead_bytes, 0, "{after:?}");
    assert_eq!(after.index_blocks, 1);
    assert_eq!(after.entries, before.entries);
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.file_size, after.committed_len);
    assert_holds(&pack, &model);
    // Labels travel with the records.
    let labels_after: Vec<_> = pack
        .iter()
        .unwrap()
        .map(|e| (*e.key(), e.label().to_string()))
        .collect();
    assert_eq!(labels, labels_after);
    // Bytes handed out before stay valid; another handle follows the replacement.
    assert_eq!(&old_value[..], &model[&key(5)][..]);
    assert_holds(&other_handle, &model);
    other_handle.insert(&key(500), b"after compaction").unwrap();
    assert_eq!(
        pack.get(&key(500)).unwrap().as_deref(),
        Some(&b"after compaction"[..])
    );
    // Nothing but the pack is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn compacting_an_empty_or_clean_pack_works() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    assert_eq!(pack.compact().unwrap().kept(), 0);
    assert!(pack.is_empty().unwrap());
    pack.insert(&key(1), b"one").unwrap();
    pack.compact().unwrap();
    pack.compact().unwrap();
    assert_eq!(pack.get(&key(1)).unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(pack.stats().unwrap().dead_bytes, 0);
}

#[test]
fn retention_evicts_least_recently_used_first() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    for i in 0..10 {
        pack.insert(&key(i), &[i as u8; 1000]).unwrap();
    }
    let mut retention = Retention::new().max_live_bytes(5000);
    retention.touch(key(0), 30);
    retention.touch(key(1), 10);
    retention.touch(key(2), 20);
    // Unstamped keys 3..9 are older than all stamped ones, oldest written first.
    let report = pack.compact_with(&retention).unwrap();
    assert_eq!(report.evicted(), &[key(3), key(4), key(5), key(6), key(7)]);
    let stats = pack.stats().unwrap();
    assert_eq!((stats.entries, stats.live_bytes), (5, 5000));
    // Stamps are the caller's: without them, the entries written first go first.
    let retention = Retention::new().max_entries(2);
    let report = pack.compact_with(&retention).unwrap();
    assert_eq!(report.evicted(), &[key(0), key(1), key(2)]);
    let mut keys = pack.keys().unwrap();
    keys.sort();
    let mut want = vec![key(8), key(9)];
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn readers_and_writers_in_threads_during_compaction() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    for i in 0..50 {
        pack.insert(&key(i), &value(i, 2000)).unwrap();
    }
    let stop = AtomicBool::new(false);
    // Readers stop even if the test fails, so a failure cannot hang the scope.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop_guard = StopOnDrop(&stop);
        for r in 0..2 {
            let reader = Pack::open(&path, &identity()).unwrap();
            let stop = &stop;
            s.spawn(move || {
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) || rounds < 3 {
                    for i in 0..50 {
                        let got = reader.get(&key(i)).unwrap();
                        assert_eq!(got.as_deref(), Some(&value(i, 2000)[..]), "reader {r}");
                    }
                    rounds += 1;
                }
            });
        }
        let writer = Pack::open(&path, &identity()).unwrap();
        let stop = &stop;
        let writes = s.spawn(move || {
            for i in 1000..1100 {
                writer.insert(&key(i), &value(i, 100)).unwrap();
                writer.insert(&key(i), &value(i, 100)).unwrap(); // dead bytes to reclaim
            }
        });
        let mut compactions = 0;
        while !writes.is_finished() {
            pack.compact().unwrap();
            compactions += 1;
            // Back-to-back compactions would starve the writer of the lock (flock is not
            // fair); real compactions are far apart.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(compactions > 0);
        writes.join().unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.len().unwrap(), 150);
    for i in 1000..1100 {
        assert_eq!(
            fresh.get(&key(i)).unwrap().as_deref(),
            Some(&value(i, 100)[..])
        );
    }
}

/// Found by CI under qemu, where opens are slow: a pack renamed over by a compaction between
/// an open's `open(2)` and its permission check (which follows the path again) was refused as
/// insecure, "its path was replaced while it was being opened". Such an open now opens the
/// replacement; so does a handle following its pack to the compacted file.
#[test]
fn opens_racing_compactions_open_the_replacement() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    for i in 0..20 {
        pack.insert(&key(i), &value(i, 500)).unwrap();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let compactions = s.spawn(|| {
            for _ in 0..300 {
                pack.compact().unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        let mut opens = 0;
        let mut failures = Vec::new();
        while !done.load(Ordering::Relaxed) {
            match Pack::open(&path, &identity()).and_then(|p| p.get(&key(7))) {
                Ok(got) => assert_eq!(got.as_deref(), Some(&value(7, 500)[..])),
                Err(e) => failures.push(e.to_string()),
            }
            opens += 1;
        }
        compactions.join().unwrap();
        assert!(opens > 0);
        assert!(
            failures.is_empty(),
            "{} of {opens} opens failed, the first: {}",
            failures.len(),
            failures[0]
        );
    });
}

#[test]
fn writers_in_other_processes_during_compaction_lose_nothing() {
    if played(&[("writer", writer)]) {
        return;
    }
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            child("writer")
                .env("WASMPAK_TEST_PACK", &path)
                .env("WASMPAK_TEST_WRITER", w.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut compactions = 0;
    let mut writers = writers;
    while writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        pack.compact().unwrap();
        compactions += 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for w in writers {
        assert_passed(&w.wait_with_output().unwrap(), "a writer");
    }
    assert!(compactions > 0);
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.len().unwrap(), 3 * 30);
    for w in 0..3 {
        for i in 0..30 {
            let n = w * 1000 + i;
            assert_eq!(
                fresh.get(&key(n)).unwrap().as_deref(),
                Some(&value(n, 700)[..])
            );
        }
    }
    assert!(fresh.verify().unwrap().is_ok());
}

fn writer() {
    let path = env_path("WASMPAK_TEST_PACK");
    let w = env_u64("WASMPAK_TEST_WRITER");
    let pack = Pack::open(&path, &identity()).unwrap();
    for i in 0..30 {
        let n = w * 1000 + i;
        pack.insert(&key(n), &value(n, 700)).unwrap();
        pack.insert(&key(n + 500), b"dead soon").unwrap();
        pack.remove(&key(n + 500)).unwrap();
        assert!(pack.contains(&key(n)).unwrap());
    }
}

/// Distinct deleted (compacted-away) files under `dir` still mapped by this process (Linux:
/// read from `/proc/self/maps`).
#[cfg(target_os = "linux")]
fn deleted_mappings(dir: &std::path::Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&needle) && line.ends_with("(deleted)"))
        .filter_map(|line| line.split_whitespace().nth(4)) // the inode
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[cfg(target_os = "linux")]
#[test]
fn the_replaced_file_is_released_once_nothing_reads_it() {
    // Compaction and the reader that notices it hand the old file to a short-lived thread
    // to unmap and close (for a large pack the kernel frees its blocks then, which takes
    // a while). It must really go, and values read before must keep working until dropped.
    let (dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let model = fill(&pack);
    let reader = Pack::open(&path, &identity()).unwrap();
    let (k, v) = model.iter().next().unwrap();
    let held = reader.get(k).unwrap().unwrap();
    pack.compact().unwrap();
    // The reader switches to the new file on its next lookup; its old value stays readable.
    assert_eq!(reader.get(k).unwrap().as_deref(), Some(&v[..]));
    assert_eq!(&held[..], &v[..]);
    assert_eq!(
        deleted_mappings(dir.path()),
        1,
        "the held value pins the old file"
    );
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while deleted_mappings(dir.path()) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced file is still mapped"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(reader.len().unwrap(), model.len() as u64);
}

/// A pack whose newest value of key 0 sits in a small index block above the block holding an
/// older value, with that newest entry damaged (its checksum no longer matches).
fn damaged_newest_entry(removed: bool) -> (tempfile::TempDir, std::path::PathBuf, Pack) {
    let (dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let mut batch = pack.batch();
    for i in 0..20 {
        batch.insert(&key(i), &value(i, 100)).unwrap();
    }
    batch.commit().unwrap();
    // A commit of two keys stays a block of its own above the block of twenty.
    let mut batch = pack.batch();
    if removed {
        batch.remove(&key(0)).unwrap();
    } else {
        batch.insert(&key(0), b"newest").unwrap();
    }
    batch.insert(&key(50), b"other").unwrap();
    batch.commit().unwrap();
    assert_eq!(pack.stats().unwrap().index_blocks, 2);
    let entries = crate::common::raw::index_entries_of(&path, &key(0));
    assert_eq!(entries.len(), 2, "key 0 is in both blocks");
    // Damage the newest entry outside its key: the key still reads right, the CRC fails.
    crate::common::flip(&path, entries[0] + 40, 0x01);
    (dir, path, pack)
}

/// Found in review: compaction skipped a damaged index entry, so the older value of its key
/// in an older block took its place (a removed key came back, a replaced value went back).
#[test]
fn a_damaged_index_entry_never_brings_back_an_older_value_through_compaction() {
    for removed in [false, true] {
        let (_dir, path, _) = damaged_newest_entry(removed);
        let pack = Pack::open(&path, &identity()).unwrap();
        assert!(pack.get(&key(0)).is_err(), "the damage is an error");
        let report = pack.compact().unwrap();
        assert_eq!(
            pack.get(&key(0)).unwrap(),
            None,
            "removed: {removed}: the key is dropped, not its older value restored"
        );
        assert!(report.dropped_unreadable() >= 1, "{report:?}");
        for i in 1..20 {
            assert_eq!(
                pack.get(&key(i)).unwrap().as_deref(),
                Some(&value(i, 100)[..])
            );
        }
        assert!(pack.verify().unwrap().is_ok());
    }
}

/// Found in review: merging an index block dropped its damaged entries, so lookups fell
/// through to an older block and returned the key's older value.
#[test]
fn a_damaged_index_entry_never_brings_back_an_older_value_through_a_merge() {
    for removed in [false, true] {
        let (_dir, path, _) = damaged_newest_entry(removed);
        let pack = Pack::open(&path, &identity()).unwrap();
        // Commits small enough to merge with the damaged two-entry block.
        for i in 60..70 {
            pack.insert(&key(i), &value(i, 10)).unwrap();
            assert!(
                pack.get(&key(0)).is_err(),
                "removed: {removed}: after inserting {i}, the damage is still an error"
            );
            assert_eq!(
                pack.get(&key(i)).unwrap().as_deref(),
                Some(&value(i, 10)[..])
            );
        }
        assert_eq!(pack.get(&key(50)).unwrap().as_deref(), Some(&b"other"[..]));
    }
}

/// Found in review (issue 9): compaction copied values whose payload failed its checksum, so
/// `compact` reported nothing dropped while `verify` still found the damage.
#[test]
fn compaction_drops_values_that_fail_their_checksum() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let model = fill(&pack);
    let entry = pack.iter().unwrap().find(|e| *e.key() == key(12)).unwrap();
    crate::common::flip(&path, entry.offset() + 7, 0x10);
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert!(!fresh.verify().unwrap().is_ok());
    let report = fresh.compact().unwrap();
    assert_eq!(report.dropped_unreadable(), 1);
    assert_eq!(report.kept(), model.len() as u64 - 1);
    let mut model = model;
    model.remove(&key(12));
    assert_holds(&fresh, &model);
}

/// Found in review (issue 9): with a byte limit smaller than the newest entry, eviction went
/// through the older entries first, which all fit, and dropped them before the one that never
/// could.
#[test]
fn eviction_drops_what_can_never_fit_first() {
    let (_dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    for i in 0..5 {
        pack.insert(&key(i), &value(i, 1000)).unwrap();
    }
    pack.insert(&key(9), &value(9, 50_000)).unwrap();
    let mut retention = Retention::new().max_live_bytes(10_000);
    retention.touch(key(9), 10); // The most recently used, too.
    let report = pack.compact_with(&retention).unwrap();
    assert_eq!(report.evicted(), &[key(9)]);
    for i in 0..5 {
        assert!(pack.contains(&key(i)).unwrap(), "key {i} fits and stays");
    }
}

/// Found in review: compaction computed the next generation with an unchecked `+ 1`; at the
/// limit it wrapped to 0 (or panicked), and a file with no valid slot replaced a good pack.
#[test]
fn compaction_refuses_to_wrap_the_generation() {
    use wasmpak::ErrorKind;
    use wasmpak::format::superblock::CommitSlot;
    let (dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    pack.insert(&key(1), b"kept").unwrap();
    pack.insert(&key(1), b"kept again").unwrap();
    drop(pack);
    let live = crate::common::raw::live(&path);
    crate::common::raw::write_slots(
        &path,
        &CommitSlot {
            generation: u64::MAX,
            ..live
        },
    );
    let pack = Pack::open(&path, &identity()).unwrap();
    let err = pack.compact().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let reopened = Pack::open(&path, &identity()).unwrap();
    assert_eq!(
        reopened.get(&key(1)).unwrap().as_deref(),
        Some(&b"kept again"[..])
    );
    assert_eq!(reopened.stats().unwrap().generation, u64::MAX);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

//! Bad input: every damaged, hostile or unusual file yields a clear error or a miss, never a
//! panic, an out-of-bounds read, a huge allocation or a wrong value.

use std::path::Path;

use crate::common::raw::{self, RootAt};
use crate::common::{identity, key, scratch, value};
use wasmpak::format::index::{self, BlockRef, EntryKind, IndexEntry, Root};
use wasmpak::format::record::RecordKind;
use wasmpak::format::superblock::{DATA_START, SLOT_LEN, SLOT_OFFSETS};
use wasmpak::{ErrorKind, Key, Pack, PackOptions};

/// A small pack with a few entries over several commits; returns its keys and values.
fn small_pack(path: &Path) -> Vec<(Key, Vec<u8>)> {
    let pack = Pack::create(path, &identity()).unwrap();
    let entries: Vec<_> = (0..6)
        .map(|i| (key(i), value(i, 50 + 40 * i as usize)))
        .collect();
    let mut batch = pack.batch();
    for (k, v) in &entries[..3] {
        batch.insert_with_label(k, v, "label").unwrap();
    }
    batch.commit().unwrap();
    for (k, v) in &entries[3..] {
        pack.insert(k, v).unwrap();
    }
    entries
}

/// Opens `path` and exercises every read path. A value read must be the right value; errors
/// and misses are allowed. Returns how many values read back intact.
fn read_everything(path: &Path, entries: &[(Key, Vec<u8>)]) -> Result<usize, wasmpak::Error> {
    let pack = Pack::open_any(path)?;
    let mut intact = 0;
    for (k, v) in entries {
        // Misses and errors are fine; a value handed out must be the right one.
        if let Ok(Some(got)) = pack.get(k) {
            assert_eq!(&got[..], &v[..], "a damaged pack returned a wrong value");
            intact += 1;
        }
        let _ = pack.contains(k);
    }
    let _ = pack.iter().map(|it| it.count());
    let _ = pack.keys();
    let _ = pack.stats();
    let _ = pack.len();
    if let Ok(report) = pack.verify() {
        for problem in report.problems() {
            assert!(!problem.to_string().is_empty());
        }
    }
    Ok(intact)
}

#[test]
fn files_that_are_not_packs() {
    let (dir, path) = scratch();
    let cases: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("text", b"hello, world\n"),
        (
            "elf",
            b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ),
        ("wasm", b"\0asm\x01\0\0\0"),
    ];
    for (name, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        let err = Pack::open_any(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAPack, "{name}: {err}");
        assert!(err.to_string().contains("test.wpk"), "{err}");
    }
    let sub = dir.path().join("a-directory.wpk");
    std::fs::create_dir(&sub).unwrap();
    let err = Pack::open(&sub, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAPack);
    assert!(err.to_string().contains("directory"), "{err}");
    let err = Pack::open_or_create(&sub, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAPack);
}

#[test]
fn newer_format_versions_are_refused_by_name() {
    let (_dir, path) = scratch();
    Pack::create(&path, &identity()).unwrap();
    crate::common::flip(&path, 8, 0x01 ^ 0x03); // version 1 -> 3
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.to_string().contains("version 3"), "{err}");
}

#[test]
fn truncated_anywhere() {
    let (dir, path) = scratch();
    let entries = small_pack(&path);
    let bytes = std::fs::read(&path).unwrap();
    let cut_path = dir.path().join("cut.wpk");
    for cut in 0..bytes.len() {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let err = read_everything(&cut_path, &entries).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::NotAPack | ErrorKind::Corrupt),
            "cut at {cut}: {err}"
        );
    }
    std::fs::write(&cut_path, &bytes).unwrap();
    assert_eq!(read_everything(&cut_path, &entries).unwrap(), entries.len());
}

#[test]
fn bit_flips_anywhere() {
    let (dir, path) = scratch();
    let entries = small_pack(&path);
    let bytes = std::fs::read(&path).unwrap();
    let flipped_path = dir.path().join("flipped.wpk");
    let mut opened = 0;
    for at in 0..bytes.len() {
        // One flip per byte, low and high bits alternating.
        let mask = if at % 2 == 0 { 0x01u8 } else { 0x80 };
        let mut damaged = bytes.clone();
        damaged[at] ^= mask;
        std::fs::write(&flipped_path, &damaged).unwrap();
        let result = read_everything(&flipped_path, &entries);
        let in_slot = SLOT_OFFSETS
            .iter()
            .any(|&s| (s..s + SLOT_LEN as u64).contains(&(at as u64)));
        if in_slot {
            // Both slots hold the latest commit: one damaged slot loses nothing.
            assert_eq!(result.as_ref().ok(), Some(&entries.len()), "flip at {at}");
        }
        if result.is_ok() {
            opened += 1;
        }
    }
    assert!(
        opened > bytes.len() / 2,
        "most flips hit values or padding and still open"
    );
}

#[test]
fn commit_slots_pointing_past_the_end_or_into_the_superblock() {
    let (_dir, path) = scratch();
    let entries = small_pack(&path);
    let live = raw::live(&path);
    for (committed_len, root_offset) in [
        (live.committed_len + 64 * 1000, live.root_offset),
        (live.committed_len, 64),
        (live.committed_len, SLOT_OFFSETS[1]),
        (live.committed_len, live.committed_len),
        (DATA_START + 64, live.root_offset),
        (u64::MAX - 63, 0),
    ] {
        let saved = std::fs::read(&path).unwrap();
        let slot = wasmpak::format::superblock::CommitSlot {
            generation: live.generation + 1,
            committed_len,
            root_offset,
            superseded: false,
            publication: wasmpak::format::superblock::Publication::Synced,
            signature_offset: 0,
        };
        raw::write_slots(&path, &slot);
        let err = read_everything(&path, &entries).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Corrupt,
            "{committed_len} {root_offset}: {err}"
        );
        std::fs::write(&path, saved).unwrap();
    }
    assert_eq!(read_everything(&path, &entries).unwrap(), entries.len());
}

/// A crafted newest commit whose index cannot be used is never followed: the pack reads as at
/// the commit before it, degraded, without the keys written since (docs/FORMAT.md, section
/// 4.4), and every value it hands out is the right one.
fn assert_not_used(path: &Path, entries: &[(Key, Vec<u8>)]) {
    let crafted = raw::live(path).generation;
    let pack = Pack::open_any(path).unwrap();
    let lost = pack
        .lost_commit()
        .unwrap()
        .expect("the crafted commit is not used");
    assert_eq!(lost.generation(), crafted);
    assert!(pack.stats().unwrap().generation < crafted);
    read_everything(path, entries).unwrap();
}

#[test]
fn index_structures_pointing_into_themselves_or_nowhere() {
    let (_dir, path) = scratch();
    let entries = small_pack(&path);
    let live = raw::live(&path);
    let saved = std::fs::read(&path).unwrap();
    let block_at = live.committed_len;

    // A root whose block is the root itself.
    let root = Root {
        blocks: vec![BlockRef {
            offset: block_at,
            count: 1,
        }],
        ..Root::default()
    };
    let bytes = raw::record(RecordKind::IndexRoot, [0; 32], b"", &root.encode());
    raw::commit(&path, &bytes, RootAt::Relative(0));
    assert_not_used(&path, &entries);
    std::fs::write(&path, &saved).unwrap();

    // The commit points at a value record instead of a root.
    let bytes = raw::record(RecordKind::Entry, [1; 32], b"", b"not a root");
    raw::commit(&path, &bytes, RootAt::Relative(0));
    assert_not_used(&path, &entries);
    std::fs::write(&path, &saved).unwrap();

    // A block reference claiming 2^40 entries: refused without allocating.
    let block = raw::record(RecordKind::IndexBlock, [0; 32], b"", &[]);
    let root = Root {
        blocks: vec![BlockRef {
            offset: block_at,
            count: 1 << 40,
        }],
        ..Root::default()
    };
    let mut bytes = block.clone();
    bytes.extend(raw::record(
        RecordKind::IndexRoot,
        [0; 32],
        b"",
        &root.encode(),
    ));
    raw::commit(&path, &bytes, RootAt::Relative(block.len() as u64));
    assert_not_used(&path, &entries);
    std::fs::write(&path, &saved).unwrap();

    // A root claiming 2^31 blocks.
    let mut root_bytes = Root::default().encode();
    root_bytes[32..36].copy_from_slice(&(1u32 << 31).to_le_bytes());
    let bytes = raw::record(RecordKind::IndexRoot, [0; 32], b"", &root_bytes);
    raw::commit(&path, &bytes, RootAt::Relative(0));
    assert_not_used(&path, &entries);
    std::fs::write(&path, &saved).unwrap();
}

#[test]
fn index_entries_with_absurd_lengths_or_offsets() {
    let (_dir, path) = scratch();
    let entries = small_pack(&path);
    let live = raw::live(&path);
    let hostile = [
        (key(100), 1u64 << 62, DATA_START), // a value longer than any file
        (key(101), 64, live.committed_len + 4096), // a value past the commit
        (key(102), 64, 0),                  // a value in the superblock
        (key(103), u64::MAX - 100, DATA_START), // offsets that overflow
    ];
    let mut index_entries: Vec<IndexEntry> = hostile
        .iter()
        .map(|&(key, payload_len, record_offset)| IndexEntry {
            key,
            record_offset,
            payload_len,
            payload_crc: 0,
            label_len: 0,
            kind: EntryKind::Value,
        })
        .collect();
    index_entries.sort_by_key(|e| e.key);
    let block = raw::record(
        RecordKind::IndexBlock,
        [0; 32],
        b"",
        &index::encode_block(&index_entries),
    );
    let root = Root {
        live_entries: 4,
        blocks: vec![BlockRef {
            offset: live.committed_len,
            count: 4,
        }],
        ..Root::default()
    };
    let mut bytes = block.clone();
    bytes.extend(raw::record(
        RecordKind::IndexRoot,
        [0; 32],
        b"",
        &root.encode(),
    ));
    raw::commit(&path, &bytes, RootAt::Relative(block.len() as u64));
    let pack = Pack::open(&path, &identity()).unwrap();
    for (k, _, _) in hostile {
        assert_eq!(pack.get(&k).unwrap_err().kind(), ErrorKind::Corrupt, "{k}");
    }
    let report = pack.verify().unwrap();
    assert_eq!(report.problems().len(), 4, "{:?}", report.problems());
    assert!(pack.iter().is_err());
    // The older entries were shadowed out of the index by this hostile commit; the values
    // themselves are untouched, which a fresh commit over the old root would show.
    drop(entries);
}

#[test]
fn identity_fields_that_do_not_fit_are_invalid_input() {
    let (_dir, path) = scratch();
    let huge = wasmpak::PackIdentity::new().with("cpu", "x".repeat(5000));
    let err = Pack::create(&path, &huge).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!path.exists());
}

#[test]
fn world_writable_packs_are_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure);
    assert!(err.to_string().contains("writable by every user"), "{err}");
    let allowed = PackOptions::new()
        .allow_shared_write(true)
        .open(&path, &identity())
        .unwrap();
    assert_eq!(allowed.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
}

/// Found in review: the recency sidecar's record count was believed before anything else was
/// read, so a forged count made a reader allocate up to 640 MiB. The file must be that long
/// first. The child may allocate only 64 MiB more than it holds.
#[cfg(target_os = "linux")]
#[test]
fn a_forged_recency_count_allocates_nothing() {
    use crate::common::{assert_passed, child, played};
    if played(&[("forged-count", forged_count)]) {
        return;
    }
    let (_dir, path) = scratch();
    let output = child("forged-count")
        .env("WASMPAK_TEST_PACK", &path)
        .output()
        .unwrap();
    assert_passed(&output, "forged-count");
}

#[cfg(target_os = "linux")]
fn forged_count() {
    use wasmpak::format::recency;
    let path = crate::common::env_path("WASMPAK_TEST_PACK");
    let mut forged = recency::MAGIC.to_vec();
    forged.extend_from_slice(&recency::VERSION.to_le_bytes());
    forged.extend_from_slice(&recency::MAX_RECORDS.to_le_bytes());
    let sidecar = path.with_file_name("test.wpk.recency");
    std::fs::write(&sidecar, &forged).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let data_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmData in /proc/self/status");
    let limit = (data_kib << 10) + (64 << 20);
    rustix::process::setrlimit(
        rustix::process::Resource::Data,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .unwrap();
    assert_eq!(wasmpak::Retention::new().touch_from_sidecar(&path), 0);
    // A sidecar just as long as its count says is read.
    let stamps = std::collections::HashMap::from([(key(1), 1_700_000_000_000u64)]);
    std::fs::write(&sidecar, recency::encode(&stamps)).unwrap();
    assert_eq!(wasmpak::Retention::new().touch_from_sidecar(&path), 1);
}

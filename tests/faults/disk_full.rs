//! A full disk, simulated with a file size limit: a writer whose appends fail part way
//! through gets a `StorageFull` error naming the pack, and the pack keeps exactly what was
//! committed before, verifies clean, and takes the next write.
//!
//! The writer is a child process (this test binary, re-run) under `prlimit --fsize`, with
//! SIGXFSZ ignored so that a write past the limit fails with EFBIG instead of killing it. The
//! limit is placed from the layout of the same operation done on a copy of the pack.
//!
//! Linux only: the limit is set with `prlimit` from util-linux.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::{
    assert_passed, child, env_path, env_u64, identity, installed, key, missing, played, scratch,
    value,
};
use wasmpak::format::record::{RecordHeader, RecordKind};
use wasmpak::format::superblock::{SLOT_LEN, SLOT_OFFSETS, live_slot};
use wasmpak::{ErrorKind, Key, Pack};

const BIG: usize = 256 * 1024;
const BATCH: u64 = 4;
const BATCH_VALUE: usize = 40 * 1000 + 17;

/// Which write the child makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// One insert of a large value.
    Single,
    /// A batch of several values, one commit.
    Batch,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Single => "single",
            Write::Batch => "batch",
        }
    }

    fn parse(name: &str) -> Write {
        match name {
            "single" => Write::Single,
            "batch" => Write::Batch,
            other => panic!("unknown write {other}"),
        }
    }

    /// The entries the write adds.
    fn entries(self) -> Vec<(Key, Vec<u8>)> {
        match self {
            Write::Single => vec![(key(100), value(100, BIG))],
            Write::Batch => (0..BATCH)
                .map(|i| (key(200 + i), value(200 + i, BATCH_VALUE)))
                .collect(),
        }
    }

    /// Makes the write: the first error, if any (a failed batch append or the commit).
    fn perform(self, pack: &Pack) -> Result<(), wasmpak::Error> {
        match self {
            Write::Single => {
                let (k, v) = &self.entries()[0];
                pack.insert_with_label(k, v, "big.wasm")
            }
            Write::Batch => {
                let mut batch = pack.batch();
                let mut first = None;
                for (k, v) in self.entries() {
                    if let Err(e) = batch.insert_with_label(&k, &v, "batch.wasm") {
                        // Every later append fails too: the batch is doomed.
                        first.get_or_insert(e);
                    }
                }
                let commit = batch.commit();
                match first {
                    Some(first) => {
                        let commit = commit.expect_err("a batch with a failed append commits");
                        assert_eq!(
                            commit.kind(),
                            first.kind(),
                            "the commit of a failed batch reports what failed: {commit}"
                        );
                        Err(first)
                    }
                    None => commit,
                }
            }
        }
    }
}

/// Where the limit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Half way through the new entries' records.
    MidRecords,
    /// Half way through the new index block.
    MidIndexBlock,
    /// One byte before the end of the new index root: the last append fails.
    OneShortOfTheEnd,
    /// Exactly at the end of the new index root: every append fits, and the commit slots lie
    /// far below the limit, so the write succeeds.
    AtTheEnd,
}

/// A pack with committed entries over several commits.
fn committed_pack(path: &Path) -> BTreeMap<Key, Vec<u8>> {
    let pack = Pack::create(path, &identity()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..3 {
        let v = value(i, 1000 + 300 * i as usize);
        pack.insert(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    let mut batch = pack.batch();
    for i in 3..6 {
        let v = value(i, 5000);
        batch.insert_with_label(&key(i), &v, "before").unwrap();
        model.insert(key(i), v);
    }
    batch.commit().unwrap();
    model
}

fn committed_len(bytes: &[u8]) -> u64 {
    let slot = |i: usize| &bytes[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
    live_slot([slot(0), slot(1)], bytes.len() as u64)
        .unwrap()
        .1
        .committed_len
}

/// The records `write` appends to the pack at `path`, as (offset, kind, length), by making
/// it on a copy.
fn layout(path: &Path, write: Write) -> Vec<(u64, RecordKind, u64)> {
    let copy = path.with_file_name("dry-run.wpk");
    std::fs::copy(path, &copy).unwrap();
    let start = committed_len(&std::fs::read(path).unwrap());
    write
        .perform(&Pack::open(&copy, &identity()).unwrap())
        .unwrap();
    let after = std::fs::read(&copy).unwrap();
    std::fs::remove_file(&copy).unwrap();
    let end = committed_len(&after);
    assert_eq!(end, after.len() as u64, "the dry run leaves no tail");
    let mut records = Vec::new();
    let mut at = start;
    while at < end {
        let (header, _) = RecordHeader::decode(&after[at as usize..]).unwrap();
        let len = header.record_len().unwrap();
        records.push((at, header.kind, len));
        at += len;
    }
    assert_eq!(at, end);
    records
}

fn place(records: &[(u64, RecordKind, u64)], limit: Limit) -> u64 {
    let of = |kind| records.iter().filter(move |r| r.1 == kind);
    let end = records.last().map(|r| r.0 + r.2).unwrap();
    match limit {
        Limit::MidRecords => {
            let first = of(RecordKind::Entry).next().unwrap().0;
            let last = of(RecordKind::Entry)
                .next_back()
                .map(|r| r.0 + r.2)
                .unwrap();
            first + (last - first) / 2 + 7
        }
        Limit::MidIndexBlock => {
            let (at, _, len) = *of(RecordKind::IndexBlock).next().unwrap();
            at + len / 2 + 3
        }
        Limit::OneShortOfTheEnd => end - 1,
        Limit::AtTheEnd => end,
    }
}

/// Whether prlimit is there; if not, the test fails unless told to skip it.
fn prlimit_exists() -> bool {
    let found = installed("prlimit");
    if !found {
        missing(
            "prlimit",
            "prlimit(1), from util-linux, imposes the file size limit",
        );
    }
    found
}

/// The current test in role `role`, working on `pack`, with files limited to `limit` bytes.
/// `crate::common::child` names this binary and the test; the shell ignores SIGXFSZ (which stays
/// ignored across exec), so a write past the limit fails with EFBIG instead of killing the
/// child, and prlimit sets the limit for what it runs.
fn under_file_size_limit(role: &str, pack: &std::path::Path, limit: u64) -> Command {
    let base = child(role);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"trap "" XFSZ; exec prlimit --fsize="$WASMPAK_TEST_LIMIT" "$@""#)
        .arg("sh")
        .arg(base.get_program())
        .args(base.get_args())
        .env("WASMPAK_TEST_PACK", pack)
        .env("WASMPAK_TEST_LIMIT", limit.to_string());
    command
}

fn run(write: Write, limit: Limit) {
    if played(&[("write", write_under_limit)]) || !prlimit_exists() {
        return;
    }
    let (_dir, path) = scratch();
    let mut model = committed_pack(&path);
    let records = layout(&path, write);
    let bytes = place(&records, limit);
    let before = std::fs::read(&path).unwrap();
    assert!(bytes > before.len() as u64);

    let output = under_file_size_limit("write", &path, bytes)
        .env("WASMPAK_TEST_WRITE", write.name())
        .env(
            "WASMPAK_TEST_EXPECT",
            if limit == Limit::AtTheEnd {
                "ok"
            } else {
                "full"
            },
        )
        .output()
        .unwrap();
    assert_passed(&output, &format!("{write:?} {limit:?}: the child"));
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len <= bytes,
        "the file grew to {len}, past the {bytes}-byte limit"
    );

    if limit == Limit::AtTheEnd {
        model.extend(write.entries());
    } else {
        // The committed bytes were not touched; the torn tail past them is garbage.
        let after = std::fs::read(&path).unwrap();
        let data = wasmpak::format::superblock::DATA_START as usize;
        assert!(
            after[data..before.len()] == before[data..],
            "{write:?} {limit:?}"
        );
    }
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_holds(&pack, &model, &format!("{write:?} {limit:?}"));

    // Without the limit, the next write succeeds (overwriting the torn tail).
    pack.insert_with_label(&key(999), &value(999, 12345), "after")
        .unwrap();
    model.insert(key(999), value(999, 12345));
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_holds(
        &fresh,
        &model,
        &format!("{write:?} {limit:?}, then a write"),
    );
}

fn assert_holds(pack: &Pack, model: &BTreeMap<Key, Vec<u8>>, context: &str) {
    assert_eq!(
        pack.keys().unwrap(),
        model.keys().copied().collect::<Vec<_>>(),
        "{context}"
    );
    for (k, v) in model {
        let got = pack.get(k).unwrap();
        assert!(got.as_deref() == Some(&v[..]), "{context}: value of {k}");
    }
    assert_eq!(pack.len().unwrap(), model.len() as u64, "{context}");
    let report = pack.verify().unwrap();
    assert!(report.is_ok(), "{context}: {:?}", report.problems());
    assert_eq!(report.entries(), model.len() as u64, "{context}");
}

fn write_under_limit() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let path = env_path("WASMPAK_TEST_PACK");
    let write = Write::parse(&env("WASMPAK_TEST_WRITE"));
    let limit = env_u64("WASMPAK_TEST_LIMIT");
    let current = rustix::process::getrlimit(rustix::process::Resource::Fsize).current;
    assert_eq!(current, Some(limit), "prlimit set the file size limit");

    let pack = Pack::open(&path, &identity()).unwrap();
    let result = write.perform(&pack);
    match env("WASMPAK_TEST_EXPECT").as_str() {
        "ok" => result.unwrap(),
        _ => {
            let err = result.expect_err("a write past the file size limit fails");
            assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
            assert!(err.to_string().contains("test.wpk"), "{err}");
            // Nothing of the failed write is visible, in this process either.
            for (k, _) in write.entries() {
                assert_eq!(pack.get(&k).unwrap(), None);
            }
        }
    }
}

#[test]
fn single_insert_fails_mid_record() {
    run(Write::Single, Limit::MidRecords);
}

#[test]
fn single_insert_fails_mid_index_block() {
    run(Write::Single, Limit::MidIndexBlock);
}

#[test]
fn single_insert_fails_one_byte_short() {
    run(Write::Single, Limit::OneShortOfTheEnd);
}

#[test]
fn single_insert_fits_exactly() {
    run(Write::Single, Limit::AtTheEnd);
}

#[test]
fn batch_fails_mid_records() {
    run(Write::Batch, Limit::MidRecords);
}

#[test]
fn batch_fails_mid_index_block() {
    run(Write::Batch, Limit::MidIndexBlock);
}

#[test]
fn batch_fails_one_byte_short() {
    run(Write::Batch, Limit::OneShortOfTheEnd);
}

#[test]
fn batch_fits_exactly() {
    run(Write::Batch, Limit::AtTheEnd);
}

/// Compaction under a file size limit smaller than the compacted pack: it fails with
/// `StorageFull`, removes its half-written file, and leaves the pack byte for byte as it was;
/// without the limit the next compaction succeeds.
#[test]
fn compaction_fails_cleanly_when_the_new_file_does_not_fit() {
    if played(&[("compact", compact_under_limit)]) || !prlimit_exists() {
        return;
    }
    let (dir, path) = scratch();
    let mut model = committed_pack(&path);
    {
        // Dead bytes to reclaim: every value written twice.
        let pack = Pack::open(&path, &identity()).unwrap();
        for (k, v) in &mut model {
            v.push(1);
            pack.insert(k, v).unwrap();
        }
    }
    let before = std::fs::read(&path).unwrap();
    let live: u64 = model.values().map(|v| v.len() as u64).sum();
    let limit = wasmpak::format::superblock::DATA_START + live / 2;
    let output = under_file_size_limit("compact", &path, limit)
        .output()
        .unwrap();
    assert_passed(&output, "the compaction under the limit");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the pack is untouched"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "no half-written file is left: {files:?}");
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_holds(&pack, &model, "after the failed compaction");
    let report = pack.compact().unwrap();
    assert_eq!(report.kept(), model.len() as u64);
    assert_holds(&pack, &model, "after compacting without the limit");
    assert_eq!(pack.stats().unwrap().dead_bytes, 0);
}

fn compact_under_limit() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    let err = pack.compact().expect_err("the compacted pack does not fit");
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    // The handle still reads everything it read before.
    assert!(pack.len().unwrap() > 0);
}

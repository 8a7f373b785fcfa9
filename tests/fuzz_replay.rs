//! The fuzz targets without cargo-fuzz: every committed corpus file, plus deterministic random
//! inputs and mutations of the seeds, through the same harness the fuzzers run
//! (`fuzz/harness.rs`). A failing input is saved under the target directory so that it can be
//! replayed with `cargo fuzz run <target> <file>` or added to `fuzz/corpus/<target>/`.
//!
//! `WASMPAK_WRITE_CORPORA=1 cargo test -p wasmpak --test tests -- fuzz_replay::` rewrites
//! the seed files (`fuzz/corpus/<target>/seed-*`) and the crafted regressions; other files there
//! (other regressions, `crash-*`) are kept.
//! `WASMPAK_FUZZ_REPLAY_SCALE=N` multiplies the number of random inputs.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use harness::{Op, TARGETS};
use wasmpak::format::index::{self, BlockRef, ENTRY_LEN, EntryKind, IndexEntry, Root};
use wasmpak::format::record::{HEADER_LEN, RecordHeader, RecordKind};
use wasmpak::format::signature::{self as signature_format, SignatureRecord};
use wasmpak::format::superblock::{self, CommitSlot, DATA_START, SLOT_LEN, SLOT_OFFSETS};
use wasmpak::{Durability, Key, Pack, PackIdentity, PackOptions};

// ---------------------------------------------------------------------------------------------
// Running inputs

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// The committed corpus of `target`, sorted by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn target_fn(target: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1
}

/// Runs one input; on a panic, saves it and fails naming the file.
fn run(target: &str, input: &[u8], origin: &str) {
    let f = target_fn(target);
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-replay-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{target}-{}", origin.replace(['/', ' '], "_")));
        std::fs::write(&file, input).unwrap();
        panic!(
            "{target} failed on {origin}; the input is saved as {} \
             (replay: cargo fuzz run {target} <file>)",
            file.display()
        );
    }
}

/// A small xorshift generator: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A value a fuzzer would try for a field: boundaries, small numbers, or noise.
    fn interesting(&mut self, near: &[u64]) -> u64 {
        match self.below(6) {
            0 => [
                0,
                1,
                63,
                64,
                4096,
                u64::MAX,
                u64::MAX - 63,
                1 << 32,
                1 << 63,
            ][self.below(9)],
            1 => self.below(256) as u64,
            2 | 3 if !near.is_empty() => {
                let base = near[self.below(near.len())];
                base.wrapping_add((self.below(9) as u64).wrapping_sub(4).wrapping_mul(64))
            }
            _ => self.next(),
        }
    }
}

fn scale() -> usize {
    std::env::var("WASMPAK_FUZZ_REPLAY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Generic mutations of a seed: bit flips, byte values, truncation, splices, insertions.
fn mutate(rng: &mut Rng, seed: &[u8], seeds: &[(String, Vec<u8>)], hot: &[usize]) -> Vec<u8> {
    let mut out = seed.to_vec();
    let position = |rng: &mut Rng, len: usize| {
        if !hot.is_empty() && rng.chance(2) {
            // Somewhere inside a structure rather than in padding.
            (hot[rng.below(hot.len())] + rng.below(64)).min(len.saturating_sub(1))
        } else {
            rng.below(len)
        }
    };
    for _ in 0..1 + rng.below(3) {
        match rng.below(7) {
            0 | 1 if !out.is_empty() => {
                let at = position(rng, out.len());
                out[at] ^= 1 << rng.below(8);
            }
            2 if !out.is_empty() => {
                let at = position(rng, out.len());
                out[at] = [0, 0xff, 0x80, 0x7f, 0x40, 1][rng.below(6)];
            }
            3 => {
                let keep = rng.below(out.len() + 1);
                out.truncate(keep);
            }
            4 => {
                let (_, other) = &seeds[rng.below(seeds.len())];
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            5 => {
                let at = rng.below(out.len() + 1);
                let max = if rng.chance(2) { 8 } else { 128 };
                let len = 1 + rng.below(max);
                let junk = rng.bytes(len);
                out.splice(at..at, junk);
            }
            _ if !out.is_empty() => {
                let at = rng.below(out.len());
                let len = (1 + rng.below(64)).min(out.len() - at);
                out.drain(at..at + len);
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

/// Runs the committed seeds of `target` and `count` mutations of them, plus `random` inputs
/// of random bytes up to `max_len` long.
fn random_inputs(target: &str, seed: u64, count: usize, random: usize, max_len: usize) {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "no corpus for {target}");
    let mut rng = Rng::new(seed);
    for i in 0..count * scale() {
        let (name, base) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, &seeds, &[]);
        run(
            target,
            &input,
            &format!("mutation {i} of {name} (rng seed {seed})"),
        );
    }
    for i in 0..random * scale() {
        let len = rng.below(max_len + 1);
        let input = rng.bytes(len);
        run(
            target,
            &input,
            &format!("random input {i} (rng seed {seed})"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Structure-aware mutation of packs: change a field of a checksummed structure and fix the
// checksum, so that the damage gets past the CRCs the way a hostile file would.

#[derive(Debug, Clone, Copy)]
enum Structure {
    Slot(usize),
    Record(usize),
    IndexEntry(usize),
    /// The payload of the index root record at this offset (its checksum is in the header).
    RootPayload(usize),
}

impl Structure {
    fn at(self) -> usize {
        match self {
            Structure::Slot(at)
            | Structure::Record(at)
            | Structure::IndexEntry(at)
            | Structure::RootPayload(at) => at,
        }
    }
}

fn structures(pack: &[u8]) -> Vec<Structure> {
    let mut found: Vec<Structure> = SLOT_OFFSETS
        .iter()
        .filter(|&&at| at as usize + SLOT_LEN <= pack.len())
        .map(|&at| Structure::Slot(at as usize))
        .collect();
    let mut at = DATA_START as usize;
    while at + 64 <= pack.len() {
        if let Ok((header, _)) = RecordHeader::decode(&pack[at..]) {
            found.push(Structure::Record(at));
            let payload_end = at as u64 + 64 + header.payload_len;
            if header.kind == RecordKind::IndexRoot && payload_end <= pack.len() as u64 {
                found.push(Structure::RootPayload(at));
            }
        } else if IndexEntry::decode(&pack[at..at + ENTRY_LEN]).is_ok() {
            found.push(Structure::IndexEntry(at));
        }
        at += 64;
    }
    found
}

fn put(bytes: &mut [u8], at: usize, value: u64, width: usize) {
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

fn resign(pack: &mut [u8], structure: Structure) {
    let crc = |bytes: &[u8]| crc32fast::hash(bytes) as u64;
    match structure {
        Structure::Slot(at) | Structure::IndexEntry(at) => {
            let sum = crc(&pack[at..at + 60]);
            put(pack, at + 60, sum, 4);
        }
        Structure::RootPayload(at) => {
            let len = u64::from_le_bytes(pack[at + 40..at + 48].try_into().unwrap());
            // An earlier mutation may have made the length absurd: then only the header.
            if let Some(payload) = usize::try_from(len)
                .ok()
                .and_then(|len| pack.get(at + 64..(at + 64).checked_add(len)?))
            {
                let sum = crc(payload);
                put(pack, at + 48, sum, 4);
            }
            resign(pack, Structure::Record(at));
        }
        Structure::Record(at) => {
            let label_len = u16::from_le_bytes([pack[at + 6], pack[at + 7]]) as usize;
            let label_end = (at + 64 + label_len).min(pack.len());
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&pack[at..at + 60]);
            hasher.update(&pack[at + 64..label_end]);
            let sum = u64::from(hasher.finalize());
            put(pack, at + 60, sum, 4);
        }
    }
}

fn mutate_structure(rng: &mut Rng, seed: &[u8], found: &[Structure]) -> Vec<u8> {
    if found.is_empty() {
        return mutate(rng, seed, &[(String::new(), seed.to_vec())], &[]);
    }
    let mut out = seed.to_vec();
    let near: Vec<u64> = found
        .iter()
        .map(|s| s.at() as u64)
        .chain([seed.len() as u64, DATA_START])
        .collect();
    for _ in 0..1 + rng.below(2) {
        let structure = found[rng.below(found.len())];
        let (at, fields): (usize, &[(usize, usize)]) = match structure {
            // generation, committed_len, root_offset, flags
            Structure::Slot(at) => (at, &[(8, 8), (16, 8), (24, 8), (4, 4)]),
            // kind, label_len, key, payload_len, payload_crc
            Structure::Record(at) => (at, &[(4, 1), (6, 2), (8, 8), (40, 8), (48, 4)]),
            // key, record_offset, payload_len, payload_crc, label_len, kind
            Structure::IndexEntry(at) => {
                (at, &[(0, 8), (32, 8), (40, 8), (48, 4), (52, 2), (54, 1)])
            }
            // totals, block count, the first block references (offset, count)
            Structure::RootPayload(at) => (
                at + 64,
                &[
                    (0, 8),
                    (8, 8),
                    (16, 8),
                    (24, 8),
                    (32, 4),
                    (40, 8),
                    (48, 8),
                    (56, 8),
                    (64, 8),
                ],
            ),
        };
        if matches!(structure, Structure::RootPayload(_)) {
            let len = u64::from_le_bytes(out[at - 24..at - 16].try_into().unwrap());
            let (offset, width) = fields[rng.below(fields.len())];
            if ((offset + width) as u64) <= len && at + offset + width <= out.len() {
                let value = rng.interesting(&near);
                put(&mut out, at + offset, value, width);
            }
            resign(&mut out, structure);
            continue;
        }
        let (offset, width) = fields[rng.below(fields.len())];
        let value = rng.interesting(&near);
        put(&mut out, at + offset, value, width);
        resign(&mut out, structure);
    }
    if rng.chance(4) {
        // Sometimes also a plain flip, or a cut.
        out = mutate(rng, &out, &[(String::new(), seed.to_vec())], &[]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn committed_corpora_replay() {
    for (target, _) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for (name, input) in files {
            run(target, &input, &format!("fuzz/corpus/{target}/{name}"));
        }
    }
}

#[test]
fn seeds_are_well_formed() {
    // Seeds that stopped decoding would leave the fuzzers and this test guessing from scratch.
    for (name, bytes) in corpus("open_pack") {
        if !name.starts_with("seed-") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.wpk");
        std::fs::write(&path, &bytes).unwrap();
        let pack = Pack::open_any(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = pack.verify().unwrap();
        assert!(report.is_ok(), "{name}: {:?}", report.problems());
        if name != "seed-empty" {
            assert!(!pack.is_empty().unwrap(), "{name}");
        }
    }
    for (name, bytes) in corpus("pack_ops") {
        assert!(!harness::decode_ops(&bytes).is_empty(), "{name}");
    }
    for (name, bytes) in corpus("decode_record") {
        if name.starts_with("seed-") {
            RecordHeader::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (name, bytes) in corpus("decode_signature") {
        if name.starts_with("seed-") {
            let record = SignatureRecord::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            record
                .check_sorted()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (name, bytes) in corpus("decode_identity") {
        if name.starts_with("seed-") {
            PackIdentity::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (name, bytes) in corpus("decode_index") {
        if name.starts_with("seed-block") {
            let (entries, _) = index::block_parts(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            for chunk in entries.chunks(ENTRY_LEN) {
                IndexEntry::decode(chunk).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        if name.starts_with("seed-root") {
            Root::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn open_pack_random() {
    let seeds = corpus("open_pack");
    let mut rng = Rng::new(1);
    let count = 1200 * scale();
    for i in 0..count {
        let (name, base) = &seeds[rng.below(seeds.len())];
        let found = structures(base);
        let input = if rng.chance(2) {
            mutate_structure(&mut rng, base, &found)
        } else {
            let hot: Vec<usize> = found.iter().map(|s| s.at()).collect();
            mutate(&mut rng, base, &seeds, &hot)
        };
        run(
            "open_pack",
            &input,
            &format!("mutation {i} of {name} (rng seed 1)"),
        );
    }
    random_inputs("open_pack", 2, 0, 200, 20_000);
}

#[test]
fn pack_ops_random() {
    // About 1 ms an input where /dev/shm makes syncs free: thousands in a few seconds.
    random_inputs("pack_ops", 3, 2000, 1000, 160);
}

#[test]
fn decode_superblock_random() {
    let seeds = corpus("decode_superblock");
    let mut rng = Rng::new(4);
    for i in 0..1000 * scale() {
        let (name, base) = &seeds[rng.below(seeds.len())];
        let input = if base.len() >= DATA_START as usize && rng.chance(2) {
            mutate_structure(&mut rng, base, &structures(&base[..DATA_START as usize]))
        } else {
            mutate(&mut rng, base, &seeds, &[8, 72, 4096, 8192, 136])
        };
        run(
            "decode_superblock",
            &input,
            &format!("mutation {i} of {name} (rng seed 4)"),
        );
    }
    random_inputs("decode_superblock", 5, 0, 2000, 400);
}

#[test]
fn decode_record_random() {
    random_inputs("decode_record", 6, 3000, 2000, 1200);
}

#[test]
fn decode_index_random() {
    random_inputs("decode_index", 7, 3000, 2000, 1500);
}

#[test]
fn decode_signature_random() {
    random_inputs("decode_signature", 9, 3000, 1000, 600);
}

#[test]
fn decode_identity_random() {
    random_inputs("decode_identity", 8, 3000, 2000, 300);
}

/// Found by `open_pack` (`fuzz/corpus/open_pack/regression-verify-once-shared-offset`): an
/// index entry whose label length was changed (its CRC fixed up) pointed at another entry's
/// payload, and under `Verify::Once` the first entry's check vouched for the second entry's
/// different checksum. A check now vouches only for the same offset, length and checksum.
#[test]
fn verify_once_vouches_only_for_the_entry_it_checked() {
    use crate::common::raw::{self, RootAt};
    use wasmpak::{ErrorKind, Verify};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.wpk");
    let value = b"0123456789abcdef";
    let (a, b, c) = (
        crate::common::key(1),
        crate::common::key(2),
        crate::common::key(3),
    );
    Pack::create(&path, &crate::common::identity())
        .unwrap()
        .insert(&a, value)
        .unwrap();
    let crc = crc32fast::hash(value);
    let entry = |key, payload_len, payload_crc| IndexEntry {
        key,
        record_offset: DATA_START,
        payload_len,
        payload_crc,
        label_len: 0,
        kind: EntryKind::Value,
    };
    // B: the same bytes with another checksum; C: more bytes with A's checksum.
    let mut entries = vec![entry(a, 16, crc), entry(b, 16, crc ^ 1), entry(c, 64, crc)];
    entries.sort_by_key(|e| e.key);
    let block = raw::record(
        RecordKind::IndexBlock,
        [0; 32],
        b"",
        &index::encode_block(&entries),
    );
    let root = Root {
        live_entries: 3,
        blocks: vec![BlockRef {
            offset: raw::live(&path).committed_len,
            count: 3,
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

    for policy in [Verify::Once, Verify::Always] {
        let pack = PackOptions::new()
            .verify(policy)
            .open(&path, &crate::common::identity())
            .unwrap();
        assert_eq!(
            pack.get(&a).unwrap().as_deref(),
            Some(&value[..]),
            "{policy:?}"
        );
        for (name, key) in [("b", b), ("c", c)] {
            let err = pack
                .get(&key)
                .expect_err(&format!("{policy:?}: get {name} must fail"));
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{policy:?}: {err}");
        }
        assert_eq!(
            pack.get(&a).unwrap().as_deref(),
            Some(&value[..]),
            "{policy:?}"
        );
    }
    let never = PackOptions::new()
        .verify(Verify::Never)
        .open(&path, &crate::common::identity())
        .unwrap();
    assert_eq!(
        never.get(&b).unwrap().as_deref(),
        Some(&value[..]),
        "Never trusts the index"
    );
}

/// Found by `open_pack` (`fuzz/corpus/open_pack/regression-generation-overflow`): a commit
/// slot at generation `u64::MAX` made the next commit wrap to generation 0 (a panic with
/// overflow checks), writing two invalid slots: the pack no longer opened. The write now fails
/// and the pack stays as it was. Totals in the root that would overflow saturate instead.
#[test]
fn a_commit_cannot_wrap_the_generation_or_the_totals() {
    use crate::common::raw::{self, RootAt};
    use wasmpak::ErrorKind;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrap.wpk");
    let pack = Pack::create(&path, &crate::common::identity()).unwrap();
    pack.insert(&crate::common::key(1), b"kept").unwrap();
    drop(pack);
    let live = raw::live(&path);
    raw::write_slots(
        &path,
        &CommitSlot {
            generation: u64::MAX,
            ..live
        },
    );
    let pack = Pack::open(&path, &crate::common::identity()).unwrap();
    let err = pack.insert(&crate::common::key(2), b"new").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("wrap.wpk"), "{err}");
    let reopened = Pack::open(&path, &crate::common::identity()).unwrap();
    assert_eq!(
        reopened.get(&crate::common::key(1)).unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(reopened.get(&crate::common::key(2)).unwrap(), None);

    // A root whose totals are at their maximum: the next commit saturates them.
    raw::write_slots(&path, &live);
    let pack = Pack::open(&path, &crate::common::identity()).unwrap();
    let root_at = live.root_offset;
    let bytes = std::fs::read(&path).unwrap();
    let (header, _) = RecordHeader::decode(&bytes[root_at as usize..]).unwrap();
    let payload_at = header.payload_offset(root_at).unwrap() as usize;
    let mut root =
        Root::decode(&bytes[payload_at..payload_at + header.payload_len as usize]).unwrap();
    root.live_entries = u64::MAX;
    root.live_payload_bytes = u64::MAX;
    root.live_record_bytes = u64::MAX;
    root.index_bytes = u64::MAX;
    let record = raw::record(RecordKind::IndexRoot, [0; 32], b"", &root.encode());
    raw::commit(&path, &record, RootAt::Relative(0));
    pack.insert(&crate::common::key(3), b"saturated").unwrap();
    let stats = pack.stats().unwrap();
    assert_eq!(stats.entries, u64::MAX);
    assert_eq!(stats.live_bytes, u64::MAX);
    assert_eq!(
        pack.get(&crate::common::key(3)).unwrap().as_deref(),
        Some(&b"saturated"[..])
    );
    assert_eq!(
        pack.get(&crate::common::key(1)).unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert!(pack.verify().unwrap().is_ok());
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn seed_identity() -> PackIdentity {
    PackIdentity::new()
        .with("engine", "fuzz-seed")
        .with("abi", 7u32)
        .with("target", "x86_64-unknown-linux-gnu")
}

fn seed_key(n: u64) -> Key {
    harness::op_key(n as u8 ^ 0x40)
}

/// A seed pack built by `build`, with synced commits: at rest both slots hold the last one.
fn build_pack(dir: &Path, name: &str, build: impl FnOnce(&Pack)) -> Vec<u8> {
    build_pack_with(dir, name, Durability::Full, build)
}

fn build_pack_with(
    dir: &Path,
    name: &str,
    durability: Durability,
    build: impl FnOnce(&Pack),
) -> Vec<u8> {
    let path = dir.join(name);
    let pack = PackOptions::new()
        .durability(durability)
        .create(&path, &seed_identity())
        .unwrap();
    build(&pack);
    drop(pack);
    std::fs::read(path).unwrap()
}

fn pack_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let empty = build_pack(dir, "empty", |_| {});
    let three = build_pack(dir, "three", |pack| {
        let mut batch = pack.batch();
        for i in 0..3 {
            batch
                .insert_with_label(
                    &seed_key(i),
                    &harness::op_value(i as u8, 40 + 30 * i as u16),
                    "module.wasm",
                )
                .unwrap();
        }
        batch.commit().unwrap();
        pack.insert(&seed_key(3), b"single").unwrap();
        pack.remove(&seed_key(1)).unwrap();
    });
    let blocks = build_pack(dir, "blocks", |pack| {
        for i in 0..12 {
            pack.insert(&seed_key(i), &harness::op_value(i as u8, 1 + 9 * i as u16))
                .unwrap();
        }
        pack.remove(&seed_key(5)).unwrap();
        pack.insert(&seed_key(2), b"overwritten").unwrap();
    });
    let batch = build_pack(dir, "batch", |pack| {
        let mut batch = pack.batch();
        for i in 0..40 {
            batch
                .insert(&seed_key(100 + i), &harness::op_value(i as u8, 16))
                .unwrap();
        }
        batch.commit().unwrap();
    });
    // A crashed writer's records after the last commit.
    let mut torn = three.clone();
    let committed = live(&three).committed_len as usize;
    let after = build_pack(dir, "torn", |pack| {
        let mut batch = pack.batch();
        for i in 0..3 {
            batch
                .insert_with_label(
                    &seed_key(i),
                    &harness::op_value(i as u8, 40 + 30 * i as u16),
                    "module.wasm",
                )
                .unwrap();
        }
        batch.commit().unwrap();
        pack.insert(&seed_key(3), b"single").unwrap();
        pack.remove(&seed_key(1)).unwrap();
        pack.insert(&seed_key(9), &[9; 100]).unwrap();
    });
    let data = DATA_START as usize;
    assert!(
        after[data..committed] == three[data..committed],
        "the same commits, the same bytes"
    );
    torn.extend_from_slice(&after[committed..after.len() - 100]);
    // Slot 1 lost: slot 0 alone holds the commit.
    let mut one_slot = blocks.clone();
    let s1 = SLOT_OFFSETS[1] as usize;
    one_slot[s1..s1 + SLOT_LEN].fill(0);
    // Unsynced commits: one slot holds the last synced commit, the other the newest unsynced
    // one, whose index blocks a reader checks before trusting it.
    let unsynced = build_pack_with(dir, "unsynced", Durability::None, |pack| {
        for i in 0..6 {
            pack.insert(
                &seed_key(20 + i),
                &harness::op_value(i as u8, 30 + 7 * i as u16),
            )
            .unwrap();
        }
        pack.remove(&seed_key(22)).unwrap();
    });
    // Signed by the key `open_pack` trusts, then one entry appended after signing.
    let signed = build_pack(dir, "signed", |pack| {
        let mut batch = pack.batch();
        for i in 0..4 {
            batch
                .insert_with_label(
                    &seed_key(i),
                    &harness::op_value(i as u8, 50 + 20 * i as u16),
                    &format!("m{i}.wasm"),
                )
                .unwrap();
        }
        batch.commit().unwrap();
        pack.sign(&harness::seed_signing_key()).unwrap();
        pack.insert_with_label(&seed_key(7), b"unsigned", "late.wasm")
            .unwrap();
    });
    // Signed naming a release (a version-2 record), then installed: sealed, with a seal
    // record naming the key it was verified with and the installed file.
    let installed = {
        let key = harness::seed_signing_key();
        let trusting = PackOptions::new().trusted_keys([key.public_key()]);
        let pack = trusting
            .create(dir.join("installed"), &seed_identity())
            .unwrap();
        for i in 0..2 {
            pack.insert_with_label(&seed_key(i), &harness::op_value(i as u8, 60), "m.wasm")
                .unwrap();
        }
        pack.sign_release(&key, 5).unwrap();
        let into = dir.join("installed-dir");
        std::fs::create_dir(&into).unwrap();
        let installed = pack.install_into(&into).unwrap();
        assert!(installed.is_sealed().unwrap());
        std::fs::read(installed.path()).unwrap()
    };
    vec![
        ("seed-signed", signed),
        ("seed-installed", installed),
        ("seed-empty", empty),
        ("seed-three", three),
        ("seed-blocks", blocks),
        ("seed-batch", batch),
        ("seed-torn-tail", torn),
        ("seed-one-slot", one_slot),
        ("seed-unsynced", unsynced),
    ]
}

fn live(pack: &[u8]) -> CommitSlot {
    let slot = |i: usize| &pack[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
    superblock::live_slot([slot(0), slot(1)], pack.len() as u64)
        .unwrap()
        .1
}

fn ops_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use Op::*;
    let basic = vec![
        Insert {
            k: 1,
            len: 100,
            seed: 1,
        },
        Insert {
            k: 2,
            len: 0,
            seed: 2,
        },
        Get { k: 1 },
        Remove { k: 1 },
        Insert {
            k: 2,
            len: 300,
            seed: 3,
        },
        Reopen,
        Get { k: 2 },
    ];
    let batches = vec![
        Batch {
            writes: vec![
                (1, Some((64, 1))),
                (2, Some((65, 2))),
                (1, None),
                (3, Some((1, 3))),
            ],
            commit: true,
        },
        SwitchHandle,
        Batch {
            writes: vec![(4, Some((10, 4))), (2, None)],
            commit: false,
        },
        Batch {
            writes: vec![(3, None), (3, Some((2000, 5)))],
            commit: true,
        },
        SwitchHandle,
        Remove { k: 2 },
    ];
    let crashes = vec![
        Insert {
            k: 0,
            len: 50,
            seed: 1,
        },
        CrashGarbage { len: 1000, seed: 9 },
        Insert {
            k: 1,
            len: 50,
            seed: 2,
        },
        CrashTornCommit {
            k: 2,
            len: 500,
            seed: 3,
            cut: 400,
        },
        Get { k: 2 },
        CrashTruncate { extra: 3 },
        Insert {
            k: 2,
            len: 70,
            seed: 4,
        },
        CrashTornCommit {
            k: 0,
            len: 10,
            seed: 5,
            cut: u16::MAX,
        },
        Reopen,
        Remove { k: 0 },
    ];
    let many: Vec<Op> = (0..20)
        .map(|i| Insert {
            k: i % harness::OP_KEYS,
            len: 10 * u16::from(i),
            seed: i,
        })
        .collect();
    let compactions = vec![
        Insert {
            k: 1,
            len: 100,
            seed: 1,
        },
        Insert {
            k: 2,
            len: 3000,
            seed: 2,
        },
        Remove { k: 1 },
        Compact { max_entries: None },
        Insert {
            k: 3,
            len: 10,
            seed: 3,
        },
        SwitchHandle,
        Insert {
            k: 4,
            len: 20,
            seed: 4,
        },
        CrashGarbage { len: 100, seed: 5 },
        Compact {
            max_entries: Some(1),
        },
        Get { k: 4 },
        Reopen,
        Compact {
            max_entries: Some(0),
        },
    ];
    vec![
        ("seed-basic", harness::encode_ops(&basic)),
        ("seed-batches", harness::encode_ops(&batches)),
        ("seed-crashes", harness::encode_ops(&crashes)),
        ("seed-many-commits", harness::encode_ops(&many)),
        ("seed-compactions", harness::encode_ops(&compactions)),
    ]
}

fn superblock_seeds(three: &[u8], installed: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let compact = |slots: [CommitSlot; 2], file_len: u64| {
        let mut out = file_len.to_le_bytes().to_vec();
        out.extend_from_slice(&slots[0].encode());
        out.extend_from_slice(&slots[1].encode());
        let identity = seed_identity().encode().unwrap();
        let page = superblock::encode_header(&identity);
        out.extend_from_slice(&page[..superblock::HEADER_FIXED_LEN + identity.len()]);
        out
    };
    let slot = |generation, committed_len, root_offset, superseded| CommitSlot {
        generation,
        committed_len,
        root_offset,
        superseded,
        publication: superblock::Publication::Synced,
        signature_offset: 0,
    };
    vec![
        ("seed-pack", three.to_vec()),
        ("seed-sealed", installed[..DATA_START as usize].to_vec()),
        (
            "seed-compact",
            compact(
                [
                    slot(5, DATA_START + 640, DATA_START + 512, false),
                    slot(4, DATA_START + 512, DATA_START + 448, false),
                ],
                DATA_START + 1024,
            ),
        ),
        (
            "seed-compact-superseded",
            compact(
                [
                    slot(1, DATA_START, 0, false),
                    slot(2, DATA_START + 64, 0, true),
                ],
                DATA_START + 64,
            ),
        ),
    ]
}

fn record_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let record = |kind, key: [u8; 32], label: &[u8], payload: &[u8]| {
        let header = RecordHeader::for_payload(kind, key, label.len() as u16, payload);
        let mut out = header.encode_with_label(label);
        out.extend_from_slice(payload);
        out
    };
    let root = Root {
        live_entries: 1,
        live_payload_bytes: 5,
        live_record_bytes: 128,
        index_bytes: 256,
        blocks: vec![BlockRef {
            offset: DATA_START + 128,
            count: 1,
        }],
    };
    vec![
        (
            "seed-entry",
            record(RecordKind::Entry, [7; 32], b"hello.wasm", b"value"),
        ),
        (
            "seed-tombstone",
            record(RecordKind::Tombstone, [8; 32], b"", b""),
        ),
        (
            "seed-block",
            record(RecordKind::IndexBlock, [0; 32], b"", &block_bytes(2, false)),
        ),
        (
            "seed-root",
            record(RecordKind::IndexRoot, [0; 32], b"", &root.encode()),
        ),
    ]
}

fn block_bytes(n: u64, with_tombstone: bool) -> Vec<u8> {
    let mut entries: Vec<IndexEntry> = (0..n)
        .map(|i| IndexEntry {
            key: seed_key(i),
            record_offset: DATA_START + 256 * i,
            payload_len: 100 + i,
            payload_crc: i as u32,
            label_len: (i % 3) as u16,
            kind: if with_tombstone && i % 4 == 1 {
                EntryKind::Tombstone
            } else {
                EntryKind::Value
            },
        })
        .collect();
    entries.sort_by_key(|e| e.key);
    index::encode_block(&entries)
}

fn index_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let root = Root {
        live_entries: 9,
        live_payload_bytes: 900,
        live_record_bytes: 2000,
        index_bytes: 1024,
        blocks: (0..3)
            .map(|i| BlockRef {
                offset: DATA_START + 4096 * i,
                count: 8 >> i,
            })
            .collect(),
    };
    vec![
        ("seed-block-1", block_bytes(1, false)),
        ("seed-block-9", block_bytes(9, true)),
        ("seed-block-24", block_bytes(24, false)),
        ("seed-root-3", root.encode()),
        ("seed-root-0", Root::default().encode()),
    ]
}

/// The payload of the newest signature record of a pack's bytes.
fn head_signature(pack: &[u8]) -> Vec<u8> {
    let offset = live(pack).signature_offset as usize;
    let (header, _) = RecordHeader::decode(&pack[offset..]).unwrap();
    let start = offset + HEADER_LEN as usize;
    pack[start..start + header.payload_len as usize].to_vec()
}

fn signature_seeds(signed_pack: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let entries: Vec<_> = (0..3)
        .map(|i| signature_format::ManifestEntry {
            key: seed_key(i),
            value_hash: [i as u8; 32],
            value_len: 100 * i,
            label: format!("module-{i}.wasm").into_bytes(),
        })
        .collect();
    let mut sorted = entries.clone();
    sorted.sort_by_key(|e| e.key);
    let header = |manifest: &[u8], count: usize| signature_format::SignatureHeader {
        signer: [3; 32],
        signature: [4; 64],
        generation: 7,
        signed_at: 1_700_000_000,
        release: 0,
        previous: DATA_START,
        entry_count: count as u32,
        labels_len: (manifest.len() - count * signature_format::MANIFEST_ENTRY_LEN) as u32,
        manifest_hash: *blake3::hash(manifest).as_bytes(),
    };
    let three = signature_format::encode_manifest(&sorted).unwrap();
    let released = signature_format::SignatureHeader {
        release: 20_250_611,
        ..header(&three, 3)
    };
    vec![
        ("seed-signed-pack", head_signature(signed_pack)),
        ("seed-release", signature_format::encode(&released, &three)),
        (
            "seed-three",
            signature_format::encode(&header(&three, 3), &three),
        ),
        ("seed-empty", signature_format::encode(&header(&[], 0), &[])),
    ]
}

fn identity_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let wasmer = PackIdentity::new()
        .with("engine", "cranelift-opts-3a7c1f")
        .with("format", "universal")
        .with("abi", 24u32)
        .with("target", "x86_64-unknown-linux-gnu")
        .with(
            "cpu",
            "avx,avx2,bmi1,bmi2,lzcnt,popcnt,sse3,sse4.1,sse4.2,ssse3",
        );
    vec![
        ("seed-empty", Vec::new()),
        ("seed-test", seed_identity().encode().unwrap()),
        ("seed-wasmer", wasmer.encode().unwrap()),
        (
            "seed-unicode",
            PackIdentity::new()
                .with("naïve", "ünïcødé ✓")
                .with("n", u64::MAX)
                .encode()
                .unwrap(),
        ),
    ]
}

/// Whether to write the generated seeds and crafted regressions into `fuzz/corpus` (after a
/// format change): `WASMPAK_WRITE_CORPORA=1`.
fn writing_corpora() -> bool {
    std::env::var_os("WASMPAK_WRITE_CORPORA").is_some_and(|v| v == "1")
}

/// The seed generators run and stay small; with `WASMPAK_WRITE_CORPORA=1` they rewrite the seed
/// files (`fuzz/corpus/<target>/seed-*`).
#[test]
fn the_seed_corpora_are_generated_small() {
    let packs = pack_seeds();
    let three = packs
        .iter()
        .find(|(n, _)| *n == "seed-three")
        .unwrap()
        .1
        .clone();
    let signed = packs
        .iter()
        .find(|(n, _)| *n == "seed-signed")
        .unwrap()
        .1
        .clone();
    let installed = packs
        .iter()
        .find(|(n, _)| *n == "seed-installed")
        .unwrap()
        .1
        .clone();
    let all = [
        ("decode_signature", signature_seeds(&signed)),
        ("open_pack", packs),
        ("pack_ops", ops_seeds()),
        ("decode_superblock", superblock_seeds(&three, &installed)),
        ("decode_record", record_seeds()),
        ("decode_index", index_seeds()),
        ("decode_identity", identity_seeds()),
    ];
    let mut total = 0;
    for (target, seeds) in all {
        assert!(!seeds.is_empty(), "{target} has seeds");
        total += seeds.iter().map(|(_, bytes)| bytes.len()).sum::<usize>();
        if writing_corpora() {
            write_seeds(target, seeds);
        }
    }
    assert!(total < 512 * 1024, "the seed corpora are {total} bytes");
    println!("{total} bytes of seeds");
}

/// Replaces the seed files of `target` with `seeds`.
fn write_seeds(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A pack whose newest index block holds valid entries out of order (each entry's CRC is
/// fine, so only sorting can tell); a single insert merges into that block.
fn pack_with_unsorted_block(path: &Path) -> Vec<Key> {
    use crate::common::raw::{self, RootAt};
    let pack = Pack::create(path, &crate::common::identity()).unwrap();
    let keys: Vec<Key> = (1..=2).map(crate::common::key).collect();
    let mut entries = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let v = vec![i as u8; 10];
        let at = raw::live(path).committed_len;
        pack.insert(k, &v).unwrap();
        entries.push(IndexEntry {
            key: *k,
            record_offset: at,
            payload_len: 10,
            payload_crc: crc32fast::hash(&v),
            label_len: 0,
            kind: EntryKind::Value,
        });
    }
    drop(pack);
    entries.sort_by_key(|e| std::cmp::Reverse(e.key));
    // The block layout (entries, then their key prefixes), in the wrong order.
    let mut payload: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    for e in &entries {
        payload.extend_from_slice(&e.key.as_bytes()[..index::PREFIX_LEN]);
    }
    let at = raw::live(path).committed_len;
    let block = raw::record(RecordKind::IndexBlock, [0; 32], b"", &payload);
    let root = Root {
        live_entries: 2,
        blocks: vec![BlockRef {
            offset: at,
            count: 2,
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
    raw::commit(path, &bytes, RootAt::Relative(block.len() as u64));
    keys
}

/// Found with the `open_pack` write check (`fuzz/corpus/open_pack/regression-unsorted-block`,
/// which `WASMPAK_WRITE_CORPORA=1` rewrites):
/// merging an index block whose entries are valid but out of order produced a new block out
/// of order (a `debug_assert!` panic in `encode_block`, and in release builds a block whose
/// keys a lookup can miss), so one damaged block spread into every later one. The writer now
/// sorts what it salvages from a block before merging.
#[test]
fn merging_an_unsorted_block_sorts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unsorted.wpk");
    let old = pack_with_unsorted_block(&path);
    if writing_corpora() {
        let target = corpus_dir("open_pack").join("regression-unsorted-block");
        std::fs::copy(&path, target).unwrap();
    }
    let pack = Pack::open(&path, &crate::common::identity()).unwrap();
    let committed = pack.stats().unwrap().committed_len;
    assert!(
        !pack.verify().unwrap().is_ok(),
        "the crafted block is caught by verify"
    );
    let mut written = Vec::new();
    for n in 10..60 {
        pack.insert(&crate::common::key(n), &crate::common::value(n, 20))
            .unwrap();
        written.push(n);
        for &m in &written {
            assert_eq!(
                pack.get(&crate::common::key(m)).unwrap().as_deref(),
                Some(&crate::common::value(m, 20)[..]),
                "key {m} after inserting {n}"
            );
        }
    }
    for (i, k) in old.iter().enumerate() {
        assert_eq!(pack.get(k).unwrap().as_deref(), Some(&[i as u8; 10][..]));
    }
    let report = pack.verify().unwrap();
    assert!(
        report.is_ok(),
        "the merged blocks are sorted: {:?}",
        report.problems()
    );
    assert!(pack.stats().unwrap().committed_len > committed);
}

/// Packs written before commit slots recorded whether they were synced (`durable_len`, in bytes
/// version 1 reserved as zero) still open, read the same, and take both kinds of commits.
/// `fuzz/corpus/open_pack/regression-v1-unsynced-mirrored` is `seed-three` as that code wrote
/// it, with `Durability::None`: both slots mirrored.
#[test]
fn packs_written_before_durable_len_open_and_take_commits() {
    let bytes =
        std::fs::read(corpus_dir("open_pack").join("regression-v1-unsynced-mirrored")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.wpk");
    std::fs::write(&path, &bytes).unwrap();
    let slots =
        [0, 1].map(|i| CommitSlot::decode(&bytes[SLOT_OFFSETS[i] as usize..][..SLOT_LEN]).unwrap());
    assert_eq!(slots[0], slots[1], "mirrored");
    assert_eq!(slots[0].publication, superblock::Publication::Synced);
    let expect = |pack: &Pack| {
        assert_eq!(
            pack.get(&seed_key(0)).unwrap().as_deref(),
            Some(&harness::op_value(0, 40)[..])
        );
        assert_eq!(pack.get(&seed_key(1)).unwrap(), None);
        assert_eq!(
            pack.get(&seed_key(3)).unwrap().as_deref(),
            Some(&b"single"[..])
        );
    };
    for durability in [Durability::None, Durability::Full] {
        let pack = PackOptions::new()
            .durability(durability)
            .open(&path, &seed_identity())
            .unwrap();
        expect(&pack);
        pack.insert(&seed_key(50), format!("{durability:?}").as_bytes())
            .unwrap();
        let fresh = Pack::open(&path, &seed_identity()).unwrap();
        expect(&fresh);
        assert_eq!(
            fresh.get(&seed_key(50)).unwrap().as_deref(),
            Some(format!("{durability:?}").as_bytes())
        );
        assert!(fresh.verify().unwrap().is_ok());
    }
}

//! The fuzz harness: one plain function per fuzz target, each taking arbitrary bytes.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the regular test
//! `tests/fuzz_replay.rs`, which replays the committed corpora and deterministic random inputs
//! through the same functions, so `cargo test` covers the parsers without cargo-fuzz.
//!
//! Nothing here knows the truth about arbitrary bytes, so the checks are of internal
//! consistency: decoders agree with encoders, every read path agrees with every other read
//! path and with an independent scan of the input, every value handed out passed its checksum,
//! and a write to a pack that opened either fails cleanly or reads back byte-identical.
//! A panic is a finding.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use wasmpak::format::ALIGN;
use wasmpak::format::identity::MAX_IDENTITY_LEN;
use wasmpak::format::index::{
    self, BLOCK_REF_LEN, BLOCK_STRIDE, ENTRY_LEN, EntryKind, IndexEntry, MAX_BLOCKS, PREFIX_LEN,
    ROOT_FIXED_LEN, Root,
};
use wasmpak::format::record::{HEADER_LEN, MAX_LABEL_LEN, RecordHeader, RecordKind};
use wasmpak::format::seal::{MAX_SEAL_KEYS, SEAL_AT, SEAL_FIXED_LEN, Seal};
use wasmpak::format::signature::{self as signature_format, ManifestEntry, SignatureRecord};
use wasmpak::format::superblock::{
    self, CommitSlot, DATA_START, HeaderError, PAGE, Publication, SLOT_LEN, SLOT_OFFSETS,
};
use wasmpak::format::{object, snapshot};
use wasmpak::{
    Durability, Error, ErrorKind, Key, Pack, PackIdentity, PackOptions, Retention, SecretKey,
    SignatureStatus, Verify,
};

/// The fleet tier's pure decoders, on the same bytes as `decode_record`: module objects, and
/// the root, block and entry records a delta pull reads from ranges of a remote pack.
fn fleet_decoders(data: &[u8]) {
    if let Ok(decoded) = object::decode(data) {
        let again = object::encode(decoded.identity, &decoded.key, decoded.value);
        assert_eq!(again, data, "a module object re-encodes differently");
        assert_eq!(decoded.value_offset as u64 % ALIGN, 0);
    }
    let Ok((header, _)) = RecordHeader::decode(data) else {
        return;
    };
    let commit = CommitSlot {
        generation: 1,
        committed_len: DATA_START + (data.len() as u64).next_multiple_of(ALIGN),
        root_offset: DATA_START,
        superseded: false,
        publication: Publication::Synced,
        signature_offset: 0,
    };
    if let Ok(root) = snapshot::decode_root(data, &commit) {
        assert!(root.blocks.len() <= MAX_BLOCKS);
        for block in &root.blocks {
            let range = snapshot::block_range(block, &commit).expect("checked by decode_root");
            assert!(range.end <= commit.committed_len && range.start >= DATA_START);
        }
    }
    let count = header.payload_len / BLOCK_STRIDE as u64;
    if let Ok(entries) = snapshot::decode_block(data, count) {
        assert_eq!(entries.len() as u64, count);
        assert!(entries.windows(2).all(|w| w[0].key < w[1].key));
        let live = snapshot::live_values(&[entries]);
        assert!(live.iter().all(|e| e.kind == EntryKind::Value));
    }
    let entry = IndexEntry {
        key: Key::from_bytes(header.key),
        record_offset: DATA_START,
        payload_len: header.payload_len,
        payload_crc: header.payload_crc,
        label_len: header.label_len,
        kind: EntryKind::Value,
    };
    if let Ok((label, value)) = snapshot::decode_entry(data, &entry) {
        assert_eq!(label.len(), usize::from(header.label_len));
        assert_eq!(value.len() as u64, header.payload_len);
        assert_eq!(crc32fast::hash(value), header.payload_crc);
        let range = snapshot::entry_range(&entry, &commit).expect("a decoded entry fits");
        assert!(range.end - range.start <= data.len() as u64 + ALIGN);
    }
}

/// A fuzz target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call it.
pub const TARGETS: [Target; 7] = [
    ("open_pack", open_pack),
    ("pack_ops", pack_ops),
    ("decode_superblock", decode_superblock),
    ("decode_record", decode_record),
    ("decode_index", decode_index),
    ("decode_identity", decode_identity),
    ("decode_signature", decode_signature),
];

/// The key the signed seed packs are signed with, and that `open_pack` trusts: fixed, so that
/// the fuzzer can reach the trusted path from the committed seeds.
pub const SEED_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDCMYXEzk5tfFv50Pj9UgR5XF12Ot0p8BtOlf3z0wSE0
-----END PRIVATE KEY-----
";

/// The key signed seed packs are signed with.
pub fn seed_signing_key() -> SecretKey {
    SecretKey::from_pem(SEED_SIGNING_KEY).expect("the seed signing key parses")
}

/// Inputs to the pack targets larger than this are skipped, to bound the work per input.
pub const MAX_PACK_INPUT: usize = 1 << 20;

/// The file name every pack target writes its pack under (error messages must name it).
const PACK_NAME: &str = "input.wpk";

thread_local! {
    /// One scratch directory per thread, reused for every input: creating a directory per
    /// input would dominate the cost of small inputs. In memory where the system has one
    /// (`/dev/shm`), where the packs' syncs cost nothing.
    static SCRATCH: tempfile::TempDir = {
        let builder = tempfile::Builder::new().prefix("wasmpak-fuzz-").clone();
        let shm = Path::new("/dev/shm");
        match shm.is_dir().then(|| builder.tempdir_in(shm)) {
            Some(Ok(dir)) => dir,
            _ => builder.tempdir().expect("a scratch directory"),
        }
    };
}

/// Runs `f` with this thread's scratch directory, emptied first.
fn with_scratch<R>(f: impl FnOnce(&Path) -> R) -> R {
    SCRATCH.with(|dir| {
        for entry in std::fs::read_dir(dir.path()).expect("read the scratch directory") {
            let path = entry.expect("a scratch entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("clean the scratch directory");
            } else {
                std::fs::remove_file(&path).expect("clean the scratch directory");
            }
        }
        f(dir.path())
    })
}

fn options(verify: Verify) -> PackOptions {
    PackOptions::new()
        .verify(verify)
        .durability(Durability::None)
}

/// Both commit slots of a file's bytes, decoded independently of the store.
fn decoded_slots(bytes: &[u8]) -> [Option<CommitSlot>; 2] {
    let slot = |i: usize| {
        let at = SLOT_OFFSETS[i] as usize;
        bytes.get(at..at + SLOT_LEN).unwrap_or_default()
    };
    superblock::decode_slots([slot(0), slot(1)], bytes.len() as u64).map(Result::ok)
}

/// The live commit of a file's bytes, decoded independently of the store.
fn live_commit(bytes: &[u8]) -> Option<CommitSlot> {
    let slot = |i: usize| {
        let at = SLOT_OFFSETS[i] as usize;
        bytes.get(at..at + SLOT_LEN).unwrap_or_default()
    };
    superblock::live_slot([slot(0), slot(1)], bytes.len() as u64)
        .ok()
        .map(|(_, slot)| slot)
}

/// The commit a pack that opened reads: the newest valid slot, or the older one when the
/// newest was published unsynced and did not check out (FORMAT.md 4.3).
fn opened_commit(bytes: &[u8], newest: CommitSlot, generation: u64) -> CommitSlot {
    if generation == newest.generation {
        return newest;
    }
    assert!(
        matches!(newest.publication, superblock::Publication::Unsynced { .. }),
        "the pack opened at generation {generation}, not at its newest synced commit {newest:?}"
    );
    decoded_slots(bytes)
        .into_iter()
        .flatten()
        .find(|slot| slot.generation == generation && slot.generation < newest.generation)
        .unwrap_or_else(|| panic!("the pack opened at generation {generation}, in no slot"))
}

fn assert_names_pack(err: &Error, context: &str) {
    let text = err.to_string();
    assert!(
        text.contains(PACK_NAME),
        "{context}: the error does not name the pack: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// open_pack

/// Arbitrary bytes as a pack file: open it, read it every way there is, then write to it.
pub fn open_pack(data: &[u8]) {
    if data.len() > MAX_PACK_INPUT {
        return;
    }
    with_scratch(|dir| {
        let path = dir.join(PACK_NAME);
        std::fs::write(&path, data).expect("write the input pack");
        check_signed_reads(&path);
        check_installed_open(&path, data);
        check_pack_file(&path, data);
    });
}

/// Reads through a handle that trusts the seed signing key: everything it hands out is
/// listed, with the BLAKE3 hash of exactly those bytes, by a signature of that key that checks
/// out, and is what a plain, always-checking handle reads too.
fn check_signed_reads(path: &Path) {
    let public = seed_signing_key().public_key();
    let Ok(signed) = options(Verify::Once).trusted_keys([public]).open_any(path) else {
        return;
    };
    let Ok(plain) = options(Verify::Always).open_any(path) else {
        panic!("a pack opened with trusted keys but not without");
    };
    let listed: Vec<Key> = plain
        .iter()
        .map(|entries| entries.map(|e| *e.key()).collect())
        .unwrap_or_default();
    let signatures = signed.signatures().ok();
    let _ = signed.verify_signatures(&[public]);
    for key in candidate_keys(&std::fs::read(path).unwrap_or_default(), &listed) {
        for _ in 0..2 {
            match signed.get(&key) {
                Ok(Some(value)) => {
                    let hash = *blake3::hash(&value).as_bytes();
                    let vouched = signatures.as_ref().is_some_and(|all| {
                        all.iter().any(|s| {
                            *s.status() == SignatureStatus::Trusted
                                && s.find(&key).is_some_and(|e| e.hash == hash)
                        })
                    });
                    assert!(vouched, "{key}: a value no trusted signature vouches for");
                    if let Ok(Some(again)) = plain.get(&key) {
                        assert_eq!(again, value, "{key}: read differently without keys");
                    }
                }
                Ok(None) => {}
                Err(err) => assert_names_pack(&err, "signed get"),
            }
        }
    }
}

/// The installed fast path: a pack opens on it (without keys, read-only) only if its seal
/// names this very file, which no input can, as the file is new; with keys, what it hands out
/// is what a trusted signature vouches for, as on any path.
fn check_installed_open(path: &Path, data: &[u8]) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = |m: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(m));
    if mode(0o444).is_err() {
        return;
    }
    // SAFETY: nothing writes the input file while these handles live (it is read-only).
    let installed = unsafe { options(Verify::Once).trust_installed() };
    if let Ok(pack) = installed.clone().open_any(path) {
        let meta = std::fs::metadata(path).expect("the input file");
        let seal = data
            .get(SEAL_AT as usize..)
            .and_then(|bytes| Seal::decode(bytes).ok().flatten())
            .expect("a pack opened on the installed fast path without a seal");
        assert_eq!(
            seal.inode,
            meta.ino(),
            "a seal for another file was accepted"
        );
        drop(pack);
    }
    let public = seed_signing_key().public_key();
    if let Ok(signed) = installed.trusted_keys([public]).open_any(path) {
        let listed: Vec<Key> = signed
            .iter()
            .map(|entries| entries.map(|e| *e.key()).collect())
            .unwrap_or_default();
        let signatures = signed.signatures().ok();
        for key in listed {
            if let Ok(Some(value)) = signed.get(&key) {
                let hash = *blake3::hash(&value).as_bytes();
                let vouched = signatures.as_ref().is_some_and(|all| {
                    all.iter().any(|s| {
                        *s.status() == SignatureStatus::Trusted
                            && s.find(&key).is_some_and(|e| e.hash == hash)
                    })
                });
                assert!(
                    vouched,
                    "{key}: an unsealed copy handed out unvouched bytes"
                );
            }
        }
    }
    mode(0o644).expect("the input file's mode is restored");
}

/// The index entries found anywhere in the input, by key: an independent scan that every
/// value the store hands out must be explained by.
struct EntryScan(HashMap<Key, Vec<IndexEntry>>);

impl EntryScan {
    fn new(data: &[u8], committed_len: u64) -> EntryScan {
        let mut found: HashMap<Key, Vec<IndexEntry>> = HashMap::new();
        let end = (committed_len as usize).min(data.len());
        let mut at = DATA_START as usize;
        while at + ENTRY_LEN <= end {
            if let Ok(entry) = IndexEntry::decode(&data[at..at + ENTRY_LEN])
                && entry.kind == EntryKind::Value
            {
                found.entry(entry.key).or_default().push(entry);
            }
            at += ENTRY_LEN;
        }
        EntryScan(found)
    }

    /// Whether some committed index entry for `key` points at exactly `value`, and (when
    /// `checksummed`) has its checksum.
    fn explains(
        &self,
        data: &[u8],
        committed_len: u64,
        key: &Key,
        value: &[u8],
        checksummed: bool,
    ) -> bool {
        let crc = crc32fast::hash(value);
        self.0.get(key).is_some_and(|entries| {
            entries.iter().any(|e| {
                let (Some(start), Some(end)) = (e.payload_offset(), e.payload_end()) else {
                    return false;
                };
                e.record_offset >= DATA_START
                    && end <= committed_len
                    && e.payload_len == value.len() as u64
                    && (!checksummed || e.payload_crc == crc)
                    && data.get(start as usize..end as usize) == Some(value)
            })
        })
    }
}

/// Keys worth asking for: the ones the pack lists, and 32-byte windows of the input where an
/// index entry or a record header would keep its key.
fn candidate_keys(data: &[u8], listed: &[Key]) -> Vec<Key> {
    let mut keys: Vec<Key> = listed.iter().take(256).copied().collect();
    let mut at = DATA_START as usize;
    let mut windows = 0;
    while at + 40 <= data.len() && windows < 32 {
        for start in [at, at + 8] {
            let mut key = [0u8; 32];
            key.copy_from_slice(&data[start..start + 32]);
            if key != [0; 32] {
                keys.push(Key::from_bytes(key));
                windows += 1;
            }
        }
        at += 64;
    }
    keys.push(Key::from_bytes([0; 32]));
    keys.push(Key::from_bytes([0xff; 32]));
    keys.sort();
    keys.dedup();
    keys
}

fn check_pack_file(path: &Path, data: &[u8]) {
    // What an independent decoding of the superblock says about the file.
    let header = superblock::decode_header(&data[..data.len().min(PAGE as usize)]);
    let commit = live_commit(data);

    let always = match options(Verify::Always).open_any(path) {
        Ok(pack) => pack,
        Err(err) => {
            assert_names_pack(&err, "open");
            let expected = match &header {
                Err(HeaderError::NotAPack(_)) => ErrorKind::NotAPack,
                Err(HeaderError::UnsupportedVersion(_)) => ErrorKind::UnsupportedVersion,
                Err(HeaderError::Corrupt(_)) | Ok(_) => ErrorKind::Corrupt,
            };
            assert_eq!(
                err.kind(),
                expected,
                "open failed with the wrong kind: {err}"
            );
            if let (Ok(h), Some(commit)) = (&header, commit) {
                // A good header, identity and slot: only the index can be wrong, and an
                // empty pack has none.
                assert!(
                    commit.root_offset != 0 || PackIdentity::decode(&h.identity).is_err(),
                    "an empty pack with a valid superblock failed to open: {err}"
                );
            }
            return;
        }
    };
    let header = header.expect("the pack opened, so its header decodes");
    let newest = commit.expect("the pack opened, so it has a live commit");
    assert!(data.len() as u64 >= DATA_START);
    assert_eq!(
        always.identity(),
        &PackIdentity::decode(&header.identity).expect("the identity decodes")
    );
    let never = options(Verify::Never)
        .open_any(path)
        .expect("a second handle opens the same file");
    let once = options(Verify::Once)
        .open_any(path)
        .expect("a third handle opens the same file");

    let stats = always.stats().expect("stats of an open pack");
    let commit = opened_commit(data, newest, stats.generation);
    assert_eq!(stats.generation, commit.generation);
    assert_eq!(stats.committed_len, commit.committed_len);
    assert_eq!(stats.file_size, data.len() as u64);
    assert!(stats.committed_len <= stats.file_size);
    assert!(stats.index_blocks <= MAX_BLOCKS);
    assert_eq!(always.len().expect("len"), stats.entries);
    assert_eq!(never.stats().expect("stats").generation, commit.generation);

    let report = always
        .verify()
        .expect("verify of an open pack reports, not fails");
    for problem in report.problems() {
        assert!(!problem.to_string().is_empty());
    }
    let clean = report.is_ok();
    let listed = always.keys();
    let entries = always.iter().map(|it| it.collect::<Vec<_>>());
    if clean {
        let listed = listed.as_ref().expect("a clean pack lists its keys");
        let entries = entries.as_ref().expect("a clean pack lists its entries");
        assert_eq!(report.entries(), listed.len() as u64);
        assert_eq!(
            report.bytes(),
            entries.iter().map(|e| e.size()).sum::<u64>()
        );
    }
    if let (Ok(listed), Ok(entries)) = (&listed, &entries) {
        assert_eq!(
            &entries.iter().map(|e| *e.key()).collect::<Vec<_>>(),
            listed,
            "iter and keys disagree"
        );
    }
    if let Ok(entries) = &entries {
        assert!(entries.windows(2).all(|w| w[0].key() < w[1].key()));
        for e in entries {
            assert_eq!(e.offset() % ALIGN, 0);
            assert!(e.offset() + e.size() <= commit.committed_len);
        }
    }
    let by_key: BTreeMap<Key, (u64, u64)> = entries
        .as_ref()
        .map(|es| {
            es.iter()
                .map(|e| (*e.key(), (e.offset(), e.size())))
                .collect()
        })
        .unwrap_or_default();

    let listed_keys = listed.as_deref().unwrap_or_default();
    let mut scan: Option<EntryScan> = None;
    let mut values: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    for key in candidate_keys(data, listed_keys) {
        let a = always.get(&key);
        let n = never.get(&key);
        let o = once.get(&key);
        let c = always.contains(&key);
        for result in [&a, &n, &o] {
            if let Err(err) = result {
                assert_eq!(err.kind(), ErrorKind::Corrupt, "get {key}: {err}");
                assert_names_pack(err, "get");
            }
        }
        // The lookup is the same for every policy; only the checksum check differs.
        assert_eq!(
            matches!(a, Ok(None)),
            matches!(n, Ok(None)),
            "get {key}: {a:?} under Verify::Always, {n:?} under Verify::Never"
        );
        if let Ok(Some(v)) = &n {
            assert_eq!(c.as_ref().ok(), Some(&true), "contains {key}");
            let scan = scan.get_or_insert_with(|| EntryScan::new(data, commit.committed_len));
            assert!(
                scan.explains(data, commit.committed_len, &key, v, false),
                "get {key} returned {} bytes no index entry points at",
                v.len()
            );
        }
        if matches!(n, Ok(None)) {
            assert_eq!(c.as_ref().ok(), Some(&false), "contains {key}");
        }
        match &a {
            Ok(Some(v)) => {
                let scan = scan.get_or_insert_with(|| EntryScan::new(data, commit.committed_len));
                assert!(
                    scan.explains(data, commit.committed_len, &key, v, true),
                    "get {key} under Verify::Always returned a value that failed its checksum"
                );
                for (policy, other) in [("Never", &n), ("Once", &o)] {
                    match other {
                        Ok(Some(w)) => assert_eq!(w, v, "get {key} under Verify::{policy}"),
                        other => panic!("get {key}: Always found a value, {policy} {other:?}"),
                    }
                }
                if let Some(&(offset, size)) = by_key.get(&key) {
                    assert_eq!(size, v.len() as u64, "iter size of {key}");
                    assert_eq!(
                        &data[offset as usize..(offset + size) as usize],
                        &v[..],
                        "iter offset of {key}"
                    );
                }
                values.insert(key, v.to_vec());
            }
            Err(_) => {
                // A value that fails its checksum is never handed out, whatever the policy
                // says, unless the policy is to trust it.
                assert!(
                    o.is_err(),
                    "get {key}: Verify::Always failed ({a:?}) but Verify::Once returned {o:?}"
                );
            }
            Ok(None) => {}
        }
        if clean {
            let present = listed_keys.contains(&key);
            assert_eq!(
                a.as_ref().ok().map(Option::is_some),
                Some(present),
                "a clean pack: get {key} is {a:?} but keys() {} it",
                if present { "lists" } else { "does not list" }
            );
        }
    }

    let clean = clean.then_some((listed_keys, &values));
    check_write(path, data, &always, clean);
}

/// What a pack that verified clean lists, and the values read from it.
type CleanPack<'a> = (&'a [Key], &'a BTreeMap<Key, Vec<u8>>);

/// A write to a pack that opened: it either fails with a clean error and changes nothing
/// visible, or reads back byte-identical from a fresh handle. On a pack that verified clean,
/// every other value also survives.
fn check_write(path: &Path, data: &[u8], pack: &Pack, clean: Option<CleanPack<'_>>) {
    let before = pack.keys().ok();
    let existing = before.as_deref().unwrap_or_default();
    let key = match data.first() {
        Some(b) if b & 1 == 1 && !existing.is_empty() => existing[data.len() % existing.len()],
        _ => Key::from_bytes([0x5a; 32]),
    };
    let value: Vec<u8> = data.iter().rev().take(200).copied().collect();
    let committed_before = pack.stats().expect("stats").committed_len;
    let result = pack.insert_with_label(&key, &value, "fuzz");
    let reopened = options(Verify::Always)
        .open_any(path)
        .expect("a pack that opened still opens after a write attempt");
    match result {
        Ok(()) => {
            // Whatever was wrong before, no index structure the write appended is wrong: a
            // writer does not copy damage into new structures. (Problems with a key are about
            // the records old entries point at, wherever those claim to be.)
            let report = reopened.verify().expect("verify after a write");
            for problem in report.problems().iter().filter(|p| p.key().is_none()) {
                assert!(
                    problem.offset() < committed_before,
                    "the write produced a damaged structure: {problem}"
                );
            }
            for (name, handle) in [("the writer", pack), ("a fresh handle", &reopened)] {
                let got = handle
                    .get(&key)
                    .unwrap_or_else(|e| panic!("{name}: reading back a write failed: {e}"));
                assert_eq!(
                    got.as_deref(),
                    Some(&value[..]),
                    "{name}: a committed write does not read back"
                );
            }
            if let Some((listed, values)) = clean {
                let mut keys = listed.to_vec();
                keys.push(key);
                keys.sort();
                keys.dedup();
                assert_eq!(
                    reopened.keys().expect("keys after a write"),
                    keys,
                    "a write to a clean pack changed its other keys"
                );
                let mut expected = values.clone();
                expected.insert(key, value.clone());
                for (k, v) in &expected {
                    assert_eq!(
                        reopened.get(k).expect("get after a write").as_deref(),
                        Some(&v[..]),
                        "a write to a clean pack changed the value of {k}"
                    );
                }
                assert!(
                    reopened.verify().expect("verify").is_ok(),
                    "a write to a clean pack left it unclean"
                );
                // And a removal of what was just written.
                assert!(reopened.remove(&key).expect("remove after a write"));
                assert_eq!(pack.get(&key).expect("get after a remove"), None);
            }
        }
        Err(err) => {
            assert_names_pack(&err, "insert");
            assert_eq!(
                reopened.keys().ok(),
                before,
                "a failed write changed what the pack lists: {err}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pack_ops

/// The keys `pack_ops` uses: few, so that operations collide.
pub const OP_KEYS: u8 = 8;

/// One step of a `pack_ops` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert `value(seed, len)` under key `k`.
    Insert { k: u8, len: u16, seed: u8 },
    /// Remove key `k`.
    Remove { k: u8 },
    /// Read key `k` through the active handle.
    Get { k: u8 },
    /// Several writes (`None` removes) in one batch, committed or dropped.
    Batch {
        writes: Vec<(u8, Option<(u16, u8)>)>,
        commit: bool,
    },
    /// Drop both handles and open new ones.
    Reopen,
    /// Make the other handle the active one.
    SwitchHandle,
    /// A crashed writer's torn tail: `len` garbage bytes appended to the file.
    CrashGarbage { len: u16, seed: u8 },
    /// A crashed writer's torn tail, shortened: the file cut to the committed length plus
    /// `extra` (clamped to the current length plus a page, so it can also grow with zeros).
    CrashTruncate { extra: u16 },
    /// A crashed writer that wrote every record of a commit but not its slot, torn after
    /// `cut` bytes (clamped): exactly what a kill before the slot write leaves behind.
    CrashTornCommit { k: u8, len: u16, seed: u8, cut: u16 },
    /// Compact through the active handle, keeping at most `max_entries` if given.
    Compact { max_entries: Option<u8> },
}

/// The most operations one input runs.
pub const MAX_OPS: usize = 48;
const MAX_VALUE: u16 = 4096;

/// Encodes operations as a `pack_ops` input (for the seed corpus).
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Insert { k, len, seed } => {
                out.push(0);
                out.push(*k);
                out.extend_from_slice(&len.to_le_bytes());
                out.push(*seed);
            }
            Op::Remove { k } => out.extend_from_slice(&[2, *k]),
            Op::Get { k } => out.extend_from_slice(&[3, *k]),
            Op::Batch { writes, commit } => {
                out.push(4);
                out.push(writes.len() as u8);
                for (k, write) in writes {
                    match write {
                        Some((len, seed)) => {
                            out.push(*k);
                            out.extend_from_slice(&len.to_le_bytes());
                            out.push(*seed);
                        }
                        None => out.push(*k | 0x80),
                    }
                }
                out.push(u8::from(!*commit));
            }
            Op::Reopen => out.push(5),
            Op::SwitchHandle => out.push(6),
            Op::CrashGarbage { len, seed } => {
                out.push(7);
                out.extend_from_slice(&len.to_le_bytes());
                out.push(*seed);
            }
            Op::CrashTruncate { extra } => {
                out.push(8);
                out.extend_from_slice(&extra.to_le_bytes());
            }
            Op::CrashTornCommit { k, len, seed, cut } => {
                out.push(9);
                out.push(*k);
                out.extend_from_slice(&len.to_le_bytes());
                out.push(*seed);
                out.extend_from_slice(&cut.to_le_bytes());
            }
            Op::Compact { max_entries } => {
                out.push(10);
                out.push(max_entries.map_or(0, |n| n + 1));
            }
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
}

/// Decodes a `pack_ops` input; a truncated last operation is dropped.
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut r = Reader(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        let Some(op) = decode_op(&mut r) else { break };
        ops.push(op);
    }
    ops
}

fn decode_op(r: &mut Reader<'_>) -> Option<Op> {
    let k = |b: u8| b % OP_KEYS;
    let len = |l: u16| l % (MAX_VALUE + 1);
    Some(match r.u8()? % 11 {
        0 | 1 => Op::Insert {
            k: k(r.u8()?),
            len: len(r.u16()?),
            seed: r.u8()?,
        },
        2 => Op::Remove { k: k(r.u8()?) },
        3 => Op::Get { k: k(r.u8()?) },
        4 => {
            let n = r.u8()? % 8;
            let mut writes = Vec::new();
            for _ in 0..n {
                let b = r.u8()?;
                let write = if b & 0x80 == 0 {
                    Some((len(r.u16()?), r.u8()?))
                } else {
                    None
                };
                writes.push((k(b & 0x7f), write));
            }
            Op::Batch {
                writes,
                commit: r.u8()? & 1 == 0,
            }
        }
        5 => Op::Reopen,
        6 => Op::SwitchHandle,
        7 => Op::CrashGarbage {
            len: r.u16()? % 8192,
            seed: r.u8()?,
        },
        8 => Op::CrashTruncate { extra: r.u16()? },
        9 => Op::CrashTornCommit {
            k: k(r.u8()?),
            len: len(r.u16()?),
            seed: r.u8()?,
            cut: r.u16()?,
        },
        _ => Op::Compact {
            max_entries: match r.u8()? % (OP_KEYS + 2) {
                0 => None,
                n => Some(n - 1),
            },
        },
    })
}

/// The key `pack_ops` uses for `k`, spread like a hash.
pub fn op_key(k: u8) -> Key {
    static KEYS: std::sync::OnceLock<[Key; OP_KEYS as usize]> = std::sync::OnceLock::new();
    match KEYS
        .get_or_init(|| std::array::from_fn(|k| spread_key(k as u8)))
        .get(usize::from(k))
    {
        Some(key) => *key,
        None => spread_key(k),
    }
}

fn spread_key(k: u8) -> Key {
    let mut state = u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Key::from_bytes(std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }))
}

/// The value `pack_ops` writes for a seed and length.
pub fn op_value(seed: u8, len: u16) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_add(0x2545_F491_4F6C_DD1D) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn identity() -> PackIdentity {
    PackIdentity::new().with("engine", "fuzz").with("abi", 1u32)
}

type Model = HashMap<Key, Vec<u8>>;

fn open_handle(path: &Path) -> Pack {
    options(Verify::Once)
        .open(path, &identity())
        .expect("open the pack_ops pack")
}

fn check_model(pack: &Pack, model: &Model, context: &str) {
    for k in 0..OP_KEYS {
        let key = op_key(k);
        let got = pack
            .get(&key)
            .unwrap_or_else(|e| panic!("{context}: get {k}: {e}"));
        let want = model.get(&key);
        assert!(
            got.as_deref() == want.map(|v| &v[..]),
            "{context}: key {k}: read {:?} bytes, the model has {:?}",
            got.map(|v| v.len()),
            want.map(Vec::len)
        );
        assert_eq!(
            pack.contains(&key).expect("contains"),
            want.is_some(),
            "{context}: contains {k}"
        );
    }
    assert_eq!(
        pack.len().expect("len"),
        model.len() as u64,
        "{context}: len"
    );
    let mut keys: Vec<Key> = model.keys().copied().collect();
    keys.sort();
    assert_eq!(pack.keys().expect("keys"), keys, "{context}: keys");
    let stats = pack.stats().expect("stats");
    assert_eq!(
        stats.live_bytes,
        model.values().map(|v| v.len() as u64).sum::<u64>(),
        "{context}: live bytes"
    );
}

/// The committed length of the pack at `path`, from its live slot.
fn committed_len(path: &Path) -> u64 {
    live_commit(&std::fs::read(path).expect("read the pack"))
        .expect("the pack has a live commit")
        .committed_len
}

/// A sequence of operations on one pack through two handles, checked against a map after
/// every step, with crashed writers' leftovers thrown in.
pub fn pack_ops(data: &[u8]) {
    let ops = decode_ops(data);
    with_scratch(|dir| run_ops(dir, &ops));
}

fn run_ops(dir: &Path, ops: &[Op]) {
    let path = dir.join(PACK_NAME);
    options(Verify::Once)
        .create(&path, &identity())
        .expect("create the pack_ops pack");
    let mut handles = [open_handle(&path), open_handle(&path)];
    let mut active = 0;
    let mut model = Model::new();
    for (step, op) in ops.iter().enumerate() {
        let context = format!("step {step} ({op:?})");
        let pack = &handles[active];
        match op {
            Op::Insert { k, len, seed } => {
                let v = op_value(*seed, *len);
                pack.insert(&op_key(*k), &v).expect("insert");
                model.insert(op_key(*k), v);
            }
            Op::Remove { k } => {
                let had = pack.remove(&op_key(*k)).expect("remove");
                assert_eq!(had, model.remove(&op_key(*k)).is_some(), "{context}");
            }
            Op::Get { k } => {
                let got = pack.get(&op_key(*k)).expect("get");
                assert_eq!(
                    got.as_deref(),
                    model.get(&op_key(*k)).map(|v| &v[..]),
                    "{context}"
                );
            }
            Op::Batch { writes, commit } => {
                let mut staged = model.clone();
                let mut batch = pack.batch();
                for (k, write) in writes {
                    let key = op_key(*k);
                    match write {
                        Some((len, seed)) => {
                            let v = op_value(*seed, *len);
                            batch.insert(&key, &v).expect("batch insert");
                            staged.insert(key, v);
                        }
                        None => {
                            let had = batch.remove(&key).expect("batch remove");
                            assert_eq!(had, staged.remove(&key).is_some(), "{context}");
                        }
                    }
                    assert_eq!(
                        batch.contains(&key).expect("batch contains"),
                        staged.contains_key(&key),
                        "{context}"
                    );
                }
                // Nothing is visible to the other handle before the commit.
                check_model(&handles[1 - active], &model, &context);
                if *commit {
                    batch.commit().expect("commit");
                    model = staged;
                }
            }
            Op::Reopen => handles = [open_handle(&path), open_handle(&path)],
            Op::SwitchHandle => active = 1 - active,
            Op::CrashGarbage { len, seed } => {
                let mut file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .expect("open to append");
                file.write_all(&op_value(*seed, *len))
                    .expect("append garbage");
            }
            Op::CrashTruncate { extra } => {
                let committed = committed_len(&path);
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open to truncate");
                let current = file.metadata().expect("metadata").len();
                let room = current - committed + PAGE;
                file.set_len(committed + u64::from(*extra) % (room + 1))
                    .expect("truncate");
            }
            Op::CrashTornCommit { k, len, seed, cut } => {
                torn_commit(dir, &path, op_key(*k), &op_value(*seed, *len), *cut);
            }
            Op::Compact { max_entries } => {
                let retention = match max_entries {
                    Some(n) => Retention::new().max_entries(u64::from(*n)),
                    None => Retention::new(),
                };
                let before = model.len();
                let report = pack.compact_with(&retention).expect("compact");
                assert_eq!(
                    report.dropped_unreadable(),
                    0,
                    "{context}: nothing is damaged"
                );
                for key in report.evicted() {
                    assert!(
                        model.remove(key).is_some(),
                        "{context}: evicted a key the pack did not hold"
                    );
                }
                let limit = max_entries.map_or(usize::MAX, usize::from);
                assert_eq!(
                    report.evicted().len(),
                    before.saturating_sub(limit),
                    "{context}: evicted more than the limit asks"
                );
                assert_eq!(report.kept(), model.len() as u64, "{context}: kept");
                assert_eq!(pack.stats().expect("stats").dead_bytes, 0, "{context}");
            }
        }
        check_model(&handles[active], &model, &context);
        check_model(&handles[1 - active], &model, &context);
    }
    let fresh = open_handle(&path);
    check_model(&fresh, &model, "a fresh handle at the end");
    let report = fresh.verify().expect("verify");
    assert!(report.is_ok(), "verify at the end: {:?}", report.problems());
    assert_eq!(report.entries(), model.len() as u64);
}

/// Writes into `path` what a writer inserting `value` under `key` writes before its commit
/// slot, cut after `cut` bytes: the commit is made on a copy, and only its appended records
/// are copied back.
fn torn_commit(dir: &Path, path: &Path, key: Key, value: &[u8], cut: u16) {
    let copy: PathBuf = dir.join("copy.wpk");
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(path, &copy).expect("copy the pack");
    let committed = committed_len(path);
    {
        let other = options(Verify::Once)
            .open(&copy, &identity())
            .expect("open the copy");
        other.insert(&key, value).expect("commit on the copy");
    }
    let after = std::fs::read(&copy).expect("read the copy");
    let appended = &after[committed as usize..committed_len(&copy) as usize];
    let torn = &appended[..usize::from(cut) % (appended.len() + 1)];
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open to tear");
    file.write_all_at(torn, committed)
        .expect("write the torn tail");
    std::fs::remove_file(&copy).expect("remove the copy");
}

// ---------------------------------------------------------------------------------------------
// decoders

/// The header page and both commit slots. An input of at least a superblock is a file's start;
/// a shorter one is read as `file_len (u64) | slot 0 (64) | slot 1 (64) | header page`, so
/// that small inputs reach the slot decoder too.
pub fn decode_superblock(data: &[u8]) {
    if let Ok(decoded) = snapshot::decode_superblock(data, data.len() as u64) {
        let slot = |i: usize| &data[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
        let (_, live) = superblock::live_slot([slot(0), slot(1)], data.len() as u64)
            .expect("a decoded snapshot superblock has a live slot");
        assert_eq!(decoded.commit, live);
        let page = snapshot::slot_page(&live);
        let again = CommitSlot::decode(&page).expect("a snapshot slot page decodes");
        assert_eq!(
            again,
            CommitSlot {
                superseded: false,
                ..live
            }
        );
    }
    let (header, slots, file_len): (&[u8], [&[u8]; 2], u64) = if data.len() >= DATA_START as usize {
        let slot = |i: usize| &data[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
        (
            &data[..PAGE as usize],
            [slot(0), slot(1)],
            data.len() as u64,
        )
    } else {
        let part = |from: usize, len: usize| {
            data.get(from.min(data.len())..(from + len).min(data.len()))
                .unwrap_or_default()
        };
        let mut len = [0u8; 8];
        let head = part(0, 8);
        len[..head.len()].copy_from_slice(head);
        (
            part(8 + 2 * SLOT_LEN, PAGE as usize),
            [part(8, SLOT_LEN), part(8 + SLOT_LEN, SLOT_LEN)],
            u64::from_le_bytes(len),
        )
    };

    decode_seal(data);
    if let Some(at_seal) = data.get(SEAL_AT as usize..)
        && data.len() >= DATA_START as usize
    {
        decode_seal(at_seal);
    }
    match superblock::decode_header(header) {
        Ok(h) => {
            assert!(h.identity.len() <= MAX_IDENTITY_LEN);
            let page = superblock::encode_header_with(&h.identity, h.sealed);
            let used = superblock::HEADER_FIXED_LEN + h.identity.len();
            assert_eq!(
                &page[..used],
                &header[..used],
                "a decoded header re-encodes differently"
            );
            assert_eq!(superblock::decode_header(&page), Ok(h));
        }
        Err(HeaderError::NotAPack(reason)) => {
            assert!(!reason.is_empty());
            assert!(
                header.len() < superblock::HEADER_FIXED_LEN || header[..8] != superblock::MAGIC
            );
        }
        Err(HeaderError::UnsupportedVersion(v)) => assert!(v > superblock::FORMAT_VERSION),
        Err(HeaderError::Corrupt(detail)) => assert!(!detail.is_empty()),
    }

    let decoded = slots.map(|bytes| {
        let slot = CommitSlot::decode(bytes);
        if let Ok(s) = &slot {
            assert!(s.generation >= 1);
            assert!(s.committed_len >= DATA_START && s.committed_len % ALIGN == 0);
            assert!(
                s.root_offset == 0
                    || (s.root_offset >= DATA_START
                        && s.root_offset % ALIGN == 0
                        && s.root_offset < s.committed_len)
            );
            let encoded = s.encode();
            assert_eq!(CommitSlot::decode(&encoded).as_ref(), Ok(s));
            if bytes[32..60].iter().all(|&b| b == 0) {
                assert_eq!(
                    &encoded[..],
                    &bytes[..SLOT_LEN],
                    "a slot re-encodes differently"
                );
            }
        }
        slot.ok().filter(|s| s.fits(file_len))
    });
    match superblock::live_slot(slots, file_len) {
        Ok((i, live)) => {
            assert_eq!(decoded[i], Some(live));
            assert!(live.fits(file_len));
            if let Some(other) = decoded[1 - i] {
                assert!(
                    other.generation < live.generation
                        || (other.generation == live.generation && i == 0),
                    "live_slot picked slot {i} ({live:?}) over {other:?}"
                );
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(
                decoded,
                [None, None],
                "live_slot found no valid slot among {decoded:?}"
            );
        }
    }
}

/// A seal record at the start of `data`: decodes to what encodes back to the bytes it was
/// decoded from, with its keys sorted and distinct.
fn decode_seal(data: &[u8]) {
    match Seal::decode(data) {
        Ok(Some(seal)) => {
            let encoded = seal.encode();
            assert_eq!(
                &data[..encoded.len()],
                &encoded[..],
                "a seal re-encodes differently"
            );
            assert!(seal.keys.len() <= MAX_SEAL_KEYS);
            assert!(seal.keys.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(
                Seal::new(seal.file(), seal.keys.iter().copied()).as_ref(),
                Some(&seal)
            );
        }
        Ok(None) => assert!(data[..SEAL_FIXED_LEN].iter().all(|&b| b == 0)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A record header and its label.
pub fn decode_record(data: &[u8]) {
    fleet_decoders(data);
    let Ok((header, label)) = RecordHeader::decode(data) else {
        return;
    };
    assert_eq!(label.len(), usize::from(header.label_len));
    assert!(label.len() <= MAX_LABEL_LEN);
    assert_eq!(
        label,
        &data[HEADER_LEN as usize..HEADER_LEN as usize + label.len()]
    );
    assert!(header.kind == RecordKind::Entry || header.label_len == 0);
    assert_eq!(RecordKind::from_byte(data[4]), Some(header.kind));
    let record_len = header.record_len().expect("a decoded header's length fits");
    assert_eq!(record_len % ALIGN, 0);
    assert!(record_len >= HEADER_LEN + header.label_area_len() + header.payload_len);
    assert_eq!(header.label_area_len() % ALIGN, 0);
    for at in [DATA_START, DATA_START + 64 * u64::from(data[5])] {
        if let Some(payload) = header.payload_offset(at) {
            assert_eq!(payload % ALIGN, 0);
            assert_eq!(payload, at + HEADER_LEN + header.label_area_len());
        }
    }
    let encoded = header.encode_with_label(label);
    assert_eq!(encoded.len() as u64, HEADER_LEN + header.label_area_len());
    let (again, again_label) = RecordHeader::decode(&encoded).expect("an encoded header decodes");
    assert_eq!((again, again_label), (header, label));
    let reserved_zero = data[5] == 0 && data[52..60].iter().all(|&b| b == 0);
    if reserved_zero {
        let used = HEADER_LEN as usize + label.len();
        assert_eq!(
            &encoded[..used],
            &data[..used],
            "a record header re-encodes differently"
        );
    }
}

/// Index entries, the input as an index block searched for keys taken from it, and the
/// index root.
pub fn decode_index(data: &[u8]) {
    let count = data.len() / ENTRY_LEN;
    let mut decoded = Vec::with_capacity(count);
    for (i, chunk) in data.chunks_exact(ENTRY_LEN).enumerate() {
        let entry = IndexEntry::decode(chunk);
        assert_eq!(index::block_entry(data, i), entry);
        if let Ok(e) = &entry {
            let encoded = e.encode();
            assert_eq!(IndexEntry::decode(&encoded).as_ref(), Ok(e));
            if chunk[55..60].iter().all(|&b| b == 0) {
                assert_eq!(&encoded[..], chunk, "an index entry re-encodes differently");
            }
            assert!(usize::from(e.label_len) <= MAX_LABEL_LEN);
            let start = e.payload_offset().expect("a decoded entry's offsets fit");
            assert_eq!(e.payload_end(), start.checked_add(e.payload_len));
            assert!(e.record_len().is_some());
        }
        decoded.push(entry);
    }
    assert!(index::block_entry(data, count).is_err());
    assert!(index::block_entry(data, usize::MAX).is_err());

    let mut keys: Vec<Key> = decoded
        .iter()
        .filter_map(|e| e.as_ref().ok())
        .map(|e| e.key)
        .take(64)
        .collect();
    for window in data.chunks(32).take(16) {
        let mut key = [0u8; 32];
        key[..window.len()].copy_from_slice(window);
        keys.push(Key::from_bytes(key));
    }
    keys.push(Key::from_bytes([0; 32]));
    keys.push(Key::from_bytes([0xff; 32]));

    // The input as a block payload: entries, then their key prefixes.
    match index::block_parts(data) {
        Err(_) => {
            assert!(!data.len().is_multiple_of(BLOCK_STRIDE));
            for key in &keys {
                assert!(index::search_block(data, key).is_err());
            }
        }
        Ok((entries, prefixes)) => {
            let count = entries.len() / ENTRY_LEN;
            let valid: Vec<IndexEntry> = (0..count)
                .filter_map(|i| index::block_entry(entries, i).ok())
                .collect();
            // Well formed: every entry valid, keys strictly ascending, prefixes matching.
            let well_formed = valid.len() == count
                && valid.windows(2).all(|w| w[0].key < w[1].key)
                && valid
                    .iter()
                    .zip(prefixes.chunks_exact(PREFIX_LEN))
                    .all(|(e, p)| &e.key.as_bytes()[..PREFIX_LEN] == p);
            for key in &keys {
                match index::search_block(data, key) {
                    Ok(Some((position, found))) => {
                        assert_eq!(found.key, *key, "search returned another key's entry");
                        assert_eq!(
                            index::block_entry(entries, position).as_ref(),
                            Ok(&found),
                            "search returned an entry that is not at its position"
                        );
                    }
                    Ok(None) => assert!(
                        !well_formed || !valid.iter().any(|e| e.key == *key),
                        "search missed {key} in a well-formed block"
                    ),
                    Err(e) => assert!(!well_formed, "search failed in a well-formed block: {e}"),
                }
            }
        }
    }

    // The valid entries, sorted into a block of our own: every key found, nothing else.
    let mut own: Vec<IndexEntry> = decoded.into_iter().filter_map(Result::ok).collect();
    own.sort_by_key(|e| e.key);
    own.dedup_by_key(|e| e.key);
    let block = index::encode_block(&own);
    for (position, entry) in own.iter().enumerate() {
        assert_eq!(
            index::search_block(&block, &entry.key),
            Ok(Some((position, *entry))),
            "a well-formed block lost a key"
        );
    }
    for key in &keys {
        if !own.iter().any(|e| e.key == *key) {
            assert_eq!(index::search_block(&block, key), Ok(None));
        }
    }

    // The input as a root, and its prefix the length its block count asks for.
    let mut roots = vec![data];
    if let Some(count) = data.get(32..36) {
        let count = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
        let want = ROOT_FIXED_LEN.saturating_add(count.saturating_mul(BLOCK_REF_LEN));
        if let Some(prefix) = data.get(..want) {
            roots.push(prefix);
        }
    }
    for bytes in roots {
        if let Ok(root) = Root::decode(bytes) {
            assert!(root.blocks.len() <= MAX_BLOCKS);
            assert_eq!(
                bytes.len(),
                ROOT_FIXED_LEN + BLOCK_REF_LEN * root.blocks.len()
            );
            let encoded = root.encode();
            assert_eq!(Root::decode(&encoded), Ok(root.clone()));
            if bytes[36..40].iter().all(|&b| b == 0) {
                assert_eq!(encoded, bytes, "an index root re-encodes differently");
            }
        }
    }
}

/// An identity: whatever decodes re-encodes to exactly the same bytes.
pub fn decode_identity(data: &[u8]) {
    match PackIdentity::decode(data) {
        Ok(identity) => {
            let encoded = identity.encode().expect("a decoded identity encodes");
            assert_eq!(encoded, data, "an identity re-encodes differently");
            assert_eq!(PackIdentity::decode(&encoded).as_ref(), Ok(&identity));
            assert!(!identity.to_string().is_empty());
            for (name, value) in identity.fields() {
                assert!(identity.get(name).is_some());
                if let wasmpak::IdentityValue::Num(n) = value {
                    assert_eq!(value.to_string(), n.to_string());
                }
            }
        }
        Err(detail) => assert!(!detail.is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------
// decode_signature

/// A signature record's payload: decodes to exactly what encodes back to it; a sorted
/// manifest finds every entry it holds and nothing else.
pub fn decode_signature(data: &[u8]) {
    let Ok(record) = SignatureRecord::decode(data) else {
        return;
    };
    assert_eq!(
        signature_format::encode(&record.header, record.manifest),
        data,
        "a signature record re-encodes differently"
    );
    assert_eq!(
        record.manifest.len(),
        record.len() * signature_format::MANIFEST_ENTRY_LEN + record.header.labels_len as usize
    );
    let entries: Vec<ManifestEntry> = (0..record.len()).map(|i| record.entry(i)).collect();
    for entry in &entries {
        assert!(entry.label.len() <= signature_format::MAX_LABEL_LEN);
    }
    let statement = signature_format::Statement::of(&record.header, [0; 32]).encode();
    assert_eq!(&statement[..32], &signature_format::STATEMENT_CONTEXT);
    if record.check_sorted().is_err() {
        assert!(entries.windows(2).any(|w| w[0].key >= w[1].key));
        return;
    }
    for entry in &entries {
        assert_eq!(record.find(&entry.key).as_ref(), Some(entry));
    }
    for probe in [[0u8; 32], [0xff; 32], [0x80; 32]] {
        let key = Key::from_bytes(probe);
        assert_eq!(
            record.find(&key),
            entries.iter().find(|e| e.key == key).cloned()
        );
    }
    // The entries encode into a manifest that decodes to them again.
    let manifest = signature_format::encode_manifest(&entries).expect("sorted entries encode");
    let header = signature_format::SignatureHeader {
        entry_count: entries.len() as u32,
        labels_len: (manifest.len() - entries.len() * signature_format::MANIFEST_ENTRY_LEN) as u32,
        ..record.header
    };
    let payload = signature_format::encode(&header, &manifest);
    let again = SignatureRecord::decode(&payload).expect("an encoded record decodes");
    let decoded: Vec<ManifestEntry> = (0..again.len()).map(|i| again.entry(i)).collect();
    assert_eq!(decoded, entries);
}

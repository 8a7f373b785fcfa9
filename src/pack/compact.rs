//! Compaction: rewrite the live entries into a new file and rename it over the old one.
//!
//! The old file is never modified except for its commit slots, which finally say SUPERSEDED
//! so that every process still mapping it moves to the new file on its next lookup. A crash
//! before the rename leaves the old pack as it was (the temporary file is removed by the next
//! compaction); a crash after it leaves the new pack complete. See docs/FORMAT.md, section 9.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::format::index::{self, EntryKind, IndexEntry, Root};
use crate::format::record::RecordKind;
use crate::format::superblock::{self, CommitSlot, DATA_START, Publication};
use crate::{Error, Key, Pack, Result};

use super::append::Appender;
use super::file::{parent_dir, temp_path};
use super::publish::mark_superseded;
use super::session::Session;
use super::storage::{Io, Storage};
use super::view::{Block, View};

/// Which live entries compaction keeps when a pack has grown past its soft limits.
///
/// When the live values exceed either limit, compaction drops the least recently used entries
/// until both hold. Recency comes from the caller (`last_used`: any increasing stamp, such as
/// milliseconds since the epoch); entries without a stamp count as older than every stamped one,
/// and ties go to the entry written first.
///
/// # Example
///
/// ```
/// use wasmpak::{Key, Pack, PackIdentity, Retention};
///
/// let dir = tempfile::tempdir()?;
/// let pack = Pack::create(dir.path().join("r.wpk"), &PackIdentity::new().with("a", "b"))?;
/// for i in 0..10u8 {
///     pack.insert(&Key::from_bytes([i; 32]), &[i; 100])?;
/// }
/// let mut retention = Retention::new().max_entries(4);
/// retention.touch(Key::from_bytes([0; 32]), 1); // recently used: survives
/// let report = pack.compact_with(&retention)?;
/// assert_eq!(report.evicted().len(), 6);
/// assert!(pack.contains(&Key::from_bytes([0; 32]))?);
/// assert!(pack.contains(&Key::from_bytes([9; 32]))?);
/// assert_eq!(pack.len()?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Retention {
    max_live_bytes: Option<u64>,
    max_entries: Option<u64>,
    last_used: HashMap<Key, u64>,
}

impl Retention {
    /// No limits: compaction keeps every live entry.
    pub fn new() -> Retention {
        Retention::default()
    }

    /// Soft limit on the sum of the live values' lengths.
    pub fn max_live_bytes(mut self, bytes: u64) -> Self {
        self.max_live_bytes = Some(bytes);
        self
    }

    /// Soft limit on the number of live entries.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = Some(entries);
        self
    }

    /// Records that `key` was used at `stamp` (keeps the largest stamp seen).
    pub fn touch(&mut self, key: Key, stamp: u64) {
        let slot = self.last_used.entry(key).or_insert(stamp);
        *slot = (*slot).max(stamp);
    }

    /// Adds the stamps that processes using the pack merged into its recency sidecar
    /// (`{pack}.recency`, written by [`PackCache`](crate::PackCache)); returns how many.
    /// A missing, torn or foreign sidecar adds nothing.
    pub fn touch_from_sidecar(&mut self, pack_path: &Path) -> usize {
        let stamps = super::recency::read_sidecar(pack_path);
        let count = stamps.len();
        for (key, stamp) in stamps {
            self.touch(key, stamp);
        }
        count
    }

    /// Whether any limit is set.
    pub fn has_limits(&self) -> bool {
        self.max_entries.is_some() || self.max_live_bytes.is_some()
    }

    /// Whether a pack with these totals is over a limit.
    pub fn exceeded(&self, entries: u64, live_bytes: u64) -> bool {
        self.max_entries.is_some_and(|max| entries > max)
            || self.max_live_bytes.is_some_and(|max| live_bytes > max)
    }
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    kept: u64,
    evicted: Vec<Key>,
    dropped_unreadable: u64,
    size_before: u64,
    size_after: u64,
}

impl CompactReport {
    /// Entries copied into the new file.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// Entries dropped by the retention limits, in the order they went: first those larger
    /// than the byte limit on their own (which could never fit), then the least recently used.
    pub fn evicted(&self) -> &[Key] {
        &self.evicted
    }

    /// Entries dropped because of damage: index entries that fail their checksum, values such
    /// an entry may have replaced or removed (kept, they could bring back an outdated value),
    /// and values whose record header or payload fails its checksum.
    pub fn dropped_unreadable(&self) -> u64 {
        self.dropped_unreadable
    }

    /// Committed length before.
    pub fn size_before(&self) -> u64 {
        self.size_before
    }

    /// Committed length after.
    pub fn size_after(&self) -> u64 {
        self.size_after
    }
}

/// Temporary files of crashed compactions older than this are removed by the next one.
const STALE_CREATING_AGE: Duration = Duration::from_secs(600);

impl Pack {
    /// Rewrites the pack without dead bytes: superseded values, tombstones, old index blocks,
    /// and damaged entries (see [`CompactReport::dropped_unreadable`]). Waits for other
    /// writers; readers are never blocked and keep their data. An error means the pack at the
    /// path is unchanged, except [`ErrorKind::NotDurable`](crate::ErrorKind::NotDurable): the
    /// compacted pack is in place but may not survive a power loss.
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_with(&Retention::new())
    }

    /// Compacts, also evicting least recently used entries beyond `retention`'s limits.
    pub fn compact_with(&self, retention: &Retention) -> Result<CompactReport> {
        let session = self.begin()?;
        compact_locked(self, session, retention)
    }

    /// Compacts unless another writer holds the pack right now; `Ok(None)` if it was busy.
    pub fn try_compact_with(&self, retention: &Retention) -> Result<Option<CompactReport>> {
        match Session::try_begin(self)? {
            Some(session) => compact_locked(self, session, retention).map(Some),
            None => Ok(None),
        }
    }
}

fn compact_locked(
    pack: &Pack,
    session: Session<'_>,
    retention: &Retention,
) -> Result<CompactReport> {
    let view = session.base_arc().clone();
    let path = view.file.path.clone();
    // The new file continues the old one's generations, and the old file's superseded mark
    // must be newer than its live commit: at the limit, refuse rather than wrap to 0 (a slot
    // no reader accepts, renamed over a good pack).
    let generation = view.commit.generation.checked_add(1).ok_or_else(|| {
        Error::corrupt(
            &path,
            format!("commit generation {} cannot grow", view.commit.generation),
        )
    })?;
    remove_stale_temporaries(&path);
    let (mut live, dropped_unreadable) = live_records(&view);
    let evicted = evict(&mut live, retention);
    crash_point("compact:before-write");

    let temp = temp_path(&path, COMPACT_SUFFIX);
    let (size_after, kept) = match write_compacted(&view, &live, &temp, generation) {
        Ok(done) => done,
        Err(e) => {
            let _ = Io::remove(&temp);
            return Err(e);
        }
    };
    crash_point("compact:before-rename");
    if let Err(e) = Io::rename(&temp, &path) {
        let _ = Io::remove(&temp);
        return Err(Error::write(&path, e));
    }
    // The new file is at the path: from here on the compaction stands, and what fails is
    // reported as such, never as a compaction to retry.
    let synced = Io::sync_dir(parent_dir(&path));
    crash_point("compact:after-rename");
    if let Err(e) = synced {
        // Not durable: a power loss may bring the old file back, so it must not say it was
        // replaced (readers would follow the path back to it forever). This handle moves on.
        drop(session);
        if let Err(reopen) = pack.reopen(view) {
            tracing::warn!(error = %reopen, "could not open the compacted pack");
        }
        return Err(Error::not_durable(&path, e));
    }
    // Tell every process still mapping the old file to follow the path.
    let superseded = CommitSlot {
        generation,
        superseded: true,
        publication: Publication::Synced,
        ..view.commit
    };
    if let Err(e) = mark_superseded(&view, superseded) {
        // The new pack is in place; readers of the old one find it on their next miss.
        tracing::warn!(error = %e, "could not mark the compacted-away pack as superseded");
    }
    drop(session);
    let size_before = view.commit.committed_len;
    if let Err(e) = pack.reopen(view) {
        tracing::warn!(error = %e, "could not open the compacted pack; the next access retries");
    }
    Ok(CompactReport {
        kept,
        evicted,
        dropped_unreadable,
        size_before,
        size_after,
    })
}

/// The suffix of a compaction's temporary file.
const COMPACT_SUFFIX: &str = ".compact.tmp";

/// Keys a damaged index entry may hold.
#[derive(Debug, Clone, Copy)]
enum Hole {
    /// The entry's key bytes, its neighbours and the record it points at agree on its key.
    Key(Key),
    /// Any key strictly between the verified entries around it in its sorted block (`None`:
    /// no bound on that side).
    Between {
        after: Option<Key>,
        before: Option<Key>,
    },
}

impl Hole {
    const EVERY_KEY: Hole = Hole::Between {
        after: None,
        before: None,
    };

    fn covers(&self, key: &Key) -> bool {
        match self {
            Hole::Key(k) => k == key,
            Hole::Between { after, before } => {
                after.is_none_or(|after| *key > after) && before.is_none_or(|before| *key < before)
            }
        }
    }
}

/// The key of a damaged index entry, if the evidence agrees: its key bytes lie between its
/// verified neighbours, and the record its offset field points at is an entry or tombstone
/// with a valid header for that key. (Damage to the key bytes or to the offset breaks the
/// agreement, and then only the neighbours bound the key.)
fn identify(view: &View, chunk: &[u8], between: Hole) -> Option<Key> {
    let mut key = [0u8; 32];
    key.copy_from_slice(chunk.get(..32)?);
    let key = Key::from_bytes(key);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(chunk.get(32..40)?);
    let (header, _) = view.record_header(u64::from_le_bytes(offset)).ok()?;
    let names_it = matches!(header.kind, RecordKind::Entry | RecordKind::Tombstone)
        && header.key == *key.as_bytes();
    (names_it && between.covers(&key)).then_some(key)
}

/// A block's verified entries, the holes its damaged entries leave, and how many are damaged.
fn scan_block(view: &View, block: &Block) -> (Vec<IndexEntry>, Vec<Hole>, u64) {
    let Ok(bytes) = view.block_bytes(block) else {
        return (Vec::new(), vec![Hole::EVERY_KEY], block.count);
    };
    let chunks: Vec<&[u8]> = bytes.chunks_exact(index::ENTRY_LEN).collect();
    let decoded: Vec<Option<IndexEntry>> = chunks
        .iter()
        .map(|chunk| IndexEntry::decode(chunk).ok())
        .collect();
    let entries: Vec<IndexEntry> = decoded.iter().flatten().copied().collect();
    let damaged = (decoded.len() - entries.len()) as u64;
    if damaged == 0 {
        return (entries, Vec::new(), 0);
    }
    if !entries.windows(2).all(|w| w[0].key < w[1].key) {
        // Out of order, the neighbours say nothing about the damaged keys.
        return (entries, vec![Hole::EVERY_KEY], damaged);
    }
    let mut holes = Vec::new();
    for (i, entry) in decoded.iter().enumerate() {
        if entry.is_some() {
            continue;
        }
        let after = decoded[..i].iter().rev().flatten().next().map(|e| e.key);
        let before = decoded[i + 1..].iter().flatten().next().map(|e| e.key);
        let between = Hole::Between { after, before };
        holes.push(match identify(view, chunks[i], between) {
            Some(key) => Hole::Key(key),
            None => between,
        });
    }
    (entries, holes, damaged)
}

/// The newest value entry of every key whose value checks out (index entry, record header,
/// bounds and payload checksum), sorted by record offset, and the number of entries dropped
/// because of damage. A key that a damaged index entry may hold is dropped entirely: the
/// damaged entry may be its newest version, so an older one must not take its place.
fn live_records(view: &View) -> (Vec<IndexEntry>, u64) {
    // Blocks newest first: the first to say anything about a key decides it.
    let mut newest: BTreeMap<Key, Option<IndexEntry>> = BTreeMap::new();
    let mut holes: Vec<Hole> = Vec::new();
    let mut unreadable = 0u64;
    for block in &view.blocks {
        let (entries, block_holes, damaged) = scan_block(view, block);
        unreadable += damaged;
        for entry in entries {
            if newest.contains_key(&entry.key) {
                continue;
            }
            if holes.iter().any(|hole| hole.covers(&entry.key)) {
                if entry.kind == EntryKind::Value {
                    tracing::warn!(
                        key = %entry.key,
                        "dropping a value a damaged index entry may have replaced"
                    );
                    unreadable += 1;
                }
                newest.insert(entry.key, None);
                continue;
            }
            newest.insert(entry.key, Some(entry));
        }
        holes.extend(block_holes);
    }
    let mut live: Vec<IndexEntry> = Vec::with_capacity(newest.len());
    let mut buf = Vec::new();
    for entry in newest.into_values().flatten() {
        if entry.kind != EntryKind::Value {
            continue;
        }
        if value_checks_out(view, &entry, &mut buf) {
            live.push(entry);
        } else {
            tracing::warn!(key = %entry.key, "dropping an unreadable entry while compacting");
            unreadable += 1;
        }
    }
    live.sort_by_key(|e| e.record_offset);
    (live, unreadable)
}

/// Whether the record an index entry points at is the one it describes, lies within the
/// commit, and holds a payload that matches its checksum.
fn value_checks_out(view: &View, entry: &IndexEntry, buf: &mut Vec<u8>) -> bool {
    let header_ok = view.record_header(entry.record_offset).is_ok_and(|(h, _)| {
        h.kind == RecordKind::Entry
            && h.key == *entry.key.as_bytes()
            && h.payload_len == entry.payload_len
            && h.payload_crc == entry.payload_crc
            && h.label_len == entry.label_len
    });
    let in_bounds = entry
        .record_offset
        .checked_add(entry.record_len().unwrap_or(u64::MAX))
        .is_some_and(|end| end <= view.commit.committed_len);
    header_ok
        && in_bounds
        && entry.payload_offset().is_some_and(|offset| {
            view.file.os_file().is_ok_and(|file| {
                checksum_read(file, offset, entry.payload_len, buf)
                    .is_ok_and(|crc| crc == entry.payload_crc)
            })
        })
}

/// The CRC-32 of `len` bytes of `file` at `offset`, read through `buf` rather than the
/// mapping: checking every live value through the mapping faults in every page of the pack,
/// which measured slower than reading it.
fn checksum_read(file: &File, mut offset: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<u32> {
    const CHUNK: u64 = 1 << 20;
    buf.resize(len.min(CHUNK) as usize, 0);
    let mut hasher = crc32fast::Hasher::new();
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::other("the value's offsets overflow"))?;
    while offset < end {
        let chunk = &mut buf[..(end - offset).min(CHUNK) as usize];
        file.read_exact_at(chunk, offset)?;
        hasher.update(chunk);
        offset += chunk.len() as u64;
    }
    Ok(hasher.finalize())
}

/// Removes entries until `retention`'s limits hold; returns them. Entries larger than the
/// byte limit go first, whatever their recency: they can never fit, and evicting the ones that
/// do in their place would not help. Then the least recently used.
fn evict(live: &mut Vec<IndexEntry>, retention: &Retention) -> Vec<Key> {
    let mut entries = live.len() as u64;
    let mut bytes = live
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.payload_len));
    if !retention.exceeded(entries, bytes) {
        return Vec::new();
    }
    let never_fits = |e: &IndexEntry| {
        retention
            .max_live_bytes
            .is_some_and(|max| e.payload_len > max)
    };
    let mut order: Vec<usize> = (0..live.len()).collect();
    // `live` is in record order, so the stable sort breaks ties by age.
    order.sort_by_key(|&i| {
        let stamp = retention.last_used.get(&live[i].key);
        (
            !never_fits(&live[i]),
            stamp.map_or(0, |s| s.saturating_add(1)),
        )
    });
    let mut evicted = Vec::new();
    let mut drop = vec![false; live.len()];
    for i in order {
        if !retention.exceeded(entries, bytes) {
            break;
        }
        drop[i] = true;
        entries -= 1;
        bytes = bytes.saturating_sub(live[i].payload_len);
        evicted.push(live[i].key);
    }
    let mut i = 0;
    live.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    evicted
}

/// Deletes temporary files left by crashed compactions and creations of this pack. Safe
/// because compaction only runs under the pack's writer lock, which the caller holds, and a
/// creation in progress is at most seconds old.
fn remove_stale_temporaries(path: &Path) {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        // Also the names earlier versions used: `compact-{pid}-{nanos}.tmp`.
        let compacting = rest.ends_with(COMPACT_SUFFIX)
            || (rest.starts_with("compact-") && rest.ends_with(".tmp"));
        let old_creation = rest.ends_with(".creating")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_CREATING_AGE);
        if compacting || old_creation {
            tracing::info!(file = %file_name, "removing a leftover temporary file");
            let _ = Io::remove(&entry.path());
        }
    }
}

/// Writes the compacted pack to `temp` as commit `generation`, synced; returns its committed
/// length and entry count.
fn write_compacted(
    view: &View,
    live: &[IndexEntry],
    temp: &Path,
    generation: u64,
) -> Result<(u64, u64)> {
    let write_err = |e| Error::write(temp, e);
    let out = Io::create_new(temp).map_err(write_err)?;
    if let Some(meta) = view.file.os_file().ok().and_then(|f| f.metadata().ok()) {
        let _ = out.set_permissions(meta.permissions());
    }
    let identity = view
        .file
        .identity
        .encode()
        .map_err(|detail| Error::invalid_input(temp, detail))?;

    // Copy records in file order, each run of neighbours as one range.
    let mut appender = Appender::new(&out, temp, DATA_START);
    let mut entries = Vec::with_capacity(live.len());
    let mut rest = live;
    while let Some(first) = rest.first() {
        let mut end = first.record_offset;
        let mut run = 0;
        for entry in rest {
            if entry.record_offset != end {
                break;
            }
            end = end.saturating_add(entry.record_len().unwrap_or(0));
            run += 1;
        }
        let at = appender.tail();
        appender.copy(
            view.file.os_file()?,
            first.record_offset,
            end - first.record_offset,
        )?;
        entries.extend(rest[..run].iter().map(|entry| IndexEntry {
            record_offset: at + (entry.record_offset - first.record_offset),
            ..*entry
        }));
        rest = &rest[run..];
    }

    entries.sort_by_key(|e| e.key);
    let live_record_bytes = appender.tail() - DATA_START;
    // Signatures survive compaction: they vouch for keys and bytes, not offsets.
    let (signatures, signature_head) =
        super::sign::encode_chain(&super::sign::chain_to_copy(view), appender.tail());
    appender.encoded(&signatures)?;
    let mut root = Root {
        live_entries: entries.len() as u64,
        live_payload_bytes: entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.payload_len)),
        live_record_bytes,
        index_bytes: 0,
        blocks: Vec::new(),
    };
    if !entries.is_empty() {
        let (block, len) = appender.index_block(&entries)?;
        root.index_bytes = len;
        root.blocks.push(block);
    }
    let root_offset = appender.root(root)?;
    let slot = CommitSlot {
        generation,
        committed_len: appender.tail(),
        root_offset,
        superseded: false,
        publication: Publication::Synced,
        signature_offset: signature_head,
    };
    Io::write_at(&out, &superblock::encode_superblock(&identity, &slot), 0).map_err(write_err)?;
    Io::sync_all(&out).map_err(write_err)?;
    Ok((slot.committed_len, entries.len() as u64))
}

/// A place where the fault-injection tests can kill the process (feature `fault-injection`,
/// with `WASMPAK_CRASH_AT` naming the point). Compiles to nothing otherwise.
fn crash_point(point: &str) {
    #[cfg(feature = "fault-injection")]
    if std::env::var("WASMPAK_CRASH_AT").is_ok_and(|at| at == point) {
        std::process::abort();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = point;
}

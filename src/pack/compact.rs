//! Compaction: rewrite the live entries into a new file and rename it over the old one.
//!
//! The old file is never modified except for its commit slots, which finally say SUPERSEDED
//! so that every process still mapping it moves to the new file on its next lookup. A crash
//! before the rename leaves the old pack as it was (the temporary file is removed by the next
//! compaction); a crash after it leaves the new pack complete. See docs/FORMAT.md, section 9.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::format::align_up;
use crate::format::index::{self, BlockRef, EntryKind, IndexEntry, Root};
use crate::format::record::{HEADER_LEN, RecordHeader, RecordKind, payload_padding};
use crate::format::superblock::{self, CommitSlot, DATA_START, SLOT_OFFSETS};
use crate::{Error, Key, Pack, Result};

use super::file::{self, parent_dir, sync_dir};
use super::view::View;
use super::writer::Session;

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

    /// Entries dropped by the retention limits, least recently used first.
    pub fn evicted(&self) -> &[Key] {
        &self.evicted
    }

    /// Entries dropped because their index entry or record header was damaged.
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
    /// Rewrites the pack without dead bytes: superseded values, tombstones, old index blocks.
    /// Waits for other writers; readers are never blocked and keep their data.
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
    mut session: Session<'_>,
    retention: &Retention,
) -> Result<CompactReport> {
    let view = session.base_arc().clone();
    let path = view.file.path.clone();
    remove_stale_temporaries(&path);
    let (mut live, dropped_unreadable) = live_records(&view);
    let evicted = evict(&mut live, retention);
    crash_point("compact:before-write");

    let temp = temp_path(&path);
    let result = write_compacted(&view, &live, &temp);
    let (size_after, kept) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    crash_point("compact:before-rename");
    if let Err(e) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::write(&path, e));
    }
    sync_dir(parent_dir(&path)).map_err(|e| Error::write(&path, e))?;
    crash_point("compact:after-rename");

    // Tell every process still mapping the old file to follow the path.
    let superseded = CommitSlot {
        generation: view.commit.generation + 1,
        superseded: true,
        ..view.commit
    };
    // Advisory (writers and missing readers also check the path), so no sync: a lost mark
    // costs a reader one `stat` later, not correctness.
    if let Err(e) = session.publish_with(&superseded, false) {
        // The new pack is in place; readers of the old one find it on their next miss.
        tracing::warn!(error = %e, "could not mark the compacted-away pack as superseded");
    }
    drop(session);
    let size_before = view.commit.committed_len;
    pack.reopen(view)?;
    Ok(CompactReport {
        kept,
        evicted,
        dropped_unreadable,
        size_before,
        size_after,
    })
}

/// The newest value entry of every key, skipping entries whose index entry or record header
/// does not check out; sorted by record offset.
fn live_records(view: &View) -> (Vec<IndexEntry>, u64) {
    let mut newest: BTreeMap<Key, IndexEntry> = BTreeMap::new();
    let mut unreadable = 0;
    for block in view.blocks.iter().rev() {
        let Ok(bytes) = view.block_bytes(block) else {
            unreadable += block.count;
            continue;
        };
        for chunk in bytes.chunks_exact(index::ENTRY_LEN) {
            match IndexEntry::decode(chunk) {
                Ok(entry) => {
                    newest.insert(entry.key, entry);
                }
                Err(_) => unreadable += 1,
            }
        }
    }
    let mut live: Vec<IndexEntry> = Vec::with_capacity(newest.len());
    for entry in newest.into_values() {
        if entry.kind != EntryKind::Value {
            continue;
        }
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
        if header_ok && in_bounds {
            live.push(entry);
        } else {
            tracing::warn!(key = %entry.key, "dropping an unreadable entry while compacting");
            unreadable += 1;
        }
    }
    live.sort_by_key(|e| e.record_offset);
    (live, unreadable)
}

/// Removes least recently used entries until `retention`'s limits hold; returns them.
fn evict(live: &mut Vec<IndexEntry>, retention: &Retention) -> Vec<Key> {
    let mut entries = live.len() as u64;
    let mut bytes: u64 = live.iter().map(|e| e.payload_len).sum();
    if !retention.exceeded(entries, bytes) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..live.len()).collect();
    // `live` is in record order, so the stable sort breaks ties by age.
    order.sort_by_key(|&i| retention.last_used.get(&live[i].key).map_or(0, |s| s + 1));
    let mut evicted = Vec::new();
    let mut drop = vec![false; live.len()];
    for i in order {
        if !retention.exceeded(entries, bytes) {
            break;
        }
        drop[i] = true;
        entries -= 1;
        bytes -= live[i].payload_len;
        evicted.push(live[i].key);
    }
    let mut i = 0;
    live.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    evicted
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    parent_dir(path).join(format!(
        ".{name}.compact-{}-{nanos}.tmp",
        std::process::id()
    ))
}

/// Deletes temporary files left by crashed compactions of this pack. Safe because compaction
/// only runs under the pack's writer lock, which the caller holds.
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
        let compacting = rest.starts_with("compact-") && rest.ends_with(".tmp");
        let old_creation = rest.ends_with(".creating")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_CREATING_AGE);
        if compacting || old_creation {
            tracing::info!(file = %file_name, "removing a leftover temporary file");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the compacted pack to `temp`; returns its committed length and entry count.
fn write_compacted(view: &View, live: &[IndexEntry], temp: &Path) -> Result<(u64, u64)> {
    let write_err = |e| Error::write(temp, e);
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(write_err)?;
    if let Ok(meta) = view.file.file.metadata() {
        let _ = out.set_permissions(meta.permissions());
    }
    let identity = view
        .file
        .identity
        .encode()
        .map_err(|detail| Error::invalid_input(temp, detail))?;
    out.write_all_at(&file::empty_pack_bytes(&identity), 0)
        .map_err(write_err)?;

    // Copy records in file order, coalescing neighbours into one range each.
    let mut entries = Vec::with_capacity(live.len());
    let mut tail = DATA_START;
    let mut run: Option<(u64, u64)> = None; // (source start, length)
    for entry in live {
        let len = entry.record_len().unwrap_or(0);
        run = match run {
            Some((start, run_len)) if start + run_len == entry.record_offset => {
                Some((start, run_len + len))
            }
            Some((start, run_len)) => {
                copy_range(&view.file.file, start, &out, tail - run_len, run_len)
                    .map_err(write_err)?;
                Some((entry.record_offset, len))
            }
            None => Some((entry.record_offset, len)),
        };
        entries.push(IndexEntry {
            record_offset: tail,
            ..*entry
        });
        tail += len;
    }
    if let Some((start, run_len)) = run {
        copy_range(&view.file.file, start, &out, tail - run_len, run_len).map_err(write_err)?;
    }

    entries.sort_by_key(|e| e.key);
    let live_payload_bytes = entries.iter().map(|e| e.payload_len).sum();
    let live_record_bytes = tail - DATA_START;
    // Signatures survive compaction: they vouch for keys and bytes, not offsets.
    let (signatures, signature_head) =
        super::sign::encode_chain(&super::sign::chain_to_copy(view), tail);
    out.write_all_at(&signatures, tail).map_err(write_err)?;
    tail += signatures.len() as u64;
    let mut root = Root {
        live_entries: entries.len() as u64,
        live_payload_bytes,
        live_record_bytes,
        index_bytes: 0,
        blocks: Vec::new(),
    };
    if !entries.is_empty() {
        let payload = index::encode_block(&entries);
        let len = append(&out, &mut tail, RecordKind::IndexBlock, &payload).map_err(write_err)?;
        root.index_bytes += len;
        root.blocks.push(BlockRef {
            offset: tail - len,
            count: entries.len() as u64,
        });
    }
    let root_payload_len =
        (index::ROOT_FIXED_LEN + index::BLOCK_REF_LEN * root.blocks.len()) as u64;
    root.index_bytes += HEADER_LEN + align_up(root_payload_len).unwrap_or(0);
    let root_offset = tail;
    append(&out, &mut tail, RecordKind::IndexRoot, &root.encode()).map_err(write_err)?;
    let slot = CommitSlot {
        generation: view.commit.generation + 1,
        committed_len: tail,
        root_offset,
        superseded: false,
        signature_offset: signature_head,
    }
    .encode();
    for offset in SLOT_OFFSETS {
        out.write_all_at(&slot, offset).map_err(write_err)?;
    }
    out.sync_all().map_err(write_err)?;
    debug_assert!(superblock::decode_header(&file::empty_pack_bytes(&identity)).is_ok());
    Ok((tail, entries.len() as u64))
}

/// Appends an index record at `tail`; returns its length.
fn append(out: &File, tail: &mut u64, kind: RecordKind, payload: &[u8]) -> io::Result<u64> {
    let header = RecordHeader::for_payload(kind, [0; 32], 0, payload);
    let mut bytes = header.encode_with_label(b"");
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len() + payload_padding(payload.len() as u64), 0);
    out.write_all_at(&bytes, *tail)?;
    *tail += bytes.len() as u64;
    Ok(bytes.len() as u64)
}

/// Copies `len` bytes between files at explicit offsets: in the kernel with
/// `copy_file_range` where the file system allows, else through a buffer.
fn copy_range(
    from: &File,
    mut from_at: u64,
    to: &File,
    mut to_at: u64,
    mut len: u64,
) -> io::Result<()> {
    while len > 0 {
        let chunk = len.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(from, Some(&mut from_at), to, Some(&mut to_at), chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the pack ended early",
                ));
            }
            Ok(n) => len -= n as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => {
                return copy_buffered(from, from_at, to, to_at, len);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_buffered(
    from: &File,
    mut from_at: u64,
    to: &File,
    mut to_at: u64,
    mut len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; (1 << 20).min(len as usize)];
    while len > 0 {
        let chunk = (len as usize).min(buf.len());
        from.read_exact_at(&mut buf[..chunk], from_at)?;
        to.write_all_at(&buf[..chunk], to_at)?;
        from_at += chunk as u64;
        to_at += chunk as u64;
        len -= chunk as u64;
    }
    Ok(())
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

//! Compaction: rewrite the live entries into a new file and rename it over the old one.
//!
//! The old file is never modified except for its commit slots, which finally say SUPERSEDED
//! so that every process still mapping it moves to the new file on its next lookup. A crash
//! before the rename leaves the old pack as it was (the temporary file is removed by the next
//! compaction); a crash after it leaves the new pack complete. See docs/FORMAT.md, section 9.

use std::os::unix::fs::MetadataExt;

use crate::format::index::{IndexEntry, Root};
use crate::format::superblock::{self, CommitSlot, DATA_START, Publication};
use crate::fs::{self, FileMode, TempFile};
use crate::storage::{Io, Storage};
use crate::{Error, Key, Pack, Result};

use super::append::Appender;
use super::commit::next_generation;
use super::publish::mark_superseded;
use super::retention::{Retention, evict};
use super::salvage::live_records;
use super::session::Session;
use super::signatures;
use super::view::View;

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
    let generation = next_generation(&view)?;
    // Safe under the writer lock, which the session holds: no live compaction of this pack
    // has a temporary file, and other writers' are locked.
    fs::remove_leftovers(&path);
    let (mut live, dropped_unreadable) = live_records(&view);
    let evicted = evict(&mut live, retention);
    crash_point("compact:before-write");

    // The new file keeps the old one's mode.
    let mode = view
        .file
        .os_file()
        .ok()
        .and_then(|f| f.metadata().ok())
        .map_or(FileMode::Public, |meta| FileMode::Exactly(meta.mode()));
    let temp = TempFile::create(&path, mode).map_err(|e| Error::write(&path, e))?;
    let (size_after, kept) = write_compacted(&view, &live, &temp, generation)?;
    crash_point("compact:before-rename");
    let placed = temp.replace().map_err(|e| Error::write(&path, e))?;
    // The new file is at the path: from here on the compaction stands, and what fails is
    // reported as such, never as a compaction to retry.
    let synced = placed.sync_dir();
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

/// Writes the compacted pack to `temp` as commit `generation` (synced when it is put in
/// place); returns its committed length and entry count.
fn write_compacted(
    view: &View,
    live: &[IndexEntry],
    temp: &TempFile,
    generation: u64,
) -> Result<(u64, u64)> {
    let write_err = |e| Error::write(temp.path(), e);
    let out = temp.file();
    let temp = temp.path();
    let identity = view
        .file
        .identity
        .encode()
        .map_err(|detail| Error::invalid_input(temp, detail))?;

    // Copy records in file order, each run of neighbours as one range.
    let mut appender = Appender::new(out, temp, DATA_START);
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
    let (signatures, signature_head) =
        signatures::encode_chain(&signatures::chain_to_copy(view), appender.tail());
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
    Io::write_at(out, &superblock::encode_superblock(&identity, &slot), 0).map_err(write_err)?;
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

//! Appending and committing: the only code that writes to a pack file.
//!
//! A [`Session`] holds the process-wide writer mutex and the file's exclusive lock from its
//! first append to its commit. Every byte it writes lies at or past the committed length it
//! found under the lock, except the two commit slots, written last: the format's invariant.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, MutexGuard, PoisonError, TryLockError};

use crate::format::align_up;
use crate::format::index::{self, BlockRef, EntryKind, IndexEntry, MAX_BLOCKS, Root};
use crate::format::record::{HEADER_LEN, MAX_LABEL_LEN, RecordHeader, RecordKind, payload_padding};
use crate::format::superblock::{CommitSlot, SLOT_OFFSETS};
use crate::{Durability, Error, Key, Pack, Result};

use super::merge;
use super::view::View;

/// How many times a writer follows the path to a replacement file before giving up.
const MAX_REOPENS: usize = 64;

/// An open write transaction: appended records become visible at [`Session::commit`].
pub(crate) struct Session<'a> {
    pack: &'a Pack,
    _exclusive: MutexGuard<'a, ()>,
    base: Arc<View>,
    tail: u64,
    pending: Vec<IndexEntry>,
    /// Why an earlier write of this session failed: its I/O error kind (so that later calls
    /// report the same [`crate::ErrorKind`], e.g. `StorageFull`) and message.
    failed: Option<(io::ErrorKind, String)>,
}

impl<'a> Session<'a> {
    /// Takes the writer locks, waiting for other writers, and reads the latest commit.
    pub(crate) fn begin(pack: &'a Pack) -> Result<Session<'a>> {
        let exclusive = pack
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Self::begin_locked(pack, exclusive, true)?.ok_or_else(|| unreachable_busy(pack))
    }

    /// Like [`Session::begin`], but `Ok(None)` instead of waiting if another writer is busy.
    pub(crate) fn try_begin(pack: &'a Pack) -> Result<Option<Session<'a>>> {
        let exclusive = match pack.inner.writer.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        Self::begin_locked(pack, exclusive, false)
    }

    fn begin_locked(
        pack: &'a Pack,
        exclusive: MutexGuard<'a, ()>,
        wait: bool,
    ) -> Result<Option<Session<'a>>> {
        for _ in 0..MAX_REOPENS {
            let view = pack.view()?;
            view.file.check_writable()?;
            let lock_err = |source| Error::Lock {
                path: view.file.path.clone(),
                source,
            };
            if wait {
                view.file.file.lock().map_err(lock_err)?;
            } else {
                match view.file.file.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
                }
            }
            match Self::latest_under_lock(&view) {
                Ok(Some(base)) => {
                    let base = Arc::new(base);
                    pack.install(base.clone());
                    return Ok(Some(Session {
                        pack,
                        _exclusive: exclusive,
                        tail: base.commit.committed_len,
                        base,
                        pending: Vec::new(),
                        failed: None,
                    }));
                }
                Ok(None) => {
                    let _ = view.file.file.unlock();
                    pack.reopen(view)?;
                }
                Err(e) => {
                    let _ = view.file.file.unlock();
                    return Err(e);
                }
            }
        }
        Err(Error::corrupt(
            pack.path(),
            "the pack keeps being replaced while we try to write to it",
        ))
    }

    /// The latest commit of `view`'s file, or `None` if the file was replaced or superseded.
    fn latest_under_lock(view: &Arc<View>) -> Result<Option<View>> {
        match view.file.path_still_names_me()? {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => {
                return Err(Error::Open {
                    path: view.file.path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        "the pack was removed while it was open",
                    ),
                });
            }
        }
        let fresh = View::load(view.file.clone(), Some(view))?;
        Ok((!fresh.commit.superseded).then_some(fresh))
    }

    /// Number of records appended so far.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether `key` has a value as of this session's appends so far.
    pub(crate) fn contains(&self, key: &Key) -> Result<bool> {
        if let Some(last) = self.pending.iter().rev().find(|e| e.key == *key) {
            return Ok(last.kind == EntryKind::Value);
        }
        Ok(self
            .base
            .lookup(key)?
            .is_some_and(|e| e.kind == EntryKind::Value))
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<()> {
        self.base
            .file
            .file
            .write_all_at(bytes, offset)
            .map_err(|e| Error::write(&self.base.file.path, e))
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some((kind, reason)) => Err(Error::write(
                &self.base.file.path,
                io::Error::new(
                    *kind,
                    format!("an earlier write in this batch failed: {reason}"),
                ),
            )),
        }
    }

    fn remember_failure(&mut self, error: &Error) {
        self.failed = Some(match error.io_error() {
            Some(source) => (source.kind(), source.to_string()),
            None => (io::ErrorKind::Other, error.to_string()),
        });
    }

    /// Appends an entry or tombstone record at the tail.
    pub(crate) fn append(
        &mut self,
        key: &Key,
        label: &str,
        payload: &[u8],
        kind: EntryKind,
    ) -> Result<()> {
        self.check_failed()?;
        if label.len() > MAX_LABEL_LEN {
            return Err(Error::invalid_input(
                self.pack.path(),
                format!(
                    "label is {} bytes, at most {MAX_LABEL_LEN} fit",
                    label.len()
                ),
            ));
        }
        let record_kind = match kind {
            EntryKind::Value => RecordKind::Entry,
            EntryKind::Tombstone => RecordKind::Tombstone,
        };
        let header =
            RecordHeader::for_payload(record_kind, *key.as_bytes(), label.len() as u16, payload);
        let record_len = header
            .record_len()
            .ok_or_else(|| Error::invalid_input(self.pack.path(), "payload is too large"))?;
        let offset = self.tail;
        let result = self.append_record(offset, &header, label.as_bytes(), payload);
        if let Err(e) = &result {
            self.remember_failure(e);
        }
        result?;
        self.pending.push(IndexEntry {
            key: *key,
            record_offset: offset,
            payload_len: header.payload_len,
            payload_crc: header.payload_crc,
            label_len: header.label_len,
            kind,
        });
        self.tail = offset
            .checked_add(record_len)
            .ok_or_else(|| Error::invalid_input(self.pack.path(), "pack offsets overflow"))?;
        Ok(())
    }

    fn append_record(
        &mut self,
        offset: u64,
        header: &RecordHeader,
        label: &[u8],
        payload: &[u8],
    ) -> Result<u64> {
        let prefix = header.encode_with_label(label);
        self.write_at(&prefix, offset)?;
        let payload_at = offset + prefix.len() as u64;
        self.write_at(payload, payload_at)?;
        let padding = payload_padding(header.payload_len);
        if padding > 0 {
            self.write_at(&[0u8; 64][..padding], payload_at + payload.len() as u64)?;
        }
        Ok(payload_at)
    }

    /// Writes the index and the commit slots. Nothing is visible to anyone before this.
    pub(crate) fn commit(mut self) -> Result<u64> {
        self.check_failed()?;
        if self.pending.is_empty() {
            return Ok(self.base.commit.generation);
        }
        let result = self.write_commit();
        if let Err(e) = &result {
            self.remember_failure(e);
        }
        result
    }

    fn write_commit(&mut self) -> Result<u64> {
        let base = self.base.clone();
        // Only a damaged or hostile slot gets here (2^64 commits), but wrapping to 0 would
        // write two invalid slots and lose the whole pack.
        let generation = base.commit.generation.checked_add(1).ok_or_else(|| {
            Error::corrupt(
                &base.file.path,
                format!("commit generation {} cannot grow", base.commit.generation),
            )
        })?;
        let batch = merge::newest_per_key(std::mem::take(&mut self.pending));
        let mut root = Root {
            blocks: Vec::new(),
            ..base.root.clone()
        };
        for entry in &batch {
            match base.lookup(&entry.key) {
                Ok(Some(prev)) if prev.kind == EntryKind::Value => {
                    root.live_entries = root.live_entries.saturating_sub(1);
                    root.live_payload_bytes =
                        root.live_payload_bytes.saturating_sub(prev.payload_len);
                    root.live_record_bytes = root
                        .live_record_bytes
                        .saturating_sub(prev.record_len().unwrap_or(0));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, key = %entry.key, "unreadable index entry while committing")
                }
            }
            if entry.kind == EntryKind::Value {
                // Saturating: the totals come from the file, which may be damaged.
                root.live_entries = root.live_entries.saturating_add(1);
                root.live_payload_bytes = root.live_payload_bytes.saturating_add(entry.payload_len);
                root.live_record_bytes = root
                    .live_record_bytes
                    .saturating_add(entry.record_len().unwrap_or(0));
            }
        }
        let mut index_bytes = root.index_bytes.saturating_sub(base.root_record_len());
        let mut blocks = base.blocks.clone();
        let mut merged = batch;
        while let Some(top) = blocks.first().cloned() {
            let must = blocks.len() >= MAX_BLOCKS - 1;
            if !must && top.count > 2 * merged.len() as u64 {
                break;
            }
            let older = salvage_entries(&base, &top);
            blocks.remove(0);
            merged = merge::merge(&merged, &older, blocks.is_empty());
            index_bytes = index_bytes.saturating_sub(top.record_len);
        }
        if blocks.is_empty() {
            merged.retain(|e| e.kind == EntryKind::Value);
        }
        let mut refs: Vec<BlockRef> = Vec::with_capacity(blocks.len() + 1);
        if !merged.is_empty() {
            let payload = index::encode_block(&merged);
            let header = RecordHeader::for_payload(RecordKind::IndexBlock, [0; 32], 0, &payload);
            let offset = self.tail;
            self.append_record(offset, &header, b"", &payload)?;
            let len = header.record_len().unwrap_or(0);
            self.tail += len;
            index_bytes = index_bytes.saturating_add(len);
            refs.push(BlockRef {
                offset,
                count: merged.len() as u64,
            });
        }
        refs.extend(blocks.iter().map(|b| BlockRef {
            offset: b.offset,
            count: b.count,
        }));
        let root_payload_len = (index::ROOT_FIXED_LEN + index::BLOCK_REF_LEN * refs.len()) as u64;
        index_bytes =
            index_bytes.saturating_add(HEADER_LEN + align_up(root_payload_len).unwrap_or(0));
        root.index_bytes = index_bytes;
        root.blocks = refs;
        let payload = root.encode();
        let header = RecordHeader::for_payload(RecordKind::IndexRoot, [0; 32], 0, &payload);
        let root_offset = self.tail;
        self.append_record(root_offset, &header, b"", &payload)?;
        self.tail += header.record_len().unwrap_or(0);

        let slot = CommitSlot {
            generation,
            committed_len: self.tail,
            root_offset,
            superseded: false,
            // Appends keep the signatures: they cover the entries they list, no others.
            signature_offset: base.commit.signature_offset,
        };
        self.publish(&slot)?;
        let fresh = Arc::new(View::load(base.file.clone(), Some(&base))?);
        self.pack.install(fresh.clone());
        self.base = fresh;
        Ok(slot.generation)
    }

    /// Writes `slot` into both commit slots in the crash-safe order of docs/FORMAT.md 4.3,
    /// syncing as the pack's durability says.
    pub(crate) fn publish(&mut self, slot: &CommitSlot) -> Result<()> {
        let durable = self.pack.inner.options.durability == Durability::Full;
        self.publish_with(slot, durable)
    }

    /// Writes `slot` into both commit slots, syncing only if `durable`.
    pub(crate) fn publish_with(&mut self, slot: &CommitSlot, durable: bool) -> Result<()> {
        let full = durable;
        let sync = |view: &View| {
            view.file
                .file
                .sync_data()
                .map_err(|e| Error::write(&view.file.path, e))
        };
        if full {
            sync(&self.base)?;
        }
        let live = self.base.commit.generation;
        let first = if self.base.slot_generations[0] == Some(live)
            && self.base.slot_generations[1] != Some(live)
        {
            1
        } else {
            0
        };
        let bytes = slot.encode();
        self.write_at(&bytes, SLOT_OFFSETS[first])?;
        if full {
            sync(&self.base)?;
        }
        if let Err(e) = self.write_at(&bytes, SLOT_OFFSETS[1 - first]) {
            tracing::warn!(error = %e, "could not mirror the commit slot; the commit stands");
        }
        Ok(())
    }

    /// The locked file's current view (for compaction).
    pub(crate) fn base_arc(&self) -> &Arc<View> {
        &self.base
    }
}

/// The entries of a block being merged away, sorted by key without duplicates as a merge
/// needs them. An entry whose checksum fails is dropped with a warning (its key cannot be
/// trusted, so it is unreachable anyway), so one bad index entry cannot stop every later
/// commit; a block whose valid entries are out of order (which no writer produces, and only
/// a full verification notices) is sorted rather than merged as it is, which would spread the
/// disorder into the new block and make lookups miss keys in it.
fn salvage_entries(view: &View, block: &super::view::Block) -> Vec<IndexEntry> {
    let mut entries = match view.block_entries(block) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "dropping unreadable index entries while merging");
            view.block_bytes(block)
                .map(|bytes| {
                    bytes
                        .chunks_exact(index::ENTRY_LEN)
                        .filter_map(|chunk| IndexEntry::decode(chunk).ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    if !entries.windows(2).all(|w| w[0].key < w[1].key) {
        tracing::warn!(
            offset = block.offset,
            "sorting an index block whose entries are out of order while merging"
        );
        entries.sort_by_key(|e| e.key);
        entries.dedup_by_key(|e| e.key);
    }
    entries
}

/// Signing: records that are not entries, and a commit that changes only the signature chain.
impl Session<'_> {
    /// Appends already encoded records (a signature chain, see `signature.rs`) at the tail,
    /// which must be where they were encoded for; returns the offset they start at.
    pub(crate) fn append_encoded(&mut self, bytes: &[u8]) -> Result<u64> {
        self.check_failed()?;
        let offset = self.tail;
        let result = self.write_at(bytes, offset);
        if let Err(e) = &result {
            self.remember_failure(e);
        }
        result?;
        self.tail += bytes.len() as u64;
        Ok(offset)
    }

    /// The offset the next append lands at.
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Commits what `append_encoded` wrote with `signature_offset` as the head of the chain;
    /// the index is unchanged. Returns the new generation.
    pub(crate) fn commit_signatures(mut self, signature_offset: u64) -> Result<u64> {
        self.check_failed()?;
        let base = self.base.clone();
        let generation = base
            .commit
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::corrupt(&base.file.path, "commit generation cannot grow"))?;
        let slot = CommitSlot {
            generation,
            committed_len: self.tail,
            signature_offset,
            ..base.commit
        };
        self.publish(&slot)?;
        let fresh = Arc::new(View::load(base.file.clone(), Some(&base))?);
        self.pack.install(fresh.clone());
        self.base = fresh;
        Ok(generation)
    }
}

fn unreachable_busy(pack: &Pack) -> Error {
    Error::Lock {
        path: pack.path().to_path_buf(),
        source: io::Error::other("the writer lock was busy although we waited for it"),
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Releasing an flock cannot meaningfully fail; closing the file would release it too.
        let _ = self.base.file.file.unlock();
    }
}

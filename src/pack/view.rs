//! A reader's snapshot of one commit: the mapping, the live slot, the index root and blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::format::index::{self, BLOCK_STRIDE, BlockRef, ENTRY_LEN, EntryKind, IndexEntry, Root};
use crate::format::record::{RecordHeader, RecordKind};
use crate::format::signature::SignatureRecord;
use crate::format::superblock::{
    self, CommitSlot, DATA_START, Publication, SLOT_CRC_WORD_AT, SLOT_GENERATION_AT, SLOT_LEN,
};
use crate::{Error, Key, Result};

use super::file::{PackFile, Source};
use super::mapping::{CommittedLen, Mapping, SlotWords, data_area};

/// Which entries of an index block this process has verified the values of (the
/// `Verify::Once` policy): one bit per entry position, set once and never cleared. Carried
/// from view to view for as long as the block stays in the index.
#[derive(Debug)]
pub(crate) struct VerifiedBits(Box<[AtomicU64]>);

impl VerifiedBits {
    fn new(count: u64) -> VerifiedBits {
        let words = usize::try_from(count.div_ceil(64)).unwrap_or(0);
        VerifiedBits((0..words).map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn contains(&self, position: usize) -> bool {
        self.0
            .get(position / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (position % 64)) != 0)
    }

    pub(crate) fn insert(&self, position: usize) {
        if let Some(word) = self.0.get(position / 64) {
            word.fetch_or(1 << (position % 64), Ordering::Relaxed);
        }
    }
}

/// An index block the root refers to, resolved and bounds-checked.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) offset: u64,
    pub(crate) payload_offset: u64,
    pub(crate) count: u64,
    pub(crate) record_len: u64,
    pub(crate) verified: Arc<VerifiedBits>,
    /// Whether this process checked the block's payload checksum (done for blocks an unsynced
    /// commit wrote, which a power loss may have torn; carried from view to view).
    payload_checked: bool,
}

/// Where a lookup found its entry.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) entry: IndexEntry,
    block: usize,
    position: usize,
}

/// One commit of one pack file, as a reader sees it.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) file: Arc<PackFile>,
    pub(crate) map: Arc<Mapping>,
    pub(crate) commit: CommitSlot,
    /// Which slot `commit` was read from.
    pub(crate) live: usize,
    /// Each slot that decoded as valid (one may hold a newer commit that failed its checks:
    /// see [`View::load_from`]).
    pub(crate) slots: [Option<CommitSlot>; 2],
    /// The raw slot words read with `pread`; `None` for a slot that did not decode, which
    /// keeps readers re-checking it until a writer repairs it.
    seen: [Option<SlotWords>; 2],
    pub(crate) root: Root,
    /// The record length of the index root (0 for an empty pack).
    root_record_len: u64,
    pub(crate) blocks: Vec<Block>,
    /// The committed data area `[DATA_START, committed_len)` as one `Bytes`, so that values
    /// are handed out as slices of it: a reference count, no allocation.
    data: Bytes,
}

/// The slots as `read`, or read again while one fails to decode and keeps changing: a writer
/// publishing an unsynced commit rewrites the live slot in place, and a read racing that
/// write can see it half written. A slot that reads the same twice is damaged, not in flight.
fn settle(file: &PackFile, mut read: [[u8; SLOT_LEN]; 2]) -> Result<[[u8; SLOT_LEN]; 2]> {
    for _ in 0..4 {
        if read.iter().all(|slot| CommitSlot::decode(slot).is_ok()) {
            break;
        }
        let again = file.read_slots()?;
        if again == read {
            break;
        }
        read = again;
    }
    Ok(read)
}

fn slot_words(slot: &[u8]) -> SlotWords {
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&slot[at..at + 8]);
        u64::from_le_bytes(b)
    };
    (word(SLOT_GENERATION_AT), word(SLOT_CRC_WORD_AT))
}

impl View {
    /// Reads the live commit of `file`. Reuses `previous`'s mapping if it is long enough and
    /// its verification record if it is of the same file.
    pub(crate) fn load(file: Arc<PackFile>, previous: Option<&View>) -> Result<View> {
        let slots = settle(&file, file.read_slots()?)?;
        let file_len = file.len()?;
        View::load_from(file, previous, slots, file_len)
    }

    /// The first view of a file just opened, from the slots read while opening it.
    pub(crate) fn first(file: Arc<PackFile>) -> Result<View> {
        let (slots, file_len) = file.opened_with;
        let settled = settle(&file, slots)?;
        if settled != slots {
            // A writer was rewriting a slot while we opened: measure the file again, after.
            return View::load(file, None);
        }
        View::load_from(file, None, slots, file_len)
    }

    /// The view of the newest valid commit, or of the older one when the newest was published
    /// unsynced and does not check out (docs/FORMAT.md, section 4.3): after a power loss, the
    /// records of an unsynced commit may be missing or torn while its slot is whole.
    fn load_from(
        file: Arc<PackFile>,
        previous: Option<&View>,
        slots: [[u8; SLOT_LEN]; 2],
        file_len: u64,
    ) -> Result<View> {
        let decoded = superblock::decode_slots([&slots[0], &slots[1]], file_len);
        let valid = [0, 1].map(|i| decoded[i].as_ref().ok().copied());
        let newest = match valid {
            [Some(a), Some(b)] if b.generation > a.generation => 1,
            [Some(_), _] => 0,
            [None, Some(_)] => 1,
            [None, None] => {
                let reason = |i: usize| match &decoded[i] {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                };
                return Err(Error::corrupt(
                    &file.path,
                    format!(
                        "no valid commit slot (slot 0: {}; slot 1: {})",
                        reason(0),
                        reason(1)
                    ),
                ));
            }
        };
        let seen = [0, 1].map(|i| valid[i].map(|_| slot_words(&slots[i])));
        let load = |live: usize| View::build(file.clone(), previous, live, valid, seen, file_len);
        match load(newest) {
            Ok(view) => Ok(view),
            Err(e) => {
                let older = 1 - newest;
                let unsynced = matches!(
                    valid[newest].map(|s| s.publication),
                    Some(Publication::Unsynced { .. })
                );
                let newest_generation = valid[newest].map_or(0, |s| s.generation);
                match valid[older] {
                    Some(slot) if unsynced && slot.generation < newest_generation => {
                        tracing::warn!(
                            path = %file.path.display(),
                            error = %e,
                            generation = slot.generation,
                            "the newest commit was not synced and did not survive; using the \
                             commit before it"
                        );
                        load(older)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// The view of the commit in slot `live`.
    fn build(
        file: Arc<PackFile>,
        previous: Option<&View>,
        live: usize,
        slots: [Option<CommitSlot>; 2],
        seen: [Option<SlotWords>; 2],
        file_len: u64,
    ) -> Result<View> {
        let path = &file.path;
        let commit =
            slots[live].ok_or_else(|| Error::corrupt(path, "the commit slot is invalid"))?;
        let same_file = previous.filter(|p| Arc::ptr_eq(&p.file, &file));
        let map = match same_file {
            Some(p) if p.map.len() >= commit.committed_len => p.map.clone(),
            _ => Arc::new(match &file.source {
                Source::File(os_file) => {
                    Mapping::new(os_file, file_len).map_err(|e| Error::read(path, e))?
                }
                Source::Memory(bytes) => {
                    Mapping::from_memory(bytes.clone()).map_err(|e| Error::read(path, e))?
                }
            }),
        };
        let data = data_area(&map, CommittedLen::of(&commit))
            .ok_or_else(|| Error::corrupt(path, "the commit is longer than the mapping"))?;
        let mut view = View {
            file,
            map,
            commit,
            live,
            slots,
            seen,
            root: Root::default(),
            root_record_len: 0,
            blocks: Vec::new(),
            data,
        };
        if commit.root_offset != 0 {
            let (root, root_record_len) = view.load_root()?;
            view.root = root;
            view.root_record_len = root_record_len;
            view.blocks = view
                .root
                .blocks
                .iter()
                .map(|b| view.resolve_block(b, same_file))
                .collect::<Result<_>>()?;
        }
        if let Publication::Unsynced { durable_len } = commit.publication
            && commit.signature_offset != 0
            && same_file.is_none_or(|p| p.commit.signature_offset != commit.signature_offset)
        {
            view.check_unsynced_signatures(durable_len)?;
        }
        Ok(view)
    }

    /// Checks whole the signature records an unsynced commit wrote past what was durable: a
    /// power loss may have torn them while the slot survived, and such a commit must be
    /// refused at load (the older one used, as for a torn index block) rather than found with
    /// a broken chain that makes every signed entry untrusted. The chain runs from the newest
    /// record backwards; the walk stops at the first record that starts before `durable_len`
    /// (it and those before it were durable: damage there is reported when signatures are
    /// read, as in a synced commit).
    fn check_unsynced_signatures(&self, durable_len: u64) -> Result<()> {
        let mut at = self.commit.signature_offset;
        for _ in 0..=crate::format::signature::MAX_SIGNATURES {
            if at == 0 {
                return Ok(());
            }
            // Unsynced commits only ever append at or past `durable_len` (the first unsynced
            // commit after a synced one is synced whole): a record before it was durable, and
            // damage there is no power loss's doing.
            if at < durable_len {
                return Ok(());
            }
            let (header, _) = self.record_header(at)?;
            if header.kind != RecordKind::Signature {
                return Err(self.corrupt(format!("the record at offset {at} is not a signature")));
            }
            let payload = self.record_payload(at, &header)?;
            let previous = SignatureRecord::decode(payload)
                .map_err(|e| self.corrupt(format!("signature at offset {at}: {e}")))?
                .header
                .previous;
            if previous >= at {
                return Err(self.corrupt(format!(
                    "signature at offset {at} points forward, at offset {previous}"
                )));
            }
            at = previous;
        }
        Err(self.corrupt("the signature chain is too long"))
    }

    /// Whether no writer has touched a commit slot since this view was loaded. Two pairs of
    /// word loads from the mapping: no system call, no lock.
    pub(crate) fn is_current(&self) -> bool {
        if let Mapping::Memory(_) = *self.map {
            return true; // Bytes in memory are immutable: their first view is their only one.
        }
        let now = self.map.slot_words();
        self.seen[0] == Some(now[0]) && self.seen[1] == Some(now[1])
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::corrupt(&self.file.path, detail)
    }

    /// The committed bytes `[offset, offset + len)`, or a corruption error.
    pub(crate) fn bytes(&self, offset: u64, len: u64, what: &str) -> Result<&[u8]> {
        self.map
            .committed(CommittedLen::of(&self.commit), offset, len)
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{what} at offset {offset} ({len} bytes) is outside the committed {} bytes",
                    self.commit.committed_len
                ))
            })
    }

    /// Decodes the record header at `offset`, returning it with its label.
    pub(crate) fn record_header(&self, offset: u64) -> Result<(RecordHeader, &[u8])> {
        if offset < DATA_START || !offset.is_multiple_of(crate::format::ALIGN) {
            return Err(self.corrupt(format!("record offset {offset} is invalid")));
        }
        let available = self.commit.committed_len.saturating_sub(offset);
        let bytes = self.bytes(offset, available.min(64 + 1024), "record header")?;
        RecordHeader::decode(bytes)
            .map_err(|e| self.corrupt(format!("record at offset {offset}: {e}")))
    }

    /// The payload of the record at `offset`, checked against its header checksum.
    pub(crate) fn record_payload(&self, offset: u64, header: &RecordHeader) -> Result<&[u8]> {
        let start = header
            .payload_offset(offset)
            .ok_or_else(|| self.corrupt(format!("record at offset {offset} overflows")))?;
        let payload = self.bytes(start, header.payload_len, "record payload")?;
        if crc32fast::hash(payload) != header.payload_crc {
            return Err(self.corrupt(format!(
                "record at offset {offset}: payload checksum mismatch"
            )));
        }
        Ok(payload)
    }

    /// The record length of the index root (0 for an empty pack).
    pub(crate) fn root_record_len(&self) -> u64 {
        self.root_record_len
    }

    fn load_root(&self) -> Result<(Root, u64)> {
        let offset = self.commit.root_offset;
        let (header, _) = self.record_header(offset)?;
        if header.kind != RecordKind::IndexRoot {
            return Err(self.corrupt(format!(
                "the commit points at a {:?} record, not an index root, at offset {offset}",
                header.kind
            )));
        }
        let max = (index::ROOT_FIXED_LEN + index::MAX_BLOCKS * index::BLOCK_REF_LEN) as u64;
        if header.payload_len > max {
            return Err(self.corrupt(format!("index root at offset {offset} is too long")));
        }
        let payload = self.record_payload(offset, &header)?;
        let root = Root::decode(payload).map_err(|e| self.corrupt(format!("index root: {e}")))?;
        Ok((root, header.record_len().unwrap_or(0)))
    }

    fn resolve_block(&self, block: &BlockRef, previous: Option<&View>) -> Result<Block> {
        let (header, _) = self.record_header(block.offset)?;
        let expected = block.count.checked_mul(BLOCK_STRIDE as u64);
        if header.kind != RecordKind::IndexBlock || expected != Some(header.payload_len) {
            return Err(self.corrupt(format!(
                "index block at offset {} does not match its reference",
                block.offset
            )));
        }
        let payload_offset = header
            .payload_offset(block.offset)
            .ok_or_else(|| self.corrupt("index block offset overflows"))?;
        self.bytes(payload_offset, header.payload_len, "index block")?;
        let known = previous.and_then(|p| p.blocks.iter().find(|b| b.offset == block.offset));
        let verified = known.map_or_else(
            || Arc::new(VerifiedBits::new(block.count)),
            |b| b.verified.clone(),
        );
        let record_len = header.record_len().unwrap_or(0);
        // A block an unsynced commit wrote may have been torn by a power loss while the slot
        // survived: check it whole, once per process, so that such a commit is refused at
        // load (and the older one used) rather than found broken one lookup at a time.
        let mut payload_checked = known.is_some_and(|b| b.payload_checked);
        if let Publication::Unsynced { durable_len } = self.commit.publication
            && block.offset.saturating_add(record_len) > durable_len
            && !payload_checked
        {
            self.record_payload(block.offset, &header)?;
            payload_checked = true;
        }
        Ok(Block {
            offset: block.offset,
            payload_offset,
            count: block.count,
            record_len,
            verified,
            payload_checked,
        })
    }

    /// A block's whole payload: entries and prefix array.
    fn block_payload(&self, block: &Block) -> Result<&[u8]> {
        self.bytes(
            block.payload_offset,
            block.count * BLOCK_STRIDE as u64,
            "index block",
        )
    }

    /// A block's sorted entries (without the prefix array).
    pub(crate) fn block_bytes(&self, block: &Block) -> Result<&[u8]> {
        self.bytes(
            block.payload_offset,
            block.count * ENTRY_LEN as u64,
            "index block",
        )
    }

    /// The newest index entry for `key`, value or tombstone.
    pub(crate) fn lookup(&self, key: &Key) -> Result<Option<IndexEntry>> {
        Ok(self.find(key)?.map(|found| found.entry))
    }

    /// The newest index entry for `key` and where it is.
    pub(crate) fn find(&self, key: &Key) -> Result<Option<Found>> {
        for (i, block) in self.blocks.iter().enumerate() {
            let found = index::search_block(self.block_payload(block)?, key).map_err(|e| {
                self.corrupt(format!("index block at offset {}: {e}", block.offset))
            })?;
            if let Some((position, entry)) = found {
                return Ok(Some(Found {
                    entry,
                    block: i,
                    position,
                }));
            }
        }
        Ok(None)
    }

    /// Whether this process already checked the value a lookup found.
    pub(crate) fn is_verified(&self, found: &Found) -> bool {
        self.blocks[found.block].verified.contains(found.position)
    }

    /// Records that this process checked the value a lookup found.
    pub(crate) fn set_verified(&self, found: &Found) {
        self.blocks[found.block].verified.insert(found.position);
    }

    /// The payload an index entry points at (not checksummed here).
    pub(crate) fn payload(&self, entry: &IndexEntry) -> Result<(u64, &[u8])> {
        let offset = entry
            .payload_offset()
            .filter(|_| entry.record_offset >= DATA_START)
            .ok_or_else(|| self.corrupt(format!("index entry for {} is invalid", entry.key)))?;
        Ok((offset, self.bytes(offset, entry.payload_len, "payload")?))
    }

    /// The committed bytes `[offset, offset + len)` as a `Bytes` sharing the mapping.
    pub(crate) fn shared_bytes(&self, offset: u64, len: u64) -> Result<Bytes> {
        self.bytes(offset, len, "value")?;
        let start = (offset - DATA_START) as usize;
        Ok(self.data.slice(start..start + len as usize))
    }

    /// Every entry of a block, verified, and checked to be what a lookup sees: strictly sorted,
    /// each with its key's prefix in the prefix array. A corrupt entry or a block that lookups
    /// would read differently is reported, not skipped.
    pub(crate) fn block_entries(&self, block: &Block) -> Result<Vec<IndexEntry>> {
        let (bytes, prefixes) = index::block_parts(self.block_payload(block)?)
            .map_err(|e| self.corrupt(format!("index block at offset {}: {e}", block.offset)))?;
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(block.count as usize);
        for (i, (chunk, prefix)) in bytes
            .chunks_exact(ENTRY_LEN)
            .zip(prefixes.chunks_exact(index::PREFIX_LEN))
            .enumerate()
        {
            let bad = |detail: String| {
                self.corrupt(format!(
                    "index block at offset {}, entry {i}: {detail}",
                    block.offset
                ))
            };
            let entry = IndexEntry::decode(chunk).map_err(|e| bad(e.to_string()))?;
            if prefix != &entry.key.as_bytes()[..index::PREFIX_LEN] {
                return Err(bad("its prefix does not match its key".to_string()));
            }
            if entries.last().is_some_and(|last| last.key >= entry.key) {
                return Err(bad("the block is not sorted".to_string()));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The newest index entry of every key (value or tombstone), sorted by key: the index
    /// alone, every block read whole and verified.
    pub(crate) fn newest_entries(&self) -> Result<BTreeMap<Key, IndexEntry>> {
        let blocks = self
            .blocks
            .iter()
            .map(|block| self.block_entries(block))
            .collect::<Result<Vec<_>>>()?;
        Ok(index::newest_per_key(blocks, |e| e.key))
    }

    /// The newest live value of each key, sorted by key, each with its label: the index, and
    /// each value's record header, which must be the one its entry describes. Not the values:
    /// their checksums are the caller's to check.
    pub(crate) fn live_entries(&self) -> Result<Vec<(IndexEntry, &[u8])>> {
        let mut live = Vec::new();
        for entry in self.newest_entries()?.into_values() {
            if entry.kind != EntryKind::Value {
                continue;
            }
            let (header, label) = self.record_header(entry.record_offset)?;
            if !entry.matches(&header) {
                return Err(self.corrupt(format!(
                    "record at offset {} does not match its index entry for {}",
                    entry.record_offset, entry.key
                )));
            }
            live.push((entry, label));
        }
        Ok(live)
    }

    /// The dead bytes: committed bytes that no live value or index structure uses.
    pub(crate) fn dead_bytes(&self) -> u64 {
        (self.commit.committed_len - DATA_START)
            .saturating_sub(self.root.live_record_bytes)
            .saturating_sub(self.root.index_bytes)
    }
}

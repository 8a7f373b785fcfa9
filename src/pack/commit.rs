//! Committing a session: the new index over the records it appended (the log-structured
//! maintenance of docs/FORMAT.md, section 7), the root with the pack's totals, and the commit
//! slot that publishes them.

use std::sync::Arc;

use crate::format::index::{BlockRef, ENTRY_LEN, EntryKind, IndexEntry, MAX_BLOCKS, Root};
use crate::format::superblock::{CommitSlot, Publication};
use crate::{Error, Result};

use super::index_merge::{batch_block, merge_blocks};
use super::publish::publish;
use super::session::Session;
use super::view::{Block, View};

impl Session<'_> {
    /// Writes the index and the commit slot; returns the new generation. Nothing is visible to
    /// anyone before this, and once the slot is written the commit stands: an error after
    /// that is [`Error::NotDurable`], never a plain failure a caller would retry.
    pub(crate) fn commit(mut self) -> Result<u64> {
        self.check_failed()?;
        if self.pending.is_empty() {
            return Ok(self.base.commit.generation);
        }
        let result = self.write_index();
        let slot = self.remember(result)?;
        self.publish(slot)
    }

    /// Publishes `slot` and reads the new commit back; returns its generation.
    fn publish(self, slot: CommitSlot) -> Result<u64> {
        let base = self.base.clone();
        publish(&base, slot, self.pack.inner.options.durability)?;
        // Published: failing to read the new commit back is this handle's problem, not the
        // commit's. The next lookup notices the changed slot and loads it again.
        match View::load(base.file.clone(), Some(&base)) {
            Ok(fresh) => self.pack.cache_view(Arc::new(fresh)),
            Err(e) => tracing::warn!(error = %e, "could not read back a commit that landed"),
        }
        Ok(slot.generation)
    }

    /// Appends the new index block and root; returns the slot that would commit them.
    fn write_index(&mut self) -> Result<CommitSlot> {
        let base = self.base.clone();
        let generation = next_generation(&base)?;
        let batch = batch_block(std::mem::take(&mut self.pending));
        let mut root = totals(&base, &batch);
        let (merged, kept) = merge_policy(&base, batch)?;
        // The blocks merged away are the newest ones, the ones not kept.
        let merged_away = base.blocks[..base.blocks.len() - kept.len()]
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b.record_len));
        let mut index_bytes = base
            .root
            .index_bytes
            .saturating_sub(base.root_record_len())
            .saturating_sub(merged_away);
        root.blocks = Vec::with_capacity(kept.len() + 1);
        if !merged.is_empty() {
            let (block, len) = self.appending(|a| a.index_block(&merged))?;
            index_bytes = index_bytes.saturating_add(len);
            root.blocks.push(block);
        }
        root.blocks.extend(kept);
        root.index_bytes = index_bytes;
        let root_offset = self.appending(|a| a.root(root))?;
        Ok(CommitSlot {
            generation,
            committed_len: self.tail,
            root_offset,
            superseded: false,
            publication: Publication::Synced,
            // Appends keep the signatures: they cover the entries they list, no others.
            signature_offset: base.commit.signature_offset,
        })
    }

    /// Commits the records [`Session::append_encoded`] wrote, with `signature_offset` as the
    /// head of the signature chain; the index is unchanged. Returns the new generation.
    pub(crate) fn commit_signatures(self, signature_offset: u64) -> Result<u64> {
        self.check_failed()?;
        let slot = CommitSlot {
            generation: next_generation(&self.base)?,
            committed_len: self.tail,
            superseded: false,
            publication: Publication::Synced,
            signature_offset,
            ..self.base.commit
        };
        self.publish(slot)
    }
}

/// The generation of the commit after `base`'s. Only a damaged or hostile slot gets to the
/// limit (2^64 commits), but wrapping to 0 would write an invalid slot and lose the commit.
pub(super) fn next_generation(base: &View) -> Result<u64> {
    base.commit.generation.checked_add(1).ok_or_else(|| {
        Error::corrupt(
            &base.file.path,
            format!("commit generation {} cannot grow", base.commit.generation),
        )
    })
}

/// The base's totals with `batch` (sorted, one entry per key) applied.
fn totals(base: &View, batch: &[IndexEntry]) -> Root {
    let mut root = Root {
        blocks: Vec::new(),
        ..base.root.clone()
    };
    for entry in batch {
        match base.lookup(&entry.key) {
            Ok(Some(prev)) if prev.kind == EntryKind::Value => {
                root.live_entries = root.live_entries.saturating_sub(1);
                root.live_payload_bytes = root.live_payload_bytes.saturating_sub(prev.payload_len);
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
    root
}

/// Merges the batch with the newest blocks while they hold at most twice as many entries
/// (always when the root would list too many blocks); returns the new block's entries and the
/// references of the older blocks kept as they are. A block with a damaged entry is never
/// merged away: its damage stays where lookups report it, instead of being dropped and
/// letting an older version of the damaged key show through.
fn merge_policy(base: &View, batch: Vec<IndexEntry>) -> Result<(Vec<IndexEntry>, Vec<BlockRef>)> {
    let mut merged = batch;
    let mut rest = &base.blocks[..];
    while let Some((top, older)) = rest.split_first() {
        let must = rest.len() >= MAX_BLOCKS - 1;
        if !must && top.count > 2 * merged.len() as u64 {
            break;
        }
        let Some(entries) = salvage_entries(base, top) else {
            if must {
                return Err(base.corrupt(format!(
                    "index block at offset {} is damaged and the index is full; compact the \
                     pack to repair it",
                    top.offset
                )));
            }
            break;
        };
        merged = merge_blocks(&merged, &entries, older.is_empty());
        rest = older;
    }
    if rest.is_empty() {
        merged.retain(|e| e.kind == EntryKind::Value);
    }
    let kept = rest
        .iter()
        .map(|b| BlockRef {
            offset: b.offset,
            count: b.count,
        })
        .collect();
    Ok((merged, kept))
}

/// The entries of a block being merged away, sorted by key without duplicates as a merge
/// needs them, or `None` if one fails its checksum: its key cannot be trusted, so the block
/// stays. A block whose entries are valid but out of order (which no writer produces, and only
/// a full verification notices) is sorted rather than merged as it is, which would spread the
/// disorder into the new block and make lookups miss keys in it.
fn salvage_entries(view: &View, block: &Block) -> Option<Vec<IndexEntry>> {
    let mut entries = match view.block_entries(block) {
        Ok(entries) => entries,
        Err(_) => {
            let decoded: std::result::Result<Vec<IndexEntry>, _> = view
                .block_bytes(block)
                .ok()?
                .chunks_exact(ENTRY_LEN)
                .map(IndexEntry::decode)
                .collect();
            match decoded {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(
                        offset = block.offset,
                        error = %e,
                        "keeping a damaged index block as it is instead of merging it"
                    );
                    return None;
                }
            }
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
    Some(entries)
}

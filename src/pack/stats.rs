//! What a pack holds: per-entry listings and totals.

use crate::format::index::EntryKind;
use crate::{Key, Pack, Result};

/// Totals for a pack at its latest commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys with a value.
    pub entries: u64,
    /// Sum of the values' lengths.
    pub live_bytes: u64,
    /// Bytes of committed data no live value or index uses: what compaction would reclaim.
    pub dead_bytes: u64,
    /// Bytes of live index blocks and the index root.
    pub index_bytes: u64,
    /// Committed length of the file.
    pub committed_len: u64,
    /// Length of the file on disk (at least `committed_len`).
    pub file_size: u64,
    /// Number of commits so far, counting the creation.
    pub generation: u64,
    /// Number of index blocks a lookup may search.
    pub index_blocks: usize,
    /// Bytes this handle currently has mapped.
    pub mapped_bytes: u64,
}

/// One live entry of a pack, as listed by [`Pack::iter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    key: Key,
    label: String,
    size: u64,
    offset: u64,
    record_offset: u64,
}

impl Entry {
    /// The entry's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The label stored with the value (empty if none).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The value's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The value's offset in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The offset of the entry's record (its header, then its label, then the value): the
    /// offset [`Problem::offset`](crate::Problem::offset) reports for a damaged entry.
    pub fn record_offset(&self) -> u64 {
        self.record_offset
    }
}

impl Pack {
    /// Totals at the latest commit.
    pub fn stats(&self) -> Result<Stats> {
        let view = self.view()?;
        Ok(Stats {
            entries: view.root.live_entries,
            live_bytes: view.root.live_payload_bytes,
            dead_bytes: view.dead_bytes(),
            index_bytes: view.root.index_bytes,
            committed_len: view.commit.committed_len,
            file_size: view.file.len()?,
            generation: view.commit.generation,
            index_blocks: view.blocks.len(),
            mapped_bytes: view.map.len(),
        })
    }

    /// Every live entry with its label, sorted by key. Reads the index and each entry's record
    /// header, not the values.
    pub fn iter(&self) -> Result<std::vec::IntoIter<Entry>> {
        let view = self.view()?;
        let mut out = Vec::new();
        for (entry, label) in view.live_entries()? {
            let (offset, _) = view.payload(&entry)?;
            out.push(Entry {
                key: entry.key,
                label: String::from_utf8_lossy(label).into_owned(),
                size: entry.payload_len,
                offset,
                record_offset: entry.record_offset,
            });
        }
        Ok(out.into_iter())
    }

    /// Every key with a value, sorted. Reads the index alone.
    pub fn keys(&self) -> Result<Vec<Key>> {
        Ok(self
            .view()?
            .newest_entries()?
            .into_values()
            .filter(|entry| entry.kind == EntryKind::Value)
            .map(|entry| entry.key)
            .collect())
    }
}

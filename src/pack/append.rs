//! Laying out records: the one place that turns entries, index blocks and roots into bytes at
//! the tail of a file. The writer appends through it at the committed length; compaction
//! fills a new file through it from the data start.

use std::fs::File;
use std::path::Path;

use crate::format::index::{self, BlockRef, EntryKind, IndexEntry, Root};
use crate::format::record::{self, MAX_LABEL_LEN, RecordHeader, RecordKind, payload_padding};
use crate::{Error, Key, Result};

use crate::storage::{Io, Storage};

/// Appends records to `file` from offset `tail` on, each at the end of the one before.
pub(crate) struct Appender<'f> {
    file: &'f File,
    path: &'f Path,
    tail: u64,
}

impl<'f> Appender<'f> {
    /// Appends to `file` (at `path`, for errors) from `tail`, a multiple of 64.
    pub(crate) fn new(file: &'f File, path: &'f Path, tail: u64) -> Appender<'f> {
        Appender { file, path, tail }
    }

    /// Where the next record goes.
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Appends a value (or a tombstone, with no label and payload) under `key`; returns the
    /// index entry that points at it.
    pub(crate) fn entry(
        &mut self,
        key: &Key,
        label: &str,
        payload: &[u8],
        kind: EntryKind,
    ) -> Result<IndexEntry> {
        if label.len() > MAX_LABEL_LEN {
            return Err(Error::invalid_input(
                self.path,
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
            .ok_or_else(|| Error::invalid_input(self.path, "payload is too large"))?;
        let offset = self.tail;
        let end = offset
            .checked_add(record_len)
            .ok_or_else(|| Error::invalid_input(self.path, "pack offsets overflow"))?;
        // Header and label, then the payload from the caller's buffer, then the padding: a
        // large value is never copied.
        let prefix = header.encode_with_label(label.as_bytes());
        self.write(&prefix, offset)?;
        let payload_at = offset + prefix.len() as u64;
        self.write(payload, payload_at)?;
        let padding = payload_padding(header.payload_len);
        if padding > 0 {
            self.write(&[0u8; 64][..padding], payload_at + payload.len() as u64)?;
        }
        self.tail = end;
        Ok(IndexEntry {
            key: *key,
            record_offset: offset,
            payload_len: header.payload_len,
            payload_crc: header.payload_crc,
            label_len: header.label_len,
            kind,
        })
    }

    /// Appends an index block of `entries`, sorted by key without duplicates; returns its
    /// reference and record length.
    pub(crate) fn index_block(&mut self, entries: &[IndexEntry]) -> Result<(BlockRef, u64)> {
        let bytes =
            record::encode_index_record(RecordKind::IndexBlock, &index::encode_block(entries));
        let offset = self.append_whole(&bytes)?;
        let block = BlockRef {
            offset,
            count: entries.len() as u64,
        };
        Ok((block, bytes.len() as u64))
    }

    /// Appends the index root; its `index_bytes` must count the live blocks, and this adds the
    /// root's own record. Returns the root's offset, for the commit slot.
    pub(crate) fn root(&mut self, mut root: Root) -> Result<u64> {
        root.index_bytes = root
            .index_bytes
            .saturating_add(index::root_record_len(root.blocks.len()));
        self.append_whole(&record::encode_index_record(
            RecordKind::IndexRoot,
            &root.encode(),
        ))
    }

    /// Appends `len` bytes of whole records copied from `from` at `from_at` (compaction).
    pub(crate) fn copy(&mut self, from: &File, from_at: u64, len: u64) -> Result<()> {
        let end = self
            .tail
            .checked_add(len)
            .ok_or_else(|| Error::invalid_input(self.path, "pack offsets overflow"))?;
        Io::copy_range(from, from_at, self.file, self.tail, len)
            .map_err(|e| Error::write(self.path, e))?;
        self.tail = end;
        Ok(())
    }

    /// Appends records already encoded for the tail they land at (a signature chain, see
    /// `signatures.rs`); returns the offset they start at.
    pub(crate) fn encoded(&mut self, bytes: &[u8]) -> Result<u64> {
        self.append_whole(bytes)
    }

    fn append_whole(&mut self, bytes: &[u8]) -> Result<u64> {
        let offset = self.tail;
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| Error::invalid_input(self.path, "pack offsets overflow"))?;
        self.write(bytes, offset)?;
        self.tail = end;
        Ok(offset)
    }

    fn write(&self, bytes: &[u8], offset: u64) -> Result<()> {
        Io::write_at(self.file, bytes, offset).map_err(|e| Error::write(self.path, e))
    }
}

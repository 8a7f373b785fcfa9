//! A pack's commit as standalone byte ranges: writing one commit of a live pack as a file of
//! its own (what `push` uploads), and reading such a file piece by piece by range reads, as
//! a client does that cannot map it (what a delta `pull` does with a pack in a bucket).
//!
//! A snapshot is an ordinary pack: the header page as written, both commit slots holding the
//! commit (never superseded), and the committed bytes `[DATA_START, committed_len)` copied
//! unchanged, so its length is exactly `committed_len`. Reading one takes four kinds of range:
//! the superblock, the index root, each index block, and the records of the entries wanted;
//! each decoder here checks everything the range holds before anything in it is used.

use std::ops::Range;

use super::index::{
    BLOCK_REF_LEN, BLOCK_STRIDE, BlockRef, ENTRY_LEN, EntryKind, IndexEntry, MAX_BLOCKS,
    PREFIX_LEN, ROOT_FIXED_LEN, Root, newest_per_key,
};
use super::record::{self, RecordHeader, RecordKind};
use super::superblock::{self, CommitSlot, DATA_START, HeaderError, PAGE, SLOT_LEN};
use super::{ALIGN, DecodeError, align_up};

/// The bytes of the superblock: header page and both slot pages.
pub const SUPERBLOCK_LEN: u64 = DATA_START;

/// The largest index root record: header plus a root listing [`MAX_BLOCKS`] blocks.
pub const MAX_ROOT_RECORD_LEN: u64 =
    record::HEADER_LEN + (ROOT_FIXED_LEN + MAX_BLOCKS * BLOCK_REF_LEN) as u64;

/// A slot page for a snapshot of `commit`: the slot, not superseded and synced (a snapshot is
/// written whole and synced before anyone opens it), then zeros to a page. A snapshot has it
/// at both slot offsets.
pub fn slot_page(commit: &CommitSlot) -> Vec<u8> {
    let mut page = vec![0u8; PAGE as usize];
    page[..SLOT_LEN].copy_from_slice(&commit.for_copy().encode());
    page
}

/// What the superblock of a snapshot says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// The encoded identity.
    pub identity: Vec<u8>,
    /// The live commit.
    pub commit: CommitSlot,
}

/// Decodes the first [`SUPERBLOCK_LEN`] bytes of a pack whose whole length is `file_len`.
/// A file shorter than a superblock, or whose commit does not fit in it, is refused.
pub fn decode_superblock(bytes: &[u8], file_len: u64) -> Result<Superblock, HeaderError> {
    let page = PAGE as usize;
    let header = superblock::decode_header(bytes.get(..page).unwrap_or(bytes))?;
    if bytes.len() < SUPERBLOCK_LEN as usize || file_len < SUPERBLOCK_LEN {
        return Err(HeaderError::Corrupt(format!(
            "the pack is only {file_len} bytes long, shorter than its superblock"
        )));
    }
    let slot = |i: usize| &bytes[superblock::SLOT_OFFSETS[i] as usize..][..SLOT_LEN];
    let (_, commit) = superblock::live_slot([slot(0), slot(1)], file_len)
        .map_err(|e| HeaderError::Corrupt(e.to_string()))?;
    Ok(Superblock {
        identity: header.identity,
        commit,
    })
}

/// The range that holds the index root record of `commit` (`None` for an empty pack): the
/// largest a root can be, cut at the committed length.
pub fn root_range(commit: &CommitSlot) -> Option<Range<u64>> {
    (commit.root_offset != 0).then(|| {
        let end = commit
            .root_offset
            .saturating_add(MAX_ROOT_RECORD_LEN)
            .min(commit.committed_len);
        commit.root_offset..end
    })
}

/// Decodes the index root record at the start of `bytes` (from [`root_range`]): its header,
/// both checksums, its kind and its fields. Each block reference is checked to lie in the
/// commit; [`block_range`] turns it into a range.
pub fn decode_root(bytes: &[u8], commit: &CommitSlot) -> Result<Root, DecodeError> {
    let payload = record_payload(bytes, RecordKind::IndexRoot, "index root")?;
    let root = Root::decode(payload)?;
    for block in &root.blocks {
        block_range(block, commit)?;
    }
    Ok(root)
}

/// The range of the index block record `block` refers to, checked against the commit.
pub fn block_range(block: &BlockRef, commit: &CommitSlot) -> Result<Range<u64>, DecodeError> {
    let bad = || {
        DecodeError::new(format!(
            "index block reference at offset {} ({} entries) is invalid",
            block.offset, block.count
        ))
    };
    if block.offset < DATA_START || !block.offset.is_multiple_of(ALIGN) {
        return Err(bad());
    }
    let len = block
        .count
        .checked_mul(BLOCK_STRIDE as u64)
        .and_then(align_up)
        .and_then(|payload| payload.checked_add(record::HEADER_LEN))
        .ok_or_else(bad)?;
    let end = block.offset.checked_add(len).ok_or_else(bad)?;
    if end > commit.committed_len {
        return Err(bad());
    }
    Ok(block.offset..end)
}

/// Decodes an index block record (from [`block_range`]) holding `count` entries: header and
/// payload checksums, then every entry verified, keys strictly ascending, each prefix equal
/// to its key's, exactly what a lookup in a mapped pack relies on.
pub fn decode_block(bytes: &[u8], count: u64) -> Result<Vec<IndexEntry>, DecodeError> {
    let payload = record_payload(bytes, RecordKind::IndexBlock, "index block")?;
    if Some(payload.len() as u64) != count.checked_mul(BLOCK_STRIDE as u64) {
        return Err(DecodeError::new(format!(
            "index block holds {} bytes, not {count} entries",
            payload.len()
        )));
    }
    let (entries, prefixes) = payload.split_at(payload.len() / BLOCK_STRIDE * ENTRY_LEN);
    let mut out: Vec<IndexEntry> = Vec::with_capacity(entries.len() / ENTRY_LEN);
    for (i, (chunk, prefix)) in entries
        .chunks_exact(ENTRY_LEN)
        .zip(prefixes.chunks_exact(PREFIX_LEN))
        .enumerate()
    {
        let entry = IndexEntry::decode(chunk)
            .map_err(|e| DecodeError::new(format!("index entry {i}: {e}")))?;
        if prefix != &entry.key.as_bytes()[..PREFIX_LEN] {
            return Err(DecodeError::new(format!(
                "index entry {i}: its prefix does not match its key"
            )));
        }
        if out.last().is_some_and(|last| last.key >= entry.key) {
            return Err(DecodeError::new(format!(
                "index entry {i}: the block is not sorted"
            )));
        }
        out.push(entry);
    }
    Ok(out)
}

/// The live values of a pack from its decoded blocks, newest block first (the root's
/// order): for each key the newest entry, tombstones dropped. Sorted by key.
pub fn live_values(blocks_newest_first: &[Vec<IndexEntry>]) -> Vec<IndexEntry> {
    newest_per_key(blocks_newest_first.iter().map(|b| b.iter().copied()), |e| {
        e.key
    })
    .into_values()
    .filter(|e| e.kind == EntryKind::Value)
    .collect()
}

/// The range of the whole record `entry` points at, checked against the commit.
pub fn entry_range(entry: &IndexEntry, commit: &CommitSlot) -> Result<Range<u64>, DecodeError> {
    let bad = || {
        DecodeError::new(format!(
            "index entry for {} points outside the commit",
            entry.key
        ))
    };
    if entry.record_offset < DATA_START || !entry.record_offset.is_multiple_of(ALIGN) {
        return Err(bad());
    }
    let end = entry
        .record_len()
        .and_then(|len| entry.record_offset.checked_add(len))
        .ok_or_else(bad)?;
    if end > commit.committed_len {
        return Err(bad());
    }
    Ok(entry.record_offset..end)
}

/// Decodes an entry record (from [`entry_range`]) and checks it is the one `entry`
/// describes: kind, key, lengths and checksums. Returns the label and the value.
pub fn decode_entry<'a>(
    bytes: &'a [u8],
    entry: &IndexEntry,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    let (header, label) = RecordHeader::decode(bytes)?;
    if header.kind != RecordKind::Entry || !entry.matches(&header) {
        return Err(DecodeError::new(format!(
            "the record for {} does not match its index entry",
            entry.key
        )));
    }
    let payload = payload_of(bytes, &header)?;
    Ok((label, payload))
}

/// The payload of the record at the start of `bytes`, of the given kind, checksums verified.
fn record_payload<'a>(
    bytes: &'a [u8],
    kind: RecordKind,
    what: &str,
) -> Result<&'a [u8], DecodeError> {
    let (header, _) =
        RecordHeader::decode(bytes).map_err(|e| DecodeError::new(format!("{what}: {e}")))?;
    if header.kind != kind {
        return Err(DecodeError::new(format!(
            "{what}: found a {:?} record",
            header.kind
        )));
    }
    payload_of(bytes, &header).map_err(|e| DecodeError::new(format!("{what}: {e}")))
}

fn payload_of<'a>(bytes: &'a [u8], header: &RecordHeader) -> Result<&'a [u8], DecodeError> {
    let start = header
        .payload_offset(0)
        .ok_or_else(|| DecodeError::new("record length overflows"))?;
    let payload = usize::try_from(start)
        .ok()
        .zip(usize::try_from(header.payload_len).ok())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
        .ok_or_else(|| DecodeError::new("record payload is truncated"))?;
    if crc32fast::hash(payload) != header.payload_crc {
        return Err(DecodeError::new("record payload checksum mismatch"));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;
    use crate::format::index::encode_block;
    use crate::format::superblock::Publication;

    fn commit(len: u64, root: u64) -> CommitSlot {
        CommitSlot {
            generation: 3,
            committed_len: len,
            root_offset: root,
            superseded: false,
            publication: Publication::Unsynced {
                durable_len: DATA_START,
            },
            signature_offset: 0,
        }
    }

    fn record(kind: RecordKind, key: [u8; 32], label: &[u8], payload: &[u8]) -> Vec<u8> {
        let header = RecordHeader::for_payload(kind, key, label.len() as u16, payload);
        let mut out = header.encode_with_label(label);
        out.extend_from_slice(payload);
        out.resize(out.len() + record::payload_padding(payload.len() as u64), 0);
        out
    }

    fn entry(key: u8, at: u64, value: &[u8], label: &[u8], kind: EntryKind) -> IndexEntry {
        IndexEntry {
            key: Key::from_bytes([key; 32]),
            record_offset: at,
            payload_len: value.len() as u64,
            payload_crc: crc32fast::hash(value),
            label_len: label.len() as u16,
            kind,
        }
    }

    #[test]
    fn superblock_of_a_snapshot_decodes() {
        let mut bytes = superblock::encode_header(b"\x01a\x00\x01\x00b");
        let live = CommitSlot {
            superseded: true,
            ..commit(DATA_START + 128, DATA_START + 64)
        };
        bytes.extend(slot_page(&live));
        bytes.extend(slot_page(&live));
        let decoded = decode_superblock(&bytes, DATA_START + 128).unwrap();
        assert_eq!(decoded.identity, b"\x01a\x00\x01\x00b");
        assert!(!decoded.commit.superseded, "a snapshot is never superseded");
        assert_eq!(
            decoded.commit.publication,
            Publication::Synced,
            "a snapshot is synced"
        );
        assert_eq!(decoded.commit.committed_len, DATA_START + 128);
        // A commit longer than the object, a short superblock, no pack at all.
        assert!(decode_superblock(&bytes, DATA_START + 64).is_err());
        assert!(decode_superblock(&bytes[..5000], DATA_START + 128).is_err());
        assert!(matches!(
            decode_superblock(b"PK\x03\x04 a zip", 100),
            Err(HeaderError::NotAPack(_))
        ));
    }

    #[test]
    fn root_blocks_and_entries_decode_and_reject_damage() {
        let value = b"artifact bytes";
        let at = DATA_START;
        let rec = record(RecordKind::Entry, [5; 32], b"m.wasm", value);
        let e = entry(5, at, value, b"m.wasm", EntryKind::Value);
        let block_at = at + rec.len() as u64;
        let block = record(RecordKind::IndexBlock, [0; 32], b"", &encode_block(&[e]));
        let root_at = block_at + block.len() as u64;
        let root = Root {
            live_entries: 1,
            blocks: vec![BlockRef {
                offset: block_at,
                count: 1,
            }],
            ..Root::default()
        };
        let root_rec = record(RecordKind::IndexRoot, [0; 32], b"", &root.encode());
        let live = commit(root_at + root_rec.len() as u64, root_at);

        let range = root_range(&live).unwrap();
        assert_eq!(range, root_at..live.committed_len);
        let decoded = decode_root(&root_rec, &live).unwrap();
        assert_eq!(decoded, root);
        let range = block_range(&decoded.blocks[0], &live).unwrap();
        assert_eq!(range, block_at..block_at + block.len() as u64);
        let entries = decode_block(&block, 1).unwrap();
        assert_eq!(entries, vec![e]);
        assert_eq!(live_values(&[entries]), vec![e]);
        assert_eq!(entry_range(&e, &live).unwrap(), at..at + rec.len() as u64);
        let (label, got) = decode_entry(&rec, &e).unwrap();
        assert_eq!((label, got), (&b"m.wasm"[..], &value[..]));

        for at in 0..rec.len() {
            let mut bad = rec.clone();
            bad[at] ^= 0x20;
            if (64 + 6..128).contains(&at) || at >= 128 + value.len() {
                continue; // padding
            }
            assert!(decode_entry(&bad, &e).is_err(), "entry flip at {at}");
        }
        for at in 0..root_rec.len() {
            let mut bad = root_rec.clone();
            bad[at] ^= 0x01;
            let padding = 64 + root.encode().len()..root_rec.len();
            if !padding.contains(&at) {
                assert!(decode_root(&bad, &live).is_err(), "root flip at {at}");
            }
        }
        assert!(decode_block(&block, 2).is_err(), "wrong count");
        assert!(decode_block(&root_rec, 1).is_err(), "wrong kind");
        assert!(decode_entry(&rec, &entry(6, at, value, b"m.wasm", EntryKind::Value)).is_err());
        assert!(decode_entry(&rec[..100], &e).is_err(), "truncated");
        // References outside the commit.
        let short = commit(block_at + 64, 0);
        assert!(block_range(&decoded.blocks[0], &short).is_err());
        assert!(entry_range(&e, &commit(at + 64, 0)).is_err());
        let huge = BlockRef {
            offset: block_at,
            count: u64::MAX / 8,
        };
        assert!(block_range(&huge, &live).is_err());
        assert_eq!(root_range(&commit(DATA_START, 0)), None);
    }

    #[test]
    fn live_values_take_the_newest_and_drop_tombstones() {
        let newer = vec![
            entry(1, DATA_START, b"new", b"", EntryKind::Value),
            entry(2, DATA_START + 64, b"", b"", EntryKind::Tombstone),
        ];
        let older = vec![
            entry(1, DATA_START + 128, b"old", b"", EntryKind::Value),
            entry(2, DATA_START + 192, b"two", b"", EntryKind::Value),
            entry(3, DATA_START + 256, b"three", b"", EntryKind::Value),
        ];
        let live = live_values(&[newer.clone(), older.clone()]);
        assert_eq!(live, vec![newer[0], older[2]]);
    }

    #[test]
    fn unsorted_or_mismatched_blocks_are_refused() {
        let a = entry(1, DATA_START, b"a", b"", EntryKind::Value);
        let b = entry(2, DATA_START + 64, b"b", b"", EntryKind::Value);
        let mut payload = encode_block(&[a, b]);
        payload.swap(0, 64); // keys out of order: entry checksums now fail
        let block = record(RecordKind::IndexBlock, [0; 32], b"", &payload);
        assert!(decode_block(&block, 2).is_err());
        let mut payload = encode_block(&[a, b]);
        let prefixes = 2 * ENTRY_LEN;
        payload[prefixes] ^= 1;
        let block = record(RecordKind::IndexBlock, [0; 32], b"", &payload);
        assert!(decode_block(&block, 2).is_err(), "a prefix that misleads");
    }
}

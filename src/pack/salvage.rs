//! What compaction copies out of a damaged pack: the newest value of each key that checks out
//! whole, and nothing a damaged index entry may have replaced.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::Key;
use crate::format::index::{self, EntryKind, IndexEntry};
use crate::format::record::RecordKind;

use super::view::{Block, View};

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
pub(super) fn live_records(view: &View) -> (Vec<IndexEntry>, u64) {
    // Each entry with whether a hole of a newer block covers it: then it may be outdated.
    let mut blocks: Vec<Vec<(IndexEntry, bool)>> = Vec::with_capacity(view.blocks.len());
    let mut holes: Vec<Hole> = Vec::new();
    let mut unreadable = 0u64;
    for block in &view.blocks {
        let (entries, block_holes, damaged) = scan_block(view, block);
        unreadable += damaged;
        let covered = |e: &IndexEntry| holes.iter().any(|hole| hole.covers(&e.key));
        blocks.push(entries.into_iter().map(|e| (e, covered(&e))).collect());
        holes.extend(block_holes);
    }
    let mut live: Vec<IndexEntry> = Vec::new();
    let mut buf = Vec::new();
    for (entry, covered) in index::newest_per_key(blocks, |(e, _)| e.key).into_values() {
        if entry.kind != EntryKind::Value {
            continue;
        }
        if covered {
            tracing::warn!(
                key = %entry.key,
                "dropping a value a damaged index entry may have replaced"
            );
            unreadable += 1;
        } else if value_checks_out(view, &entry, &mut buf) {
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
    let header_ok = view
        .record_header(entry.record_offset)
        .is_ok_and(|(h, _)| entry.matches(&h));
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

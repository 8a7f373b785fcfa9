//! Index entries, index blocks and the index root.
//!
//! An index block is a sorted array of fixed-size entries, each with its own checksum, so a
//! lookup reads and verifies only the handful of entries it probes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::record::{HEADER_LEN, MAX_LABEL_LEN, RecordHeader, RecordKind};
use super::{DecodeError, align_up, read_u16, read_u32, read_u64, write_u16, write_u32, write_u64};
use crate::Key;

/// The size of one index entry.
pub const ENTRY_LEN: usize = 64;
/// The size of one key prefix in a block's prefix array.
pub const PREFIX_LEN: usize = 8;
/// Bytes of block payload per entry: the entry and its prefix.
pub const BLOCK_STRIDE: usize = ENTRY_LEN + PREFIX_LEN;
/// The most index blocks a root may list.
pub const MAX_BLOCKS: usize = 64;
/// The size of the root's fixed fields before the block list.
pub const ROOT_FIXED_LEN: usize = 40;
/// The size of one block reference in the root.
pub const BLOCK_REF_LEN: usize = 16;

/// Whether an index entry points at a value or records a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// The key has a value.
    Value = 1,
    /// The key was removed.
    Tombstone = 2,
}

/// One index entry: where a key's record is and what its payload should hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key.
    pub key: Key,
    /// Offset of the entry or tombstone record.
    pub record_offset: u64,
    /// Length of the payload.
    pub payload_len: u64,
    /// CRC-32 of the payload.
    pub payload_crc: u32,
    /// Length of the entry's label.
    pub label_len: u16,
    /// Value or tombstone.
    pub kind: EntryKind,
}

impl IndexEntry {
    /// Encodes the entry with its checksum.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[..32].copy_from_slice(self.key.as_bytes());
        write_u64(&mut b, 32, self.record_offset);
        write_u64(&mut b, 40, self.payload_len);
        write_u32(&mut b, 48, self.payload_crc);
        write_u16(&mut b, 52, self.label_len);
        b[54] = self.kind as u8;
        let crc = crc32fast::hash(&b[..60]);
        write_u32(&mut b, 60, crc);
        b
    }

    /// Decodes and verifies one entry.
    pub fn decode(b: &[u8]) -> Result<IndexEntry, DecodeError> {
        let b = b
            .get(..ENTRY_LEN)
            .ok_or_else(|| DecodeError::new("index entry is truncated"))?;
        if read_u32(b, 60) != crc32fast::hash(&b[..60]) {
            return Err(DecodeError::new("index entry checksum mismatch"));
        }
        let kind = match b[54] {
            1 => EntryKind::Value,
            2 => EntryKind::Tombstone,
            other => {
                return Err(DecodeError::new(format!(
                    "unknown index entry kind {other}"
                )));
            }
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        let entry = IndexEntry {
            key: Key::from_bytes(key),
            record_offset: read_u64(b, 32),
            payload_len: read_u64(b, 40),
            payload_crc: read_u32(b, 48),
            label_len: read_u16(b, 52),
            kind,
        };
        if usize::from(entry.label_len) > MAX_LABEL_LEN {
            return Err(DecodeError::new("index entry label length is too long"));
        }
        if entry.payload_end().is_none() {
            return Err(DecodeError::new("index entry offsets overflow"));
        }
        Ok(entry)
    }

    /// Where the payload starts (`None` on overflow).
    pub fn payload_offset(&self) -> Option<u64> {
        self.record_offset
            .checked_add(HEADER_LEN)?
            .checked_add(align_up(u64::from(self.label_len))?)
    }

    /// One past the payload's last byte (`None` on overflow).
    pub fn payload_end(&self) -> Option<u64> {
        self.payload_offset()?.checked_add(self.payload_len)
    }

    /// Whether `header` is the record this entry points at: an entry record for a value, a
    /// tombstone record for a tombstone, with the entry's key, lengths and checksum.
    pub fn matches(&self, header: &RecordHeader) -> bool {
        let kind = match self.kind {
            EntryKind::Value => RecordKind::Entry,
            EntryKind::Tombstone => RecordKind::Tombstone,
        };
        header.kind == kind
            && header.key == *self.key.as_bytes()
            && header.payload_len == self.payload_len
            && header.payload_crc == self.payload_crc
            && header.label_len == self.label_len
    }

    /// The record's whole length, padding included (`None` on overflow).
    pub fn record_len(&self) -> Option<u64> {
        HEADER_LEN
            .checked_add(align_up(u64::from(self.label_len))?)?
            .checked_add(align_up(self.payload_len)?)
    }
}

/// Encodes entries, which must be sorted by key without duplicates, as a block payload: the
/// entries, then the first eight bytes of each key (big-endian order) as a compact array that
/// lookups search before touching a single entry.
pub fn encode_block(entries: &[IndexEntry]) -> Vec<u8> {
    debug_assert!(entries.windows(2).all(|w| w[0].key < w[1].key));
    let mut out = Vec::with_capacity(entries.len() * BLOCK_STRIDE);
    for entry in entries {
        out.extend_from_slice(&entry.encode());
    }
    for entry in entries {
        out.extend_from_slice(&entry.key.as_bytes()[..PREFIX_LEN]);
    }
    out
}

/// Splits a block payload into its entry array and its prefix array.
pub fn block_parts(payload: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    if !payload.len().is_multiple_of(BLOCK_STRIDE) {
        return Err(DecodeError::new(format!(
            "index block length {} is not a multiple of {BLOCK_STRIDE}",
            payload.len()
        )));
    }
    Ok(payload.split_at(payload.len() / BLOCK_STRIDE * ENTRY_LEN))
}

/// The entry at `position` of an entry array, verified.
pub fn block_entry(entries: &[u8], position: usize) -> Result<IndexEntry, DecodeError> {
    let start = position
        .checked_mul(ENTRY_LEN)
        .ok_or_else(|| DecodeError::new("index position overflows"))?;
    IndexEntry::decode(entries.get(start..).unwrap_or_default())
}

fn prefix_at(prefixes: &[u8], position: usize) -> Option<u64> {
    let start = position.checked_mul(PREFIX_LEN)?;
    let bytes = prefixes.get(start..start.checked_add(PREFIX_LEN)?)?;
    let mut head = [0u8; 8];
    head.copy_from_slice(bytes);
    Some(u64::from_be_bytes(head))
}

/// Finds `key` in a block payload; returns the entry and its position.
///
/// Keys are uniformly distributed hashes, so the search interpolates in the block's compact
/// prefix array (8 bytes per entry, so it stays in cache) and reads full entries only to
/// break prefix ties: about three prefix probes and one entry read per lookup, never more
/// than O(log n) probes. Probes only steer; the entry found is verified before it is
/// returned, and a miss is proved by the verified entries on either side, so a damaged block
/// costs an error, never a wrong entry or a miss that hides a present key. (A block whose
/// checksummed entries are themselves out of order, which takes a writer that forges
/// checksums, may still miss; [`Pack::verify`](crate::Pack::verify) reports it.)
pub fn search_block(payload: &[u8], key: &Key) -> Result<Option<(usize, IndexEntry)>, DecodeError> {
    // Interpolation converges in a handful of probes on hashed keys; past this many rounds
    // the search bisects, which keeps hostile blocks at O(log n).
    const INTERPOLATION_ROUNDS: u32 = 12;
    let (entries, prefixes) = block_parts(payload)?;
    let target = key.prefix();
    let wanted: &[u8] = key.as_bytes();
    let (mut lo, mut hi) = (0usize, prefixes.len() / PREFIX_LEN);
    // Bounds on the prefixes in [lo, hi): the first probe interpolates over the whole key space.
    let (mut lo_prefix, mut hi_prefix) = (0u64, u64::MAX);
    let mut round = 0;
    while lo < hi {
        let width = hi - lo;
        let probe = if round < INTERPOLATION_ROUNDS {
            let span = u128::from(hi_prefix.saturating_sub(lo_prefix)) + 1;
            let offset = u128::from(target.saturating_sub(lo_prefix)) * width as u128 / span;
            lo + (offset as usize).min(width - 1)
        } else {
            lo + width / 2
        };
        round += 1;
        let Some(prefix) = prefix_at(prefixes, probe) else {
            return Ok(None);
        };
        let order = match prefix.cmp(&target) {
            Ordering::Equal => {
                let start = probe * ENTRY_LEN;
                match entries.get(start..start + 32) {
                    Some(full) => full.cmp(wanted),
                    None => return Ok(None),
                }
            }
            unequal => unequal,
        };
        match order {
            Ordering::Equal => {
                let entry = block_entry(entries, probe)?;
                return Ok((entry.key == *key).then_some((probe, entry)));
            }
            Ordering::Less => {
                lo = probe + 1;
                lo_prefix = prefix.max(lo_prefix);
            }
            Ordering::Greater => {
                hi = probe;
                hi_prefix = prefix.min(hi_prefix);
            }
        }
    }
    // The prefixes only steered, and they carry no checksum: prove the miss with the verified
    // entries on either side of where the key would be. In a sorted block (every writer sorts)
    // they bracket the key exactly when it is absent, so a damaged prefix array that sent the
    // search astray is an error, never a miss that would expose an older version of the key
    // in a later block.
    let below = lo
        .checked_sub(1)
        .map(|i| block_entry(entries, i))
        .transpose()?;
    let above = (lo < prefixes.len() / PREFIX_LEN)
        .then(|| block_entry(entries, lo))
        .transpose()?;
    if below.is_some_and(|e| e.key >= *key) || above.is_some_and(|e| e.key <= *key) {
        return Err(DecodeError::new(
            "the block's prefix array or order is damaged: the search for a key went astray",
        ));
    }
    Ok(None)
}

/// The newest entry of each key: "the newest live value of each key" is this, with
/// tombstones dropped. `blocks_newest_first` lists entries by index block, newest block first
/// (the order a root lists them, and the order a lookup searches them); within a block keys
/// are unique. The first block that holds a key decides it. `key` says which key an item
/// (an entry, or an entry with what a caller knows of it) is for.
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
/// use wasmpak::Key;
/// use wasmpak::format::index::newest_per_key;
///
/// let (a, b) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
/// let newer = vec![(a, "new a")];
/// let older = vec![(a, "old a"), (b, "b")];
/// let newest: BTreeMap<Key, (Key, &str)> = newest_per_key([newer, older], |item| item.0);
/// assert_eq!(newest.values().map(|item| item.1).collect::<Vec<_>>(), ["new a", "b"]);
/// ```
pub fn newest_per_key<T, B>(
    blocks_newest_first: impl IntoIterator<Item = B>,
    key: impl Fn(&T) -> Key,
) -> BTreeMap<Key, T>
where
    B: IntoIterator<Item = T>,
{
    let mut newest = BTreeMap::new();
    for block in blocks_newest_first {
        for item in block {
            newest.entry(key(&item)).or_insert(item);
        }
    }
    newest
}

/// The length of an index root record listing `block_count` blocks.
pub fn root_record_len(block_count: usize) -> u64 {
    let payload = (ROOT_FIXED_LEN + BLOCK_REF_LEN * block_count) as u64;
    HEADER_LEN + align_up(payload).unwrap_or(payload)
}

/// A reference from the root to one index block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Offset of the block's record.
    pub offset: u64,
    /// Number of entries in the block.
    pub count: u64,
}

/// The index root: the pack's totals and its index blocks, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Root {
    /// Keys with a value.
    pub live_entries: u64,
    /// Sum of the live values' payload lengths.
    pub live_payload_bytes: u64,
    /// Sum of the live values' record lengths.
    pub live_record_bytes: u64,
    /// Record length of the live index blocks plus the root.
    pub index_bytes: u64,
    /// The index blocks, newest first.
    pub blocks: Vec<BlockRef>,
}

impl Root {
    /// Encodes the root payload. At most [`MAX_BLOCKS`] blocks.
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.blocks.len() <= MAX_BLOCKS);
        let mut out = vec![0u8; ROOT_FIXED_LEN + BLOCK_REF_LEN * self.blocks.len()];
        write_u64(&mut out, 0, self.live_entries);
        write_u64(&mut out, 8, self.live_payload_bytes);
        write_u64(&mut out, 16, self.live_record_bytes);
        write_u64(&mut out, 24, self.index_bytes);
        write_u32(&mut out, 32, self.blocks.len() as u32);
        for (i, block) in self.blocks.iter().enumerate() {
            let at = ROOT_FIXED_LEN + i * BLOCK_REF_LEN;
            write_u64(&mut out, at, block.offset);
            write_u64(&mut out, at + 8, block.count);
        }
        out
    }

    /// Decodes a root payload (its record checksums are the caller's to verify).
    pub fn decode(b: &[u8]) -> Result<Root, DecodeError> {
        if b.len() < ROOT_FIXED_LEN {
            return Err(DecodeError::new("index root is truncated"));
        }
        let count = read_u32(b, 32) as usize;
        if count > MAX_BLOCKS {
            return Err(DecodeError::new(format!("index root lists {count} blocks")));
        }
        if b.len() != ROOT_FIXED_LEN + count * BLOCK_REF_LEN {
            return Err(DecodeError::new(
                "index root length does not match its block count",
            ));
        }
        let blocks = (0..count)
            .map(|i| {
                let at = ROOT_FIXED_LEN + i * BLOCK_REF_LEN;
                BlockRef {
                    offset: read_u64(b, at),
                    count: read_u64(b, at + 8),
                }
            })
            .collect();
        Ok(Root {
            live_entries: read_u64(b, 0),
            live_payload_bytes: read_u64(b, 8),
            live_record_bytes: read_u64(b, 16),
            index_bytes: read_u64(b, 24),
            blocks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Key, at: u64) -> IndexEntry {
        IndexEntry {
            key,
            record_offset: at,
            payload_len: 100,
            payload_crc: 7,
            label_len: 3,
            kind: EntryKind::Value,
        }
    }

    fn keys(n: usize, seed: u64) -> Vec<Key> {
        // A small xorshift generator: keys spread like hashes.
        let mut state = seed | 1;
        let mut keys: Vec<Key> = (0..n)
            .map(|_| {
                Key::from_bytes(std::array::from_fn(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                }))
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn entry_round_trips_and_catches_flips() {
        let e = entry(Key::from_bytes([5; 32]), 12288);
        let bytes = e.encode();
        assert_eq!(IndexEntry::decode(&bytes).unwrap(), e);
        assert_eq!(e.payload_offset(), Some(12288 + 128));
        for byte in 0..ENTRY_LEN {
            let mut flipped = bytes;
            flipped[byte] ^= 0x40;
            assert!(IndexEntry::decode(&flipped).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn search_finds_every_key_and_only_those() {
        for n in [0, 1, 2, 9, 100, 5000] {
            let present = keys(n, 42 + n as u64);
            let entries: Vec<_> = present
                .iter()
                .enumerate()
                .map(|(i, k)| entry(*k, i as u64 * 64))
                .collect();
            let block = encode_block(&entries);
            for (i, k) in present.iter().enumerate() {
                let (position, found) = search_block(&block, k).unwrap().unwrap();
                assert_eq!(found.record_offset, i as u64 * 64);
                assert_eq!(position, i);
            }
            for k in keys(200, 7) {
                if !present.contains(&k) {
                    assert_eq!(search_block(&block, &k).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn search_handles_extreme_keys() {
        let present = vec![Key::from_bytes([0; 32]), Key::from_bytes([0xff; 32])];
        let entries: Vec<_> = present.iter().map(|k| entry(*k, 0)).collect();
        let block = encode_block(&entries);
        for k in &present {
            assert!(search_block(&block, k).unwrap().is_some());
        }
        assert!(
            search_block(&block, &Key::from_bytes([0x80; 32]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn search_in_a_corrupt_block_errors_or_misses() {
        let present = keys(300, 3);
        let entries: Vec<_> = present.iter().map(|k| entry(*k, 0)).collect();
        let mut block = encode_block(&entries);
        block[64 * 150 + 10] ^= 1;
        let mut hits = 0;
        for k in &present {
            match search_block(&block, k) {
                Ok(Some((_, found))) => {
                    assert_eq!(found.key, *k);
                    hits += 1;
                }
                Ok(None) => assert_eq!(*k, present[150], "only the damaged key may go missing"),
                Err(_) => {}
            }
        }
        assert!(hits >= 299);
        // A flip outside the key: the entry is found and fails its check.
        let mut block = encode_block(&entries);
        block[64 * 150 + 40] ^= 1;
        assert!(search_block(&block, &present[150]).is_err());
        // A ragged length is refused rather than read out of bounds.
        assert!(search_block(&block[..100], &present[0]).is_err());
        // A damaged prefix steers wrong: an error, not a miss (which would let a lookup fall
        // through to an older version in a later block) and not a wrong entry.
        let mut block = encode_block(&entries);
        let prefixes = 300 * ENTRY_LEN;
        block[prefixes + 8 * 150] ^= 0x80;
        assert!(search_block(&block, &present[150]).is_err());
        // Keys the damage does not touch are still found, and absent keys still miss.
        assert!(search_block(&block, &present[10]).unwrap().is_some());
        assert_eq!(
            search_block(&block, &Key::from_bytes([0; 32])).unwrap(),
            None
        );
    }

    #[test]
    fn root_round_trips_and_rejects_bad_counts() {
        let root = Root {
            live_entries: 3,
            live_payload_bytes: 300,
            live_record_bytes: 500,
            index_bytes: 256,
            blocks: vec![
                BlockRef {
                    offset: 12288,
                    count: 2,
                },
                BlockRef {
                    offset: 20000,
                    count: 1,
                },
            ],
        };
        let bytes = root.encode();
        assert_eq!(Root::decode(&bytes).unwrap(), root);
        assert!(Root::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut many = bytes.clone();
        many[32] = 65;
        assert!(Root::decode(&many).is_err());
    }
}

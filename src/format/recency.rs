//! The recency sidecar, `{pack}.recency`: when each entry was last used, merged by every
//! process using the pack (its file handling is `pack/recency.rs`).
//!
//! Layout (little-endian): magic `WPKU`, version u32 = 1, count u64, then `count` records of
//! key (32 bytes) + stamp (u64, milliseconds since the Unix epoch) sorted by key, then the
//! CRC-32 of everything before it.

use std::collections::HashMap;

use super::DecodeError;
use crate::Key;

/// The first bytes of a sidecar.
pub const MAGIC: &[u8; 4] = b"WPKU";
/// The sidecar version this code reads and writes.
pub const VERSION: u32 = 1;
/// Magic, version and count.
pub const HEADER_LEN: usize = 16;
/// One key and its stamp.
pub const RECORD_LEN: usize = 40;
/// Sidecars with more records than this are refused rather than read.
pub const MAX_RECORDS: u64 = 1 << 24;

/// The number of records the sidecar whose first [`HEADER_LEN`] bytes are `header` holds:
/// what a reader needs to read the rest ([`body_len`]).
pub fn decode_count(header: &[u8]) -> Result<u64, DecodeError> {
    let header = header
        .get(..HEADER_LEN)
        .ok_or_else(|| DecodeError::new("recency sidecar header is truncated"))?;
    if &header[..4] != MAGIC || header[4..8] != VERSION.to_le_bytes() {
        return Err(DecodeError::new("not a recency sidecar"));
    }
    let count = super::read_u64(header, 8);
    if count > MAX_RECORDS {
        return Err(DecodeError::new("recency sidecar too large"));
    }
    Ok(count)
}

/// The length of what follows the header of a sidecar of `count` records (from
/// [`decode_count`], so at most [`MAX_RECORDS`]): the records and the checksum.
pub fn body_len(count: u64) -> usize {
    count as usize * RECORD_LEN + 4
}

/// Decodes a whole sidecar: header, records and checksum.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
/// use wasmpak::Key;
/// use wasmpak::format::recency;
///
/// let stamps = HashMap::from([(Key::from_bytes([1; 32]), 1700u64)]);
/// let bytes = recency::encode(&stamps);
/// assert_eq!(recency::decode(&bytes)?, stamps);
/// assert!(recency::decode(&bytes[..bytes.len() - 1]).is_err());
/// # Ok::<(), wasmpak::format::DecodeError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<HashMap<Key, u64>, DecodeError> {
    let count = decode_count(bytes)?;
    let end = HEADER_LEN + body_len(count);
    if bytes.len() != end {
        return Err(DecodeError::new("recency sidecar is truncated"));
    }
    let (covered, crc) = bytes.split_at(end - 4);
    if crc32fast::hash(covered).to_le_bytes() != crc {
        return Err(DecodeError::new("recency sidecar checksum mismatch"));
    }
    Ok(covered[HEADER_LEN..]
        .chunks_exact(RECORD_LEN)
        .map(|r| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&r[..32]);
            (Key::from_bytes(key), super::read_u64(r, 32))
        })
        .collect())
}

/// Encodes `stamps` as a sidecar, records sorted by key.
pub fn encode(stamps: &HashMap<Key, u64>) -> Vec<u8> {
    let mut sorted: Vec<_> = stamps.iter().collect();
    sorted.sort();
    let mut out = Vec::with_capacity(HEADER_LEN + body_len(sorted.len() as u64));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    for (key, stamp) in sorted {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&stamp.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

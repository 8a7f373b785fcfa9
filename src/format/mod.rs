//! The bytes on disk: pure encoders and decoders for every structure in a pack, and nothing
//! else. No I/O, no wasmer; every decoder takes untrusted bytes and returns a [`DecodeError`]
//! rather than panicking, reading out of bounds, or allocating by an untrusted length.
//!
//! `docs/FORMAT.md` is the specification these functions implement; the constants and field
//! offsets here follow its tables.
//!
//! # Who uses it, and what is stable
//!
//! This is the codec layer under the store, public so that code which cannot or should not
//! map a pack can still read and build its bytes: the fuzz targets, the tool's `push` and
//! delta `pull` (which read a pack in a bucket by ranges), tests that damage packs on purpose,
//! and tools outside this crate. Applications want [`Pack`](crate::Pack) instead.
//!
//! The *bytes* are stable: they change only with
//! [`FORMAT_VERSION`](superblock::FORMAT_VERSION), and every version is described in
//! `docs/FORMAT.md`. The *Rust items* here follow the bytes and the code that needs them, and
//! may change in any 0.x release, unlike the store's API at the crate root.

pub mod identity;
pub mod index;
pub mod key;
pub mod object;
pub mod recency;
pub mod record;
pub mod seal;
pub mod signature;
pub mod snapshot;
pub mod superblock;

use std::fmt;

/// Why a structure failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    pub(crate) fn new(detail: impl Into<String>) -> DecodeError {
        DecodeError(detail.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Every record starts at, and occupies, a multiple of this many bytes.
pub const ALIGN: u64 = 64;

/// Rounds `len` up to a multiple of [`ALIGN`], or `None` on overflow.
pub fn align_up(len: u64) -> Option<u64> {
    len.checked_add(ALIGN - 1).map(|n| n & !(ALIGN - 1))
}

/// The CRC-32 of a header's fixed bytes followed by its variable part (an identity, a label):
/// how every header in the format checks itself.
fn header_crc(fixed: &[u8], variable: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(fixed);
    hasher.update(variable);
    hasher.finalize()
}

/// `bytes[range]`, or the error "{what} is truncated".
fn part<'a, R>(bytes: &'a [u8], range: R, what: &str) -> Result<&'a [u8], DecodeError>
where
    R: std::slice::SliceIndex<[u8], Output = [u8]>,
{
    bytes
        .get(range)
        .ok_or_else(|| DecodeError::new(format!("{what} is truncated")))
}

/// Where a 64-byte structure (an index entry, a commit slot) keeps the CRC-32 of the bytes
/// before it.
const SEAL_AT: usize = 60;

/// Writes the CRC-32 of `b[..60]` into `b[60..64]`.
fn seal(b: &mut [u8]) {
    let crc = crc32fast::hash(&b[..SEAL_AT]);
    write_u32(b, SEAL_AT, crc);
}

/// Whether `b[60..64]` holds the CRC-32 of `b[..60]`.
fn is_sealed(b: &[u8]) -> bool {
    read_u32(b, SEAL_AT) == crc32fast::hash(&b[..SEAL_AT])
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_64() {
        assert_eq!(align_up(0), Some(0));
        assert_eq!(align_up(1), Some(64));
        assert_eq!(align_up(64), Some(64));
        assert_eq!(align_up(65), Some(128));
        assert_eq!(align_up(u64::MAX), None);
        assert_eq!(align_up(u64::MAX - 63), Some(u64::MAX - 63));
    }
}

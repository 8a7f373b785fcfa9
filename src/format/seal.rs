//! The seal record of an installed pack: what its install verified, and which file it sealed.
//!
//! An install (`Pack::install_into`) writes it into the copy it verified, just before putting
//! the copy in place: the keys whose signatures it checked every entry against (none: the
//! checksums only), and the identity of the file it wrote (inode, file system id and birth
//! time, which a rename keeps and a copy does not). Layout at [`SEAL_AT`], little-endian
//! (docs/FORMAT.md, section 14.5):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `WPSE` |
//! | 4 | 4 | version `1` |
//! | 8 | 8 | inode of the installed file |
//! | 16 | 8 | file system id (`statvfs` `f_fsid`) |
//! | 24 | 8 | birth time of the file, nanoseconds since the Unix epoch (0: not reported) |
//! | 32 | 4 | key count `k`, at most [`MAX_SEAL_KEYS`] |
//! | 36 | 4 | CRC-32 of bytes 0..36 followed by the keys |
//! | 40 | 32 × k | Ed25519 public keys, strictly ascending |

use super::superblock::PAGE;
use super::{DecodeError, header_crc, read_u32, read_u64, write_u32, write_u64};

/// Where the seal record lies: the second half of the first commit slot's page, which no
/// writer touches (writers refuse sealed packs, and commit slots use its first 64 bytes).
pub const SEAL_AT: u64 = PAGE + 2048;
/// The size of the seal record's fixed part, before the keys.
pub const SEAL_FIXED_LEN: usize = 40;
/// The most keys a seal records (a signature chain holds at most 16 signatures).
pub const MAX_SEAL_KEYS: usize = super::signature::MAX_SIGNATURES;
/// The most bytes a seal record takes.
pub const MAX_SEAL_LEN: usize = SEAL_FIXED_LEN + 32 * MAX_SEAL_KEYS;

const MAGIC: [u8; 4] = *b"WPSE";
const VERSION: u32 = 1;

/// What an install verified, and the file it sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The installed file's inode number.
    pub inode: u64,
    /// The id of the file system holding it (`statvfs` `f_fsid`).
    pub fsid: u64,
    /// When the file was created, in nanoseconds since the Unix epoch, or 0 if its file
    /// system does not say: tells a new file from the old one if the file system hands a
    /// freed inode number to the next file.
    pub birth: u64,
    /// The public keys whose signatures the install checked every entry against, sorted and
    /// distinct; empty if it checked the checksums only.
    pub keys: Vec<[u8; 32]>,
}

impl Seal {
    /// A seal of the file `(inode, fsid, birth)` verified with `keys` (in any order, repeats
    /// allowed), or `None` if there are more than [`MAX_SEAL_KEYS`] distinct keys.
    pub fn new(
        (inode, fsid, birth): (u64, u64, u64),
        keys: impl IntoIterator<Item = [u8; 32]>,
    ) -> Option<Seal> {
        let mut keys: Vec<[u8; 32]> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        (keys.len() <= MAX_SEAL_KEYS).then_some(Seal {
            inode,
            fsid,
            birth,
            keys,
        })
    }

    /// The file the seal names: (inode, file system id, birth time).
    pub fn file(&self) -> (u64, u64, u64) {
        (self.inode, self.fsid, self.birth)
    }

    /// The record's bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::format::seal::Seal;
    ///
    /// let seal = Seal::new((12, 34, 1_700_000_000_000_000_000), [[7; 32], [1; 32]]).unwrap();
    /// let bytes = seal.encode();
    /// assert_eq!(Seal::decode(&bytes)?, Some(seal));
    /// assert_eq!(Seal::decode(&[0; 64])?, None, "no seal recorded");
    /// # Ok::<(), wasmpak::format::DecodeError>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; SEAL_FIXED_LEN];
        out[..4].copy_from_slice(&MAGIC);
        write_u32(&mut out, 4, VERSION);
        write_u64(&mut out, 8, self.inode);
        write_u64(&mut out, 16, self.fsid);
        write_u64(&mut out, 24, self.birth);
        write_u32(&mut out, 32, self.keys.len() as u32);
        let keys = self.keys.concat();
        let crc = header_crc(&out[..36], &keys);
        write_u32(&mut out, 36, crc);
        out.extend_from_slice(&keys);
        out
    }

    /// Decodes the record at the start of `bytes` (which may run on past it): `None` if the
    /// first [`SEAL_FIXED_LEN`] bytes are zero (a pack sealed before seals were recorded, or
    /// not sealed), an error if they hold anything but a valid record.
    pub fn decode(bytes: &[u8]) -> Result<Option<Seal>, DecodeError> {
        let fixed = bytes
            .get(..SEAL_FIXED_LEN)
            .ok_or_else(|| DecodeError::new("seal record is truncated"))?;
        if fixed.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if fixed[..4] != MAGIC {
            return Err(DecodeError::new("seal record has no magic"));
        }
        let version = read_u32(fixed, 4);
        if version != VERSION {
            return Err(DecodeError::new(format!(
                "seal record version {version} is not supported"
            )));
        }
        let count = read_u32(fixed, 32) as usize;
        if count > MAX_SEAL_KEYS {
            return Err(DecodeError::new(format!(
                "seal record names {count} keys, at most {MAX_SEAL_KEYS} fit"
            )));
        }
        let key_bytes = bytes
            .get(SEAL_FIXED_LEN..SEAL_FIXED_LEN + 32 * count)
            .ok_or_else(|| DecodeError::new("seal record is truncated"))?;
        if read_u32(fixed, 36) != header_crc(&fixed[..36], key_bytes) {
            return Err(DecodeError::new("seal record checksum mismatch"));
        }
        let keys: Vec<[u8; 32]> = key_bytes
            .chunks_exact(32)
            .map(|k| k.try_into().expect("32-byte chunks"))
            .collect();
        if !keys.windows(2).all(|w| w[0] < w[1]) {
            return Err(DecodeError::new(
                "seal record keys are not strictly ascending",
            ));
        }
        Ok(Some(Seal {
            inode: read_u64(fixed, 8),
            fsid: read_u64(fixed, 16),
            birth: read_u64(fixed, 24),
            keys,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_bit_flip_is_caught() {
        for keys in [vec![], vec![[3; 32]], vec![[9; 32], [1; 32], [9; 32]]] {
            let seal = Seal::new((u64::MAX - 1, 0x1234_5678_9abc_def0, 17), keys).unwrap();
            let bytes = seal.encode();
            assert_eq!(bytes.len(), SEAL_FIXED_LEN + 32 * seal.keys.len());
            let mut padded = bytes.clone();
            padded.resize(MAX_SEAL_LEN, 0);
            assert_eq!(Seal::decode(&padded).unwrap().as_ref(), Some(&seal));
            for byte in 0..bytes.len() {
                for bit in 0..8 {
                    let mut flipped = bytes.clone();
                    flipped[byte] ^= 1 << bit;
                    assert!(Seal::decode(&flipped).is_err(), "byte {byte} bit {bit}");
                }
            }
            for cut in 0..bytes.len() {
                assert!(Seal::decode(&bytes[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn too_many_or_unsorted_keys_are_refused() {
        let file = (1, 2, 3);
        assert!(Seal::new(file, (0..=MAX_SEAL_KEYS as u8).map(|k| [k; 32])).is_none());
        let full = Seal::new(file, (0..MAX_SEAL_KEYS as u8).map(|k| [k; 32])).unwrap();
        assert_eq!(full.encode().len(), MAX_SEAL_LEN);
        let mut swapped = Seal::new(file, [[1; 32], [2; 32]]).unwrap().encode();
        swapped[SEAL_FIXED_LEN..].rotate_left(32);
        let crc = header_crc(&swapped[..36], &swapped[SEAL_FIXED_LEN..]);
        swapped[36..40].copy_from_slice(&crc.to_le_bytes());
        assert!(Seal::decode(&swapped).is_err());
        let mut many = full.encode();
        many[32] = MAX_SEAL_KEYS as u8 + 1;
        assert!(Seal::decode(&many).is_err());
        assert_eq!(Seal::decode(&[0; SEAL_FIXED_LEN]).unwrap(), None);
    }
}

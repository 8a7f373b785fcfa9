//! The header page and the two commit slots at the front of every pack.

use super::{DecodeError, header_crc, read_u32, read_u64, write_u32, write_u64};

/// The first eight bytes of every pack.
pub const MAGIC: [u8; 8] = *b"\x89WPK\r\n\x1a\n";
/// The format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The size of each superblock page.
pub const PAGE: u64 = 4096;
/// Where records begin: after the header page and the two slot pages.
pub const DATA_START: u64 = 3 * PAGE;
/// Where the two commit slots live.
pub const SLOT_OFFSETS: [u64; 2] = [PAGE, 2 * PAGE];
/// The size of a commit slot.
pub const SLOT_LEN: usize = 64;
/// The size of the fixed part of the header page before the identity.
pub const HEADER_FIXED_LEN: usize = 32;
/// Where a slot's generation field sits inside the slot (8-byte aligned, see `CommitSlot`).
pub const SLOT_GENERATION_AT: usize = 8;
/// Where a slot's last 8 bytes (reserved + CRC) sit: with the generation, the words a reader
/// compares to notice a new commit without a system call.
pub const SLOT_CRC_WORD_AT: usize = 56;
/// Where a slot's durable length sits (0 for a synced commit, see [`Publication`]).
pub const SLOT_DURABLE_LEN_AT: usize = 32;
/// Where a slot's signature chain head sits (0 for an unsigned commit).
pub const SLOT_SIGNATURE_AT: usize = 40;

const SLOT_MAGIC: [u8; 4] = *b"WPKS";
const SUPERSEDED: u32 = 1;
/// Header flag: the pack is sealed (installed): no writer may append to it again.
const SEALED: u32 = 1;

/// Why a header page is unusable, in the order a reader checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the fixed header, or the magic does not match: not a pack.
    NotAPack(String),
    /// A version newer than [`FORMAT_VERSION`].
    UnsupportedVersion(u32),
    /// Right magic and version, but a checksum or field is wrong.
    Corrupt(String),
}

/// The decoded header page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The encoded identity (see [`super::identity`]).
    pub identity: Vec<u8>,
    /// Sealed by `install`: writers refuse the pack (header flag bit 0).
    pub sealed: bool,
}

/// Encodes the header page for a new pack. `identity` must be at most
/// [`super::identity::MAX_IDENTITY_LEN`] bytes.
pub fn encode_header(identity: &[u8]) -> Vec<u8> {
    encode_header_with(identity, false)
}

/// Encodes the header page, sealed or not.
pub fn encode_header_with(identity: &[u8], sealed: bool) -> Vec<u8> {
    assert!(identity.len() <= super::identity::MAX_IDENTITY_LEN);
    let mut page = vec![0u8; PAGE as usize];
    page[..8].copy_from_slice(&MAGIC);
    write_u32(&mut page, 8, FORMAT_VERSION);
    write_u32(&mut page, 12, DATA_START as u32);
    write_u32(&mut page, 16, identity.len() as u32);
    write_u32(&mut page, 20, if sealed { SEALED } else { 0 });
    page[HEADER_FIXED_LEN..HEADER_FIXED_LEN + identity.len()].copy_from_slice(identity);
    let crc = header_crc(&page[..24], identity);
    write_u32(&mut page, 24, crc);
    page
}

/// Decodes a header page. `bytes` may be shorter than a page (a truncated file).
pub fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(HeaderError::NotAPack(if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            "wrong magic bytes".to_string()
        }));
    }
    if bytes.len() < HEADER_FIXED_LEN {
        return Err(HeaderError::NotAPack(format!(
            "the file is only {} bytes long",
            bytes.len()
        )));
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(if version > FORMAT_VERSION {
            HeaderError::UnsupportedVersion(version)
        } else {
            HeaderError::Corrupt(format!("format version {version} is invalid"))
        });
    }
    let data_start = read_u32(bytes, 12);
    if u64::from(data_start) != DATA_START {
        return Err(HeaderError::Corrupt(format!(
            "data start {data_start} is not {DATA_START}"
        )));
    }
    let identity_len = read_u32(bytes, 16) as usize;
    if identity_len > super::identity::MAX_IDENTITY_LEN {
        return Err(HeaderError::Corrupt(format!(
            "identity length {identity_len} is too large"
        )));
    }
    let identity = bytes
        .get(HEADER_FIXED_LEN..HEADER_FIXED_LEN + identity_len)
        .ok_or_else(|| HeaderError::Corrupt("the header page is truncated".to_string()))?;
    if read_u32(bytes, 24) != header_crc(&bytes[..24], identity) {
        return Err(HeaderError::Corrupt("header checksum mismatch".to_string()));
    }
    if read_u32(bytes, 28) != 0 {
        return Err(HeaderError::Corrupt(
            "reserved header bytes are not zero".to_string(),
        ));
    }
    let flags = read_u32(bytes, 20);
    if flags & !SEALED != 0 {
        return Err(HeaderError::Corrupt(format!(
            "unknown header flags {flags:#x}"
        )));
    }
    Ok(Header {
        identity: identity.to_vec(),
        sealed: flags & SEALED != 0,
    })
}

/// How a commit was published, which decides what survives a power loss (docs/FORMAT.md,
/// section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// The commit's records were synced before its slot was written and the slot after: once
    /// the commit returned, it survives power loss. Creation, compaction and
    /// `Durability::Full` commits, and every slot written before this field existed.
    Synced,
    /// The slot was written without the sync that follows it (`Durability::None`): after a
    /// power loss it may be lost or torn, and of the bytes it commits only those below
    /// `durable_len` were known to be durable when it was written. The other slot then holds
    /// an older commit that was durable, to fall back to.
    Unsynced {
        /// Bytes below this offset were durable when the slot was written.
        durable_len: u64,
    },
}

/// One commit: what a slot says is the current state of the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitSlot {
    /// Increases by one per commit; at least 1.
    pub generation: u64,
    /// Everything below this offset is committed and immutable.
    pub committed_len: u64,
    /// The index root record, or 0 for an empty pack.
    pub root_offset: u64,
    /// Compaction replaced this file: reopen the path.
    pub superseded: bool,
    /// Whether the commit was synced, and if not, how much of it was durable.
    pub publication: Publication,
    /// The newest signature record of this commit (the head of its chain), or 0 if unsigned.
    pub signature_offset: u64,
}

impl CommitSlot {
    /// Encodes the slot with its checksum.
    pub fn encode(&self) -> [u8; SLOT_LEN] {
        let mut b = [0u8; SLOT_LEN];
        b[..4].copy_from_slice(&SLOT_MAGIC);
        write_u32(&mut b, 4, if self.superseded { SUPERSEDED } else { 0 });
        write_u64(&mut b, 8, self.generation);
        write_u64(&mut b, 16, self.committed_len);
        write_u64(&mut b, 24, self.root_offset);
        if let Publication::Unsynced { durable_len } = self.publication {
            write_u64(&mut b, SLOT_DURABLE_LEN_AT, durable_len);
        }
        write_u64(&mut b, SLOT_SIGNATURE_AT, self.signature_offset);
        let crc = crc32fast::hash(&b[..60]);
        write_u32(&mut b, 60, crc);
        b
    }

    /// Decodes a slot, checking its magic, checksum and self-consistency. The caller checks
    /// `committed_len` against the file length with [`CommitSlot::fits`].
    pub fn decode(b: &[u8]) -> Result<CommitSlot, DecodeError> {
        let b = b
            .get(..SLOT_LEN)
            .ok_or_else(|| DecodeError::new("commit slot is truncated"))?;
        if b[..4] != SLOT_MAGIC {
            return Err(DecodeError::new("commit slot has no magic"));
        }
        if read_u32(b, 60) != crc32fast::hash(&b[..60]) {
            return Err(DecodeError::new("commit slot checksum mismatch"));
        }
        let flags = read_u32(b, 4);
        if flags & !SUPERSEDED != 0 {
            return Err(DecodeError::new(format!(
                "commit slot has unknown flags {flags:#x}"
            )));
        }
        let durable_len = read_u64(b, SLOT_DURABLE_LEN_AT);
        let slot = CommitSlot {
            generation: read_u64(b, 8),
            committed_len: read_u64(b, 16),
            root_offset: read_u64(b, 24),
            superseded: flags & SUPERSEDED != 0,
            publication: match durable_len {
                0 => Publication::Synced,
                durable_len => Publication::Unsynced { durable_len },
            },
            signature_offset: read_u64(b, SLOT_SIGNATURE_AT),
        };
        if slot.generation == 0 {
            return Err(DecodeError::new("commit slot generation is 0"));
        }
        if slot.committed_len < DATA_START || !slot.committed_len.is_multiple_of(super::ALIGN) {
            return Err(DecodeError::new(format!(
                "commit slot length {} is invalid",
                slot.committed_len
            )));
        }
        slot.check_record_offset("root offset", slot.root_offset)?;
        if let Publication::Unsynced { durable_len } = slot.publication
            && (durable_len < DATA_START
                || durable_len > slot.committed_len
                || !durable_len.is_multiple_of(super::ALIGN))
        {
            return Err(DecodeError::new(format!(
                "commit slot durable length {durable_len} is invalid"
            )));
        }
        slot.check_record_offset("signature offset", slot.signature_offset)?;
        Ok(slot)
    }

    /// Checks that `offset` (0 for none) can be a record of this commit: aligned, in the data
    /// area, before the committed length.
    fn check_record_offset(&self, what: &str, offset: u64) -> Result<(), DecodeError> {
        if offset != 0
            && (offset < DATA_START
                || !offset.is_multiple_of(super::ALIGN)
                || offset >= self.committed_len)
        {
            return Err(DecodeError::new(format!(
                "commit slot {what} {offset} is invalid"
            )));
        }
        Ok(())
    }

    /// The commit of a new, empty pack: generation 1, no records, synced.
    pub fn empty() -> CommitSlot {
        CommitSlot {
            generation: 1,
            committed_len: DATA_START,
            root_offset: 0,
            superseded: false,
            publication: Publication::Synced,
            signature_offset: 0,
        }
    }

    /// This commit as a copy of the pack holds it (a snapshot `push` uploads, an installed
    /// pack): not superseded, and synced, since a copy is written whole and synced before
    /// anyone opens it.
    pub fn for_copy(&self) -> CommitSlot {
        CommitSlot {
            superseded: false,
            publication: Publication::Synced,
            ..*self
        }
    }

    /// Whether the commit lies within a file of `file_len` bytes.
    pub fn fits(&self, file_len: u64) -> bool {
        self.committed_len <= file_len
    }
}

/// The first [`DATA_START`] bytes of a new pack: the header page for `identity` and both
/// commit slots holding `slot`. `identity` must be at most
/// [`super::identity::MAX_IDENTITY_LEN`] bytes.
pub fn encode_superblock(identity: &[u8], slot: &CommitSlot) -> Vec<u8> {
    superblock_with(&encode_header(identity), slot)
}

/// The first [`DATA_START`] bytes of a pack: `header_page` (as [`encode_header_with`]
/// encodes it, or as read from a pack: at most a page, the rest zero) and both commit slots
/// holding `slot`. Every superblock the crate writes is built here.
///
/// # Example
///
/// A copy of a pack's commit (what `push` uploads and an install writes): the header page as
/// it was, the commit synced and not superseded in both slots.
///
/// ```
/// use wasmpak::format::superblock::{self, CommitSlot, DATA_START};
///
/// let header = superblock::encode_header_with(b"identity", false);
/// let live = CommitSlot { superseded: true, ..CommitSlot::empty() };
/// let bytes = superblock::superblock_with(&header, &live.for_copy());
/// assert_eq!(bytes.len() as u64, DATA_START);
/// let (_, commit) = superblock::live_slot(
///     [&bytes[4096..4160], &bytes[8192..8256]],
///     DATA_START,
/// )?;
/// assert!(!commit.superseded);
/// # Ok::<(), wasmpak::format::DecodeError>(())
/// ```
pub fn superblock_with(header_page: &[u8], slot: &CommitSlot) -> Vec<u8> {
    let mut bytes = header_page[..header_page.len().min(PAGE as usize)].to_vec();
    bytes.resize(DATA_START as usize, 0);
    let slot = slot.encode();
    for offset in SLOT_OFFSETS {
        bytes[offset as usize..offset as usize + SLOT_LEN].copy_from_slice(&slot);
    }
    bytes
}

/// Decodes both slots as read from a file of `file_len` bytes: each slot that is valid and
/// whose commit lies within the file.
pub fn decode_slots(slots: [&[u8]; 2], file_len: u64) -> [Result<CommitSlot, DecodeError>; 2] {
    slots.map(|bytes| {
        CommitSlot::decode(bytes).and_then(|slot| {
            if slot.fits(file_len) {
                Ok(slot)
            } else {
                Err(DecodeError::new(format!(
                    "commit slot length {} is past the end of the file ({file_len} bytes)",
                    slot.committed_len
                )))
            }
        })
    })
}

/// Picks the live commit from the two slots as read from a file of `file_len` bytes: the
/// valid slot with the highest generation, slot 0 on a tie. Returns its index and contents.
pub fn live_slot(slots: [&[u8]; 2], file_len: u64) -> Result<(usize, CommitSlot), DecodeError> {
    match decode_slots(slots, file_len) {
        [Ok(a), Ok(b)] => Ok(if b.generation > a.generation {
            (1, b)
        } else {
            (0, a)
        }),
        [Ok(a), Err(_)] => Ok((0, a)),
        [Err(_), Ok(b)] => Ok((1, b)),
        [Err(a), Err(b)] => Err(DecodeError::new(format!(
            "no valid commit slot (slot 0: {a}; slot 1: {b})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(generation: u64) -> CommitSlot {
        CommitSlot {
            generation,
            committed_len: DATA_START + 128,
            root_offset: DATA_START + 64,
            superseded: false,
            publication: Publication::Synced,
            signature_offset: 0,
        }
    }

    #[test]
    fn header_round_trips() {
        let page = encode_header(b"\x01a\x01\x05\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(page.len(), PAGE as usize);
        let header = decode_header(&page).unwrap();
        assert_eq!(header.identity.len(), 11);
    }

    #[test]
    fn header_errors_are_classified() {
        let page = encode_header(b"");
        assert!(matches!(decode_header(b""), Err(HeaderError::NotAPack(_))));
        assert!(matches!(
            decode_header(b"\x7fELF"),
            Err(HeaderError::NotAPack(_))
        ));
        assert!(matches!(
            decode_header(&page[..20]),
            Err(HeaderError::NotAPack(_))
        ));
        let mut newer = page.clone();
        newer[8] = 2;
        assert_eq!(
            decode_header(&newer),
            Err(HeaderError::UnsupportedVersion(2))
        );
        for at in 12..32 {
            let mut flipped = page.clone();
            flipped[at] ^= 0x10;
            assert!(
                matches!(decode_header(&flipped), Err(HeaderError::Corrupt(_))),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn slot_round_trips_and_every_bit_flip_is_caught() {
        let encoded = slot(7).encode();
        assert_eq!(CommitSlot::decode(&encoded).unwrap(), slot(7));
        for byte in 0..SLOT_LEN {
            for bit in 0..8 {
                let mut flipped = encoded;
                flipped[byte] ^= 1 << bit;
                assert!(
                    CommitSlot::decode(&flipped).is_err(),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn live_slot_prefers_highest_valid_generation() {
        let a = slot(3).encode();
        let b = slot(4).encode();
        let len = DATA_START + 4096;
        assert_eq!(live_slot([&a, &b], len).unwrap().0, 1);
        assert_eq!(live_slot([&b, &a], len).unwrap().0, 0);
        assert_eq!(live_slot([&a, &a], len).unwrap().0, 0);
        let zero = [0u8; SLOT_LEN];
        assert_eq!(live_slot([&zero, &a], len).unwrap().1.generation, 3);
        assert!(live_slot([&zero, &zero], len).is_err());
        // A slot whose commit runs past the end of the file is not live.
        assert_eq!(live_slot([&a, &b], DATA_START + 64).ok().map(|s| s.0), None);
    }

    #[test]
    fn unsynced_slots_round_trip_and_old_slots_read_as_synced() {
        let unsynced = CommitSlot {
            publication: Publication::Unsynced {
                durable_len: DATA_START + 64,
            },
            ..slot(9)
        };
        let encoded = unsynced.encode();
        assert_eq!(CommitSlot::decode(&encoded).unwrap(), unsynced);
        // A slot written before the field existed has zeros there: synced.
        let old = slot(9).encode();
        assert!(
            old[SLOT_DURABLE_LEN_AT..SLOT_DURABLE_LEN_AT + 8]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(
            CommitSlot::decode(&old).unwrap().publication,
            Publication::Synced
        );
        for durable_len in [64, DATA_START + 1, DATA_START + 192] {
            let bad = CommitSlot {
                publication: Publication::Unsynced { durable_len },
                ..slot(9)
            };
            assert!(CommitSlot::decode(&bad.encode()).is_err(), "{durable_len}");
        }
    }

    #[test]
    fn superblock_holds_the_header_and_both_slots() {
        let bytes = encode_superblock(b"", &CommitSlot::empty());
        assert_eq!(bytes.len(), DATA_START as usize);
        assert!(decode_header(&bytes).is_ok());
        let slot = |i: usize| &bytes[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
        assert_eq!(
            live_slot([slot(0), slot(1)], DATA_START).unwrap(),
            (0, CommitSlot::empty())
        );
    }

    #[test]
    fn signature_offset_and_sealed_flag_round_trip() {
        let signed = CommitSlot {
            signature_offset: DATA_START,
            ..slot(2)
        };
        assert_eq!(CommitSlot::decode(&signed.encode()).unwrap(), signed);
        for bad in [DATA_START + 1, DATA_START + 128, 64] {
            let slot = CommitSlot {
                signature_offset: bad,
                ..slot(2)
            };
            assert!(CommitSlot::decode(&slot.encode()).is_err(), "offset {bad}");
        }
        let page = encode_header_with(b"", true);
        assert!(decode_header(&page).unwrap().sealed);
        assert!(!decode_header(&encode_header(b"")).unwrap().sealed);
        let mut unknown = page.clone();
        unknown[20] = 2;
        let crc = header_crc(&unknown[..24], b"");
        unknown[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_header(&unknown),
            Err(HeaderError::Corrupt(_))
        ));
    }

    #[test]
    fn slot_rejects_inconsistent_offsets() {
        let mut bad = slot(1);
        bad.root_offset = bad.committed_len;
        assert!(CommitSlot::decode(&bad.encode()).is_err());
        bad.root_offset = 100;
        assert!(CommitSlot::decode(&bad.encode()).is_err());
        let mut short = slot(1);
        short.committed_len = DATA_START - 64;
        assert!(CommitSlot::decode(&short.encode()).is_err());
    }
}

//! Record headers: the 64 bytes in front of every entry, tombstone and index structure.

use super::{
    DecodeError, align_up, header_crc, read_u16, read_u32, read_u64, write_u16, write_u32,
    write_u64,
};

/// The size of a record header.
pub const HEADER_LEN: u64 = 64;
/// The longest label an entry may carry.
pub const MAX_LABEL_LEN: usize = 1024;

const MAGIC: [u8; 4] = *b"WPKR";

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A value under a key.
    Entry = 1,
    /// The removal of a key.
    Tombstone = 2,
    /// A sorted array of index entries.
    IndexBlock = 3,
    /// The list of live index blocks and the pack's totals.
    IndexRoot = 4,
    /// A signature over a manifest of entries (see [`super::signature`]).
    Signature = 5,
}

impl RecordKind {
    /// Decodes a kind byte.
    pub fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Entry),
            2 => Some(RecordKind::Tombstone),
            3 => Some(RecordKind::IndexBlock),
            4 => Some(RecordKind::IndexRoot),
            5 => Some(RecordKind::Signature),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// What the record holds.
    pub kind: RecordKind,
    /// The key (zero for index records).
    pub key: [u8; 32],
    /// The label's length in bytes (entries only).
    pub label_len: u16,
    /// The payload's length in bytes.
    pub payload_len: u64,
    /// CRC-32 of the payload.
    pub payload_crc: u32,
}

impl RecordHeader {
    /// A header for `payload`, computing its checksum.
    pub fn for_payload(kind: RecordKind, key: [u8; 32], label_len: u16, payload: &[u8]) -> Self {
        RecordHeader {
            kind,
            key,
            label_len,
            payload_len: payload.len() as u64,
            payload_crc: crc32fast::hash(payload),
        }
    }

    /// The bytes between the header and the payload: the label, zero-padded.
    pub fn label_area_len(&self) -> u64 {
        align_up(u64::from(self.label_len)).unwrap_or(0)
    }

    /// Where the payload starts for a record at `record_offset` (`None` on overflow).
    pub fn payload_offset(&self, record_offset: u64) -> Option<u64> {
        record_offset
            .checked_add(HEADER_LEN)?
            .checked_add(self.label_area_len())
    }

    /// The whole record's length including padding (`None` on overflow).
    pub fn record_len(&self) -> Option<u64> {
        HEADER_LEN
            .checked_add(self.label_area_len())?
            .checked_add(align_up(self.payload_len)?)
    }

    /// Encodes the header followed by the zero-padded label: everything before the payload.
    pub fn encode_with_label(&self, label: &[u8]) -> Vec<u8> {
        debug_assert_eq!(label.len(), usize::from(self.label_len));
        let mut out = vec![0u8; (HEADER_LEN + self.label_area_len()) as usize];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.kind as u8;
        write_u16(&mut out, 6, self.label_len);
        out[8..40].copy_from_slice(&self.key);
        write_u64(&mut out, 40, self.payload_len);
        write_u32(&mut out, 48, self.payload_crc);
        let crc = header_crc(&out[..60], label);
        write_u32(&mut out, 60, crc);
        out[HEADER_LEN as usize..HEADER_LEN as usize + label.len()].copy_from_slice(label);
        out
    }

    /// Decodes a header and its label from `bytes`, which start at the record and must hold
    /// at least the header and the label area.
    pub fn decode(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), DecodeError> {
        let head = bytes
            .get(..HEADER_LEN as usize)
            .ok_or_else(|| DecodeError::new("record header is truncated"))?;
        if head[..4] != MAGIC {
            return Err(DecodeError::new("record header has no magic"));
        }
        let kind = RecordKind::from_byte(head[4])
            .ok_or_else(|| DecodeError::new(format!("unknown record kind {}", head[4])))?;
        let label_len = read_u16(head, 6);
        if usize::from(label_len) > MAX_LABEL_LEN {
            return Err(DecodeError::new(format!(
                "label length {label_len} is too long"
            )));
        }
        let start = HEADER_LEN as usize;
        let label = bytes
            .get(start..start + usize::from(label_len))
            .ok_or_else(|| DecodeError::new("record label is truncated"))?;
        if read_u32(head, 60) != header_crc(&head[..60], label) {
            return Err(DecodeError::new("record header checksum mismatch"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&head[8..40]);
        let header = RecordHeader {
            kind,
            key,
            label_len,
            payload_len: read_u64(head, 40),
            payload_crc: read_u32(head, 48),
        };
        if kind != RecordKind::Entry && label_len != 0 {
            return Err(DecodeError::new("only entries carry labels"));
        }
        if header.record_len().is_none() {
            return Err(DecodeError::new("record length overflows"));
        }
        Ok((header, label))
    }
}

/// A whole record (header, label, payload, padding) with no key and no label, as index blocks
/// and roots are written.
pub fn encode_index_record(kind: RecordKind, payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader::for_payload(kind, [0; 32], 0, payload);
    let mut bytes = header.encode_with_label(b"");
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len() + payload_padding(header.payload_len), 0);
    bytes
}

/// The zero bytes that pad a payload of `payload_len` bytes to the next record boundary.
pub fn payload_padding(payload_len: u64) -> usize {
    (align_up(payload_len).unwrap_or(payload_len) - payload_len) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_header_round_trips_with_label() {
        let header = RecordHeader::for_payload(RecordKind::Entry, [9; 32], 5, b"payload");
        let bytes = header.encode_with_label(b"hello");
        assert_eq!(bytes.len(), 128);
        let (decoded, label) = RecordHeader::decode(&bytes).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(label, b"hello");
        assert_eq!(decoded.payload_offset(12288), Some(12288 + 128));
        assert_eq!(decoded.record_len(), Some(128 + 64));
        assert_eq!(payload_padding(7), 57);
        assert_eq!(payload_padding(64), 0);
    }

    #[test]
    fn every_bit_flip_in_header_or_label_is_caught() {
        let header = RecordHeader::for_payload(RecordKind::Entry, [3; 32], 3, b"x");
        let bytes = header.encode_with_label(b"abc");
        for byte in 0..(64 + 3) {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[byte] ^= 1 << bit;
                if let Ok((h, label)) = RecordHeader::decode(&flipped) {
                    panic!("flip at {byte}.{bit} decoded as {h:?} {label:?}");
                }
            }
        }
    }

    #[test]
    fn truncation_and_absurd_lengths_are_errors() {
        let header = RecordHeader::for_payload(RecordKind::Entry, [3; 32], 10, b"x");
        let bytes = header.encode_with_label(b"0123456789");
        for cut in 0..74 {
            assert!(RecordHeader::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let huge = RecordHeader {
            payload_len: u64::MAX - 10,
            ..RecordHeader::for_payload(RecordKind::Entry, [0; 32], 0, b"")
        };
        assert!(RecordHeader::decode(&huge.encode_with_label(b"")).is_err());
    }
}

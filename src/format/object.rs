//! A module object: one value stored on its own (one object per module in a bucket), with the
//! identity, key, length and checksum a pack would otherwise keep around it.
//!
//! Layout, little-endian, CRC-32 as everywhere in the format:
//!
//! ```text
//! offset  size  field
//! 0       8     magic  89 57 50 4D 0D 0A 1A 0A  ("\x89WPM\r\n\x1a\n")
//! 8       4     version, 1
//! 12      4     identity_len, at most 4064
//! 16      32    key
//! 48      8     value_len
//! 56      4     value_crc: CRC of the value
//! 60      4     header_crc: CRC of bytes 0..60 followed by the identity bytes
//! 64      identity_len, zero-padded to a multiple of 64: the encoded identity
//! then    value_len: the value (starts on a multiple of 64, like a pack's payloads)
//! ```
//!
//! An object is usable only whole: a decoder checks every field, both checksums and that the
//! object ends exactly where the value does, so a truncated, extended or damaged object is an
//! error, never a shorter or different value.

use super::identity::MAX_IDENTITY_LEN;
use super::{DecodeError, align_up, header_crc, read_u32, read_u64, write_u32, write_u64};

/// The first eight bytes of every module object.
pub const MAGIC: [u8; 8] = *b"\x89WPM\r\n\x1a\n";
/// The module object version this code reads and writes.
pub const VERSION: u32 = 1;
/// The size of the fixed header before the identity.
pub const HEADER_LEN: usize = 64;

/// A decoded module object: views into the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleObject<'a> {
    /// The encoded identity (see [`super::identity`]).
    pub identity: &'a [u8],
    /// The key the value was stored under.
    pub key: [u8; 32],
    /// Where the value starts in the object (a multiple of 64).
    pub value_offset: usize,
    /// The value, its checksum verified.
    pub value: &'a [u8],
}

/// The bytes in front of the value: header and padded identity. `identity` must be at most
/// [`MAX_IDENTITY_LEN`] bytes.
pub fn encode_header(identity: &[u8], key: &[u8; 32], value: &[u8]) -> Vec<u8> {
    assert!(identity.len() <= MAX_IDENTITY_LEN);
    let identity_area = align_up(identity.len() as u64).unwrap_or(0) as usize;
    let mut out = vec![0u8; HEADER_LEN + identity_area];
    out[..8].copy_from_slice(&MAGIC);
    write_u32(&mut out, 8, VERSION);
    write_u32(&mut out, 12, identity.len() as u32);
    out[16..48].copy_from_slice(key);
    write_u64(&mut out, 48, value.len() as u64);
    write_u32(&mut out, 56, crc32fast::hash(value));
    let crc = header_crc(&out[..60], identity);
    write_u32(&mut out, 60, crc);
    out[HEADER_LEN..HEADER_LEN + identity.len()].copy_from_slice(identity);
    out
}

/// The whole object: [`encode_header`] followed by the value.
pub fn encode(identity: &[u8], key: &[u8; 32], value: &[u8]) -> Vec<u8> {
    let mut out = encode_header(identity, key, value);
    out.extend_from_slice(value);
    out
}

/// Decodes and verifies a whole object: magic, version, header checksum, length and value
/// checksum. Never reads out of bounds or allocates by an untrusted length.
pub fn decode(bytes: &[u8]) -> Result<ModuleObject<'_>, DecodeError> {
    let head = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| DecodeError::new(format!("only {} bytes long", bytes.len())))?;
    if head[..8] != MAGIC {
        return Err(DecodeError::new(
            "not a wasmpak module object (wrong magic)",
        ));
    }
    let version = read_u32(head, 8);
    if version != VERSION {
        return Err(DecodeError::new(format!(
            "module object version {version} is not {VERSION}"
        )));
    }
    let identity_len = read_u32(head, 12) as usize;
    if identity_len > MAX_IDENTITY_LEN {
        return Err(DecodeError::new(format!(
            "identity length {identity_len} is too large"
        )));
    }
    let identity = bytes
        .get(HEADER_LEN..HEADER_LEN + identity_len)
        .ok_or_else(|| DecodeError::new("the identity is truncated"))?;
    if read_u32(head, 60) != header_crc(&head[..60], identity) {
        return Err(DecodeError::new("header checksum mismatch"));
    }
    let value_offset = HEADER_LEN + align_up(identity_len as u64).unwrap_or(0) as usize;
    let value_len = read_u64(head, 48);
    let available = bytes.len().saturating_sub(value_offset) as u64;
    if bytes.len() < value_offset || available != value_len {
        return Err(DecodeError::new(format!(
            "the value should be {value_len} bytes, the object holds {available}"
        )));
    }
    if bytes[HEADER_LEN + identity_len..value_offset]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(DecodeError::new("the identity's padding is not zero"));
    }
    let value = &bytes[value_offset..];
    if crc32fast::hash(value) != read_u32(head, 56) {
        return Err(DecodeError::new("value checksum mismatch"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&head[16..48]);
    Ok(ModuleObject {
        identity,
        key,
        value_offset,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &[u8] = b"\x06engine\x00\x04\x00test";

    #[test]
    fn round_trips_with_an_aligned_value() {
        let bytes = encode(IDENTITY, &[7; 32], b"compiled artifact");
        let object = decode(&bytes).unwrap();
        assert_eq!(object.identity, IDENTITY);
        assert_eq!(object.key, [7; 32]);
        assert_eq!(object.value, b"compiled artifact");
        assert_eq!(object.value_offset, 128);
        assert_eq!(&bytes[object.value_offset..], b"compiled artifact");
        let empty = encode(b"", &[0; 32], b"");
        assert_eq!(decode(&empty).unwrap().value, b"");
    }

    #[test]
    fn every_bit_flip_truncation_and_extension_is_caught() {
        let bytes = encode(IDENTITY, &[3; 32], b"some value bytes");
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                assert!(decode(&flipped).is_err(), "flip at {at}.{bit}");
            }
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn absurd_lengths_are_errors_not_allocations() {
        let mut bytes = encode(IDENTITY, &[3; 32], b"x");
        write_u64(&mut bytes, 48, u64::MAX);
        let crc = header_crc(&bytes[..60], IDENTITY);
        write_u32(&mut bytes, 60, crc);
        assert!(
            decode(&bytes)
                .unwrap_err()
                .to_string()
                .contains("should be")
        );
        let mut bytes = encode(IDENTITY, &[3; 32], b"x");
        write_u32(&mut bytes, 12, u32::MAX);
        assert!(decode(&bytes).is_err());
        assert!(decode(b"\x89WPM\r\n\x1a\n").is_err());
        assert!(decode(b"").is_err());
    }
}

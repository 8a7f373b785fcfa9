//! The 32-byte key every pack entry is stored under.

use std::fmt;
use std::str::FromStr;

/// The key of a pack entry: 32 bytes, in practice the SHA-256 of a module's wasm bytes.
///
/// Keys print as 64 lowercase hex digits and parse from hex in either case.
///
/// # Example
///
/// ```
/// use wasmpak::Key;
///
/// let key = Key::from_bytes([0xab; 32]);
/// let text = key.to_string();
/// assert_eq!(&text[..4], "abab");
/// assert_eq!(text.parse::<Key>().unwrap(), key);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key([u8; 32]);

impl Key {
    /// The length of a key in bytes.
    pub const LEN: usize = 32;

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// The raw bytes of the key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first eight bytes read as a big-endian integer: keys sort by this prefix first,
    /// which is what the index's interpolation search relies on.
    pub(crate) fn prefix(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }
}

impl From<[u8; 32]> for Key {
    fn from(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// The error returned when text is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key {text:?}: expected 64 hex digits")]
pub struct ParseKeyError {
    text: String,
}

impl FromStr for Key {
    type Err = ParseKeyError;

    fn from_str(text: &str) -> Result<Key, ParseKeyError> {
        let invalid = || ParseKeyError {
            text: text.chars().take(80).collect(),
        };
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            *byte = (high << 4) | low;
        }
        Ok(Key(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_in_both_cases() {
        let key = Key::from_bytes(std::array::from_fn(|i| (i * 7) as u8));
        let lower = key.to_string();
        assert_eq!(lower.len(), 64);
        assert!(
            lower
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_eq!(lower.parse::<Key>().unwrap(), key);
        assert_eq!(lower.to_uppercase().parse::<Key>().unwrap(), key);
    }

    #[test]
    fn rejects_bad_text() {
        assert!("".parse::<Key>().is_err());
        assert!("ab".parse::<Key>().is_err());
        assert!("zz".repeat(32).parse::<Key>().is_err());
        assert!("é".repeat(32).parse::<Key>().is_err());
        assert!("0".repeat(65).parse::<Key>().is_err());
    }

    #[test]
    fn prefix_orders_like_bytes() {
        let a = Key::from_bytes([1; 32]);
        let mut b = [1; 32];
        b[7] = 2;
        let b = Key::from_bytes(b);
        assert!(a < b);
        assert!(a.prefix() < b.prefix());
    }
}

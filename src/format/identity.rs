//! The pack identity and its encoding in the superblock.
//!
//! An identity is an ordered list of named fields, each a string or a number. Two packs have
//! the same identity when their encoded bytes are equal, so field order matters.
//!
//! Encoding, repeated until the identity bytes end:
//!
//! ```text
//! name_len  u8           1..=64
//! name      [u8]         UTF-8
//! tag       u8           0 = string, 1 = u64
//! string:   len u16, [u8] UTF-8 (len <= 1024)
//! u64:      8 bytes little-endian
//! ```

use std::fmt;

/// The largest encoded identity the superblock has room for.
pub const MAX_IDENTITY_LEN: usize = 4064;
/// The longest field name.
pub const MAX_NAME_LEN: usize = 64;
/// The longest string value.
pub const MAX_STRING_LEN: usize = 1024;

const TAG_STRING: u8 = 0;
const TAG_NUMBER: u8 = 1;

/// One value of a [`PackIdentity`] field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityValue {
    /// A string, such as an engine id or a target triple.
    Str(String),
    /// A number, such as an ABI version.
    Num(u64),
}

impl fmt::Display for IdentityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityValue::Str(s) if s.is_empty() || s.contains(char::is_whitespace) => {
                write!(f, "{s:?}")
            }
            IdentityValue::Str(s) => f.write_str(s),
            IdentityValue::Num(n) => write!(f, "{n}"),
        }
    }
}

impl From<&str> for IdentityValue {
    fn from(value: &str) -> Self {
        IdentityValue::Str(value.to_string())
    }
}

impl From<String> for IdentityValue {
    fn from(value: String) -> Self {
        IdentityValue::Str(value)
    }
}

impl From<u64> for IdentityValue {
    fn from(value: u64) -> Self {
        IdentityValue::Num(value)
    }
}

impl From<u32> for IdentityValue {
    fn from(value: u32) -> Self {
        IdentityValue::Num(u64::from(value))
    }
}

/// What a pack was built for: the caller's description of everything that must match for
/// the pack's contents to be usable, stored once in the superblock.
///
/// For wasmer modules this is the engine's deterministic id, artifact format, artifact ABI
/// version, target triple and CPU features; the pack store itself treats it as opaque.
/// Opening a pack with a different identity fails with
/// [`ErrorKind::IdentityMismatch`](crate::ErrorKind::IdentityMismatch).
///
/// # Example
///
/// ```
/// use wasmpak::PackIdentity;
///
/// let identity = PackIdentity::new()
///     .with("engine", "cranelift-opts")
///     .with("abi", 24u32);
/// assert_eq!(identity.to_string(), "engine=cranelift-opts abi=24");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PackIdentity {
    fields: Vec<(String, IdentityValue)>,
}

impl PackIdentity {
    /// An identity with no fields.
    pub fn new() -> PackIdentity {
        PackIdentity::default()
    }

    /// Adds a field. Names and values are checked when a pack is created with the identity.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<IdentityValue>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&IdentityValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &IdentityValue)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Encodes the identity, or says why it cannot be stored.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for (name, value) in &self.fields {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(format!(
                    "identity field name {name:?} must be 1 to {MAX_NAME_LEN} bytes"
                ));
            }
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            match value {
                IdentityValue::Str(s) => {
                    if s.len() > MAX_STRING_LEN {
                        return Err(format!(
                            "identity field {name:?} is {} bytes, at most {MAX_STRING_LEN} fit",
                            s.len()
                        ));
                    }
                    out.push(TAG_STRING);
                    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                IdentityValue::Num(n) => {
                    out.push(TAG_NUMBER);
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
        if out.len() > MAX_IDENTITY_LEN {
            return Err(format!(
                "identity encodes to {} bytes, at most {MAX_IDENTITY_LEN} fit",
                out.len()
            ));
        }
        Ok(out)
    }

    /// Decodes identity bytes as stored in the superblock.
    pub fn decode(mut bytes: &[u8]) -> Result<PackIdentity, String> {
        if bytes.len() > MAX_IDENTITY_LEN {
            return Err(format!("identity is {} bytes", bytes.len()));
        }
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let name_len = usize::from(take(&mut bytes, 1)?[0]);
            if name_len == 0 || name_len > MAX_NAME_LEN {
                return Err(format!("identity field name length {name_len}"));
            }
            let name = utf8(take(&mut bytes, name_len)?)?;
            let value = match take(&mut bytes, 1)?[0] {
                TAG_STRING => {
                    let len = take(&mut bytes, 2)?;
                    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
                    if len > MAX_STRING_LEN {
                        return Err(format!("identity field {name:?} length {len}"));
                    }
                    IdentityValue::Str(utf8(take(&mut bytes, len)?)?)
                }
                TAG_NUMBER => {
                    let raw = take(&mut bytes, 8)?;
                    let mut n = [0u8; 8];
                    n.copy_from_slice(raw);
                    IdentityValue::Num(u64::from_le_bytes(n))
                }
                tag => return Err(format!("identity field {name:?} has unknown tag {tag}")),
            };
            fields.push((name, value));
        }
        Ok(PackIdentity { fields })
    }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("identity ends in the middle of a field".to_string());
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "identity text is not UTF-8".to_string())
}

impl fmt::Display for PackIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fields.is_empty() {
            return f.write_str("(empty identity)");
        }
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PackIdentity {
        PackIdentity::new()
            .with("engine", "cranelift-opts")
            .with("abi", 24u32)
            .with("target", "x86_64-unknown-linux-gnu")
            .with("note", "two words")
    }

    #[test]
    fn round_trips() {
        let id = sample();
        let bytes = id.encode().unwrap();
        assert_eq!(PackIdentity::decode(&bytes).unwrap(), id);
    }

    #[test]
    fn displays_fields_in_order() {
        assert_eq!(
            sample().to_string(),
            "engine=cranelift-opts abi=24 target=x86_64-unknown-linux-gnu note=\"two words\""
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_a_prefix() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            if let Ok(id) = PackIdentity::decode(&bytes[..cut]) {
                assert!(id.fields.len() < 4);
            }
        }
    }

    #[test]
    fn rejects_oversized_fields() {
        assert!(PackIdentity::new().with("", "x").encode().is_err());
        assert!(
            PackIdentity::new()
                .with("n".repeat(65), "x")
                .encode()
                .is_err()
        );
        assert!(
            PackIdentity::new()
                .with("n", "x".repeat(1025))
                .encode()
                .is_err()
        );
        let mut big = PackIdentity::new();
        for i in 0..8 {
            big = big.with(format!("f{i}"), "x".repeat(1000));
        }
        assert!(big.encode().is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(PackIdentity::decode(&[3, b'a', b'b', b'c', 9]).is_err());
        assert!(PackIdentity::decode(&[1, 0xff, 0, 0, 0]).is_err());
        assert!(PackIdentity::decode(&[0]).is_err());
    }
}

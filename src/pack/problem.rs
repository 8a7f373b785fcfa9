//! One thing wrong with a pack, as the integrity and signature checks report it.

use std::fmt;

use crate::Key;

/// One thing wrong with a pack, found by [`Pack::verify`](crate::Pack::verify)
/// or [`Pack::verify_signatures`](crate::Pack::verify_signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    key: Option<Key>,
    offset: u64,
    detail: String,
}

impl Problem {
    pub(crate) fn new(key: Option<Key>, offset: u64, detail: String) -> Problem {
        Problem {
            key,
            offset,
            detail,
        }
    }

    /// The key concerned, if it is known.
    pub fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }

    /// The file offset of the damaged structure.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What is wrong.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key} at offset {}: {}", self.offset, self.detail),
            None => write!(f, "offset {}: {}", self.offset, self.detail),
        }
    }
}

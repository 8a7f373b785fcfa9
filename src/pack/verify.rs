//! Full integrity check: every index block, every live record, every value checksum.

use std::collections::BTreeMap;
use std::fmt;

use crate::format::index::{ENTRY_LEN, EntryKind, IndexEntry};
use crate::format::record::RecordKind;
use crate::{Key, Pack, Result};

use super::view::View;

/// One thing wrong with a pack, found by [`Pack::verify`].
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

/// The result of [`Pack::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    entries: u64,
    bytes: u64,
    problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Number of live values checked.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Number of value bytes checksummed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Everything found wrong.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl Pack {
    /// Checks every index block and every live value against its checksums. The pack opened,
    /// so its header, commit slot and index root are already known good; this reads the rest.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pack = Pack::create(dir.path().join("v.wpk"), &PackIdentity::new().with("a", "b"))?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"value")?;
    /// let report = pack.verify()?;
    /// assert!(report.is_ok());
    /// assert_eq!(report.entries(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        let view = self.view()?;
        let mut report = VerifyReport::default();
        let mut newest: BTreeMap<Key, IndexEntry> = BTreeMap::new();
        for block in view.blocks.iter().rev() {
            let mut problem = |offset, detail: String| {
                report.problems.push(Problem {
                    key: None,
                    offset,
                    detail,
                })
            };
            match view.record_header(block.offset) {
                Ok((header, _)) => {
                    if let Err(e) = view.record_payload(block.offset, &header) {
                        problem(block.offset, format!("index block: {}", strip(&e)));
                    }
                }
                Err(e) => problem(block.offset, strip(&e)),
            }
            let bytes = view.block_bytes(block)?;
            let mut previous: Option<Key> = None;
            for (i, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
                let at = block.payload_offset + (i * ENTRY_LEN) as u64;
                match IndexEntry::decode(chunk) {
                    Ok(entry) => {
                        if previous.is_some_and(|p| p >= entry.key) {
                            problem(at, "index block is not sorted".to_string());
                        }
                        previous = Some(entry.key);
                        newest.insert(entry.key, entry);
                    }
                    Err(e) => problem(at, format!("index entry {i}: {e}")),
                }
            }
        }
        for entry in newest.into_values() {
            if let Err(detail) = check_entry(&view, &entry, &mut report) {
                report.problems.push(Problem {
                    key: Some(entry.key),
                    offset: entry.record_offset,
                    detail,
                });
            }
        }
        Ok(report)
    }
}

fn check_entry(view: &View, entry: &IndexEntry, report: &mut VerifyReport) -> Result<(), String> {
    let (header, _) = view
        .record_header(entry.record_offset)
        .map_err(|e| strip(&e))?;
    let expected = match entry.kind {
        EntryKind::Value => RecordKind::Entry,
        EntryKind::Tombstone => RecordKind::Tombstone,
    };
    if header.kind != expected
        || header.key != *entry.key.as_bytes()
        || header.payload_len != entry.payload_len
        || header.payload_crc != entry.payload_crc
        || header.label_len != entry.label_len
    {
        return Err("record header does not match its index entry".to_string());
    }
    if entry.kind == EntryKind::Value {
        report.entries += 1;
        let (_, payload) = view.payload(entry).map_err(|e| strip(&e))?;
        report.bytes += payload.len() as u64;
        if crc32fast::hash(payload) != entry.payload_crc {
            return Err("value checksum mismatch".to_string());
        }
    }
    Ok(())
}

/// The detail of a corruption error, without the "pack ... is corrupt" prefix.
fn strip(error: &crate::Error) -> String {
    match error {
        crate::Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

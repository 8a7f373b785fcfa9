//! Full integrity check: every index block, every live record, every value checksum.

use crate::format::index::{self, ENTRY_LEN, EntryKind, IndexEntry};
use crate::{Key, Pack, Result};

use super::problem::Problem;

use super::view::View;

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
        // Each block's entries that decode, oldest block first (the order problems are
        // reported in).
        let mut decoded: Vec<Vec<IndexEntry>> = Vec::with_capacity(view.blocks.len());
        for block in view.blocks.iter().rev() {
            let mut problem =
                |offset, detail: String| report.problems.push(Problem::new(None, offset, detail));
            match view.record_header(block.offset) {
                Ok((header, _)) => {
                    if let Err(e) = view.record_payload(block.offset, &header) {
                        problem(block.offset, format!("index block: {}", e.detail()));
                    }
                }
                Err(e) => problem(block.offset, e.detail()),
            }
            let bytes = view.block_bytes(block)?;
            let mut entries = Vec::with_capacity(block.count as usize);
            let mut previous: Option<Key> = None;
            for (i, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
                let at = block.payload_offset + (i * ENTRY_LEN) as u64;
                match IndexEntry::decode(chunk) {
                    Ok(entry) => {
                        if previous.is_some_and(|p| p >= entry.key) {
                            problem(at, "index block is not sorted".to_string());
                        }
                        previous = Some(entry.key);
                        entries.push(entry);
                    }
                    Err(e) => problem(at, format!("index entry {i}: {e}")),
                }
            }
            decoded.push(entries);
        }
        let newest = index::newest_per_key(decoded.into_iter().rev(), |e| e.key);
        for entry in newest.into_values() {
            if let Err(detail) = check_entry(&view, &entry, &mut report) {
                report
                    .problems
                    .push(Problem::new(Some(entry.key), entry.record_offset, detail));
            }
        }
        Ok(report)
    }
}

fn check_entry(view: &View, entry: &IndexEntry, report: &mut VerifyReport) -> Result<(), String> {
    let (header, _) = view
        .record_header(entry.record_offset)
        .map_err(|e| e.detail())?;
    if !entry.matches(&header) {
        return Err("record header does not match its index entry".to_string());
    }
    if entry.kind == EntryKind::Value {
        report.entries += 1;
        let (_, payload) = view.payload(entry).map_err(|e| e.detail())?;
        report.bytes += payload.len() as u64;
        if crc32fast::hash(payload) != entry.payload_crc {
            return Err("value checksum mismatch".to_string());
        }
    }
    Ok(())
}

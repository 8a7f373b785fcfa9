//! A damaged newest commit: the commit a reader falls back to, and what the lost one wrote
//! (docs/FORMAT.md, section 4.4).
//!
//! A synced commit keeps, beside its slot, a copy of the commit it followed. When the newest
//! commit's index root or blocks fail their checks, a reader opens that older commit instead,
//! *degraded*: every key the lost commit wrote (inserted, replaced or removed), named by the
//! record headers between the two commits' committed lengths, reads as absent, so no value a
//! later commit replaced or removed is handed out. Writers refuse a degraded pack; compaction
//! repairs it, keeping the lost commit's values that still check out.

use std::fmt;

use crate::format::index::{BLOCK_STRIDE, EntryKind, IndexEntry, ROOT_FIXED_LEN, Root};
use crate::format::record::{RecordHeader, RecordKind};
use crate::format::superblock::{CommitSlot, DATA_START};
use crate::{Key, Pack, Result};

use super::mapping::{CommittedLen, Mapping};

/// The longest record header and label a walk reads at once.
const HEADER_AND_LABEL: u64 = 64 + 1024;

/// The newest commit of a pack, found damaged and not used: what a degraded view knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    /// The damaged commit.
    pub(crate) commit: CommitSlot,
    /// Where its records begin: the committed length of the commit the view fell back to.
    pub(crate) from: u64,
    /// Why it could not be used.
    pub(crate) reason: String,
    /// The newest record of each key it wrote, sorted by key, with labels.
    pub(crate) written: Vec<(IndexEntry, String)>,
}

impl Lost {
    /// Whether the lost commit wrote `key`: then its value in the older commit may be one the
    /// lost commit replaced or removed, and it must not be handed out.
    pub(crate) fn hides(&self, key: &Key) -> bool {
        self.written
            .binary_search_by(|(entry, _)| entry.key.cmp(key))
            .is_ok()
    }

    /// Names every record the damaged commit `newest` wrote after `from` (the committed length
    /// of the commit it followed), reading the record headers of `map` in between: the newest
    /// record of each key, sorted by key. Fails if a header there cannot be read and is neither
    /// the commit's index root (its last record) nor a block its root lists: then what the
    /// commit wrote cannot all be named.
    pub(crate) fn walk(
        map: &Mapping,
        newest: &CommitSlot,
        from: u64,
        reason: String,
    ) -> std::result::Result<Lost, String> {
        let end = newest.committed_len;
        let root = newest_root(map, newest);
        let mut written: Vec<(IndexEntry, String)> = Vec::new();
        let mut at = from;
        while at < end {
            let header = map
                .committed(CommittedLen::of(newest), at, HEADER_AND_LABEL.min(end - at))
                .and_then(|bytes| RecordHeader::decode(bytes).ok());
            let Some((header, label)) = header else {
                if at == newest.root_offset {
                    break; // The root is the commit's last record; it holds no key.
                }
                // A block the root lists: its length is known without its header.
                let block = root
                    .as_ref()
                    .and_then(|r| r.blocks.iter().find(|b| b.offset == at))
                    .and_then(|b| b.count.checked_mul(BLOCK_STRIDE as u64))
                    .map(|payload| 64 + payload.next_multiple_of(64));
                match block {
                    Some(len) => {
                        at = at.saturating_add(len);
                        continue;
                    }
                    None => {
                        return Err(format!(
                            "the record at offset {at}, written by commit {}, is unreadable",
                            newest.generation
                        ));
                    }
                }
            };
            let kind = match header.kind {
                RecordKind::Entry => Some(EntryKind::Value),
                RecordKind::Tombstone => Some(EntryKind::Tombstone),
                _ => None,
            };
            if let Some(kind) = kind {
                let entry = IndexEntry {
                    key: Key::from_bytes(header.key),
                    record_offset: at,
                    payload_len: header.payload_len,
                    payload_crc: header.payload_crc,
                    label_len: header.label_len,
                    kind,
                };
                written.push((entry, String::from_utf8_lossy(label).into_owned()));
            }
            let len = header.record_len().unwrap_or(u64::MAX);
            at = at.saturating_add(len);
        }
        if at > end {
            return Err(format!(
                "the records of commit {} run past its committed length",
                newest.generation
            ));
        }
        // Newest per key: the last record wins (records are appended in commit order).
        written.reverse();
        written.sort_by_key(|(entry, _)| entry.key);
        written.dedup_by_key(|(entry, _)| entry.key);
        Ok(Lost {
            commit: *newest,
            from,
            reason,
            written,
        })
    }
}

/// The damaged commit's root, if it reads (a block header may be what is damaged).
fn newest_root(map: &Mapping, newest: &CommitSlot) -> Option<Root> {
    let within = CommittedLen::of(newest);
    let at = newest.root_offset;
    if at < DATA_START {
        return None;
    }
    let bytes = map.committed(within, at, HEADER_AND_LABEL.min(newest.committed_len - at))?;
    let (header, _) = RecordHeader::decode(bytes).ok()?;
    if header.kind != RecordKind::IndexRoot || header.payload_len < ROOT_FIXED_LEN as u64 {
        return None;
    }
    let payload = map.committed(within, header.payload_offset(at)?, header.payload_len)?;
    (crc32fast::hash(payload) == header.payload_crc)
        .then(|| Root::decode(payload).ok())
        .flatten()
}

/// A pack's newest commit, found damaged and not used (see [`Pack::lost_commit`]).
///
/// The pack reads as at the commit before it, except that every key the lost commit wrote
/// reads as absent: its value there may be one the lost commit replaced or removed.
/// [`Pack::compact`] repairs the pack, keeping the lost commit's values that still check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCommit {
    generation: u64,
    reason: String,
    written: Vec<LostEntry>,
}

/// One key a [`LostCommit`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEntry {
    key: Key,
    label: String,
    size: Option<u64>,
    offset: u64,
    intact: bool,
}

impl LostCommit {
    /// The lost commit's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Why it could not be used.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The keys it wrote, sorted: each reads as absent until compaction repairs the pack.
    pub fn written(&self) -> &[LostEntry] {
        &self.written
    }
}

impl fmt::Display for LostCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commit {} is damaged ({}) and not used: the pack reads as at the commit before it, \
             without the {} key{} commit {} wrote",
            self.generation,
            self.reason,
            self.written.len(),
            if self.written.len() == 1 { "" } else { "s" },
            self.generation
        )
    }
}

impl LostEntry {
    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The entry's label (empty for a removal).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The value's length, or `None` if the lost commit removed the key.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Whether the lost commit removed the key.
    pub fn removed(&self) -> bool {
        self.size.is_none()
    }

    /// The offset of the record the lost commit wrote for the key.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the value still checks out, so that [`Pack::compact`] brings it back (always
    /// false for a removal).
    pub fn intact(&self) -> bool {
        self.intact
    }
}

impl fmt::Display for LostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.label)
        };
        match self.size {
            None => write!(f, "{}{label}: removed", self.key),
            Some(size) if self.intact => write!(
                f,
                "{}{label}: {size} bytes written, intact (compaction keeps it)",
                self.key
            ),
            Some(size) => write!(f, "{}{label}: {size} bytes written, damaged", self.key),
        }
    }
}

impl Pack {
    /// The newest commit, if it was found damaged and the pack reads as at the commit before
    /// it (docs/FORMAT.md, section 4.4). Writers refuse such a pack until [`Pack::compact`]
    /// repairs it; [`Pack::verify`] names what was lost.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pack = Pack::create(dir.path().join("l.wpk"), &PackIdentity::new().with("a", "b"))?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"value")?;
    /// assert_eq!(pack.lost_commit()?, None); // nothing damaged
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lost_commit(&self) -> Result<Option<LostCommit>> {
        let view = self.view()?;
        let Some(lost) = &view.lost else {
            return Ok(None);
        };
        let written = lost
            .written
            .iter()
            .map(|(entry, label)| LostEntry {
                key: entry.key,
                label: label.clone(),
                size: (entry.kind == EntryKind::Value).then_some(entry.payload_len),
                offset: entry.record_offset,
                intact: entry.kind == EntryKind::Value && view.lost_value(entry).is_some(),
            })
            .collect();
        Ok(Some(LostCommit {
            generation: lost.commit.generation,
            reason: lost.reason.clone(),
            written,
        }))
    }
}

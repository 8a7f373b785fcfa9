//! Merging index blocks: the log-structured index maintenance of docs/FORMAT.md, section 7.

use crate::format::index::{EntryKind, IndexEntry};

/// Sorts a batch's entries by key and keeps the last one written for each key.
pub(crate) fn newest_per_key(mut entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
    entries.reverse();
    // Stable: among equal keys the first, i.e. the last written, survives the dedup.
    entries.sort_by_key(|e| e.key);
    entries.dedup_by_key(|e| e.key);
    entries
}

/// Merges two sorted blocks; `newer` shadows `older`. Tombstones are dropped when the result
/// becomes the oldest block, since nothing below it could still hold the key.
pub(crate) fn merge(
    newer: &[IndexEntry],
    older: &[IndexEntry],
    drop_tombstones: bool,
) -> Vec<IndexEntry> {
    let mut out = Vec::with_capacity(newer.len() + older.len());
    let (mut n, mut o) = (newer.iter().peekable(), older.iter().peekable());
    loop {
        let next = match (n.peek(), o.peek()) {
            (Some(a), Some(b)) if a.key < b.key => n.next(),
            (Some(a), Some(b)) if a.key == b.key => {
                o.next();
                n.next()
            }
            (Some(_), Some(_)) => o.next(),
            (Some(_), None) => n.next(),
            (None, Some(_)) => o.next(),
            (None, None) => break,
        };
        if let Some(entry) = next
            && !(drop_tombstones && entry.kind == EntryKind::Tombstone)
        {
            out.push(*entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    fn e(k: u8, at: u64, kind: EntryKind) -> IndexEntry {
        IndexEntry {
            key: Key::from_bytes([k; 32]),
            record_offset: at,
            payload_len: 1,
            payload_crc: 0,
            label_len: 0,
            kind,
        }
    }

    #[test]
    fn newest_per_key_keeps_the_last_write() {
        let out = newest_per_key(vec![
            e(2, 1, EntryKind::Value),
            e(1, 2, EntryKind::Value),
            e(2, 3, EntryKind::Tombstone),
            e(1, 4, EntryKind::Value),
        ]);
        assert_eq!(
            out,
            vec![e(1, 4, EntryKind::Value), e(2, 3, EntryKind::Tombstone)]
        );
    }

    #[test]
    fn merge_shadows_and_drops_tombstones_at_the_bottom() {
        let newer = [e(1, 10, EntryKind::Value), e(3, 11, EntryKind::Tombstone)];
        let older = [
            e(1, 1, EntryKind::Value),
            e(2, 2, EntryKind::Value),
            e(3, 3, EntryKind::Value),
        ];
        let kept = merge(&newer, &older, false);
        assert_eq!(
            kept,
            vec![
                e(1, 10, EntryKind::Value),
                e(2, 2, EntryKind::Value),
                e(3, 11, EntryKind::Tombstone)
            ]
        );
        let bottom = merge(&newer, &older, true);
        assert_eq!(
            bottom,
            vec![e(1, 10, EntryKind::Value), e(2, 2, EntryKind::Value)]
        );
    }
}

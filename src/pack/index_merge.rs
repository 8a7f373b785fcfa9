//! Merging index blocks, the log-structured index maintenance of docs/FORMAT.md, section 7:
//! a commit's entries become one sorted block without duplicates, merged with the newest
//! blocks below it. (Merging whole packs is the tool's `wasmpak merge`, not this.)

use crate::format::index::{EntryKind, IndexEntry, newest_per_key};

/// A batch's entries (in the order they were written) as a block: sorted by key, the last
/// one written for each key.
pub(crate) fn batch_block(entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
    newest_per_key([entries.into_iter().rev()], |e| e.key)
        .into_values()
        .collect()
}

/// Merges two sorted blocks; `newer` shadows `older`. Tombstones are dropped when the result
/// becomes the oldest block, since nothing below it could still hold the key.
pub(crate) fn merge_blocks(
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
    fn a_batch_block_keeps_the_last_write() {
        let out = batch_block(vec![
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
        let kept = merge_blocks(&newer, &older, false);
        assert_eq!(
            kept,
            vec![
                e(1, 10, EntryKind::Value),
                e(2, 2, EntryKind::Value),
                e(3, 11, EntryKind::Tombstone)
            ]
        );
        let bottom = merge_blocks(&newer, &older, true);
        assert_eq!(
            bottom,
            vec![e(1, 10, EntryKind::Value), e(2, 2, EntryKind::Value)]
        );
    }
}

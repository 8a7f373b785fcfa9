//! Media damage to the newest durable commit (docs/FORMAT.md, section 4.4): the pack reads as
//! at the commit before it, every key the damaged commit wrote reads as absent (never as the
//! value it replaced or removed), `verify` names them, writers refuse until `compact` repairs,
//! and compaction brings back the damaged commit's values that still check out.

use std::path::Path;

use crate::common::{identity, key, raw, scratch, value};
use wasmpak::format::record::RecordHeader;
use wasmpak::format::superblock::{PREVIOUS_SLOT_AT, SLOT_LEN, SLOT_OFFSETS};
use wasmpak::{ErrorKind, Pack};

/// A pack of three entries written by three commits; returns the values.
fn three_commits(path: &Path) -> Vec<Vec<u8>> {
    let pack = Pack::create(path, &identity()).unwrap();
    (0..3)
        .map(|i| {
            let v = value(i, 300 + 100 * i as usize);
            pack.insert_with_label(&key(i), &v, &format!("module-{i}"))
                .unwrap();
            v
        })
        .collect()
}

/// The file offset of the newest commit's index root payload, and its length.
fn newest_root_payload(path: &Path) -> (u64, u64) {
    let at = raw::live(path).root_offset;
    let bytes = std::fs::read(path).unwrap();
    let (header, _) = RecordHeader::decode(&bytes[at as usize..]).unwrap();
    (header.payload_offset(at).unwrap(), header.payload_len)
}

#[test]
fn a_damaged_newest_index_root_loses_only_that_commit_until_compaction_brings_it_back() {
    let (_dir, path) = scratch();
    let values = three_commits(&path);
    let (payload, _) = newest_root_payload(&path);
    crate::common::flip(&path, payload + 3, 0x10);

    let pack = Pack::open(&path, &identity()).unwrap();
    for i in 0..2 {
        assert_eq!(
            pack.get(&key(i)).unwrap().as_deref(),
            Some(&values[i as usize][..])
        );
    }
    assert_eq!(pack.get(&key(2)).unwrap(), None);
    assert!(!pack.contains(&key(2)).unwrap());
    assert_eq!(pack.len().unwrap(), 2);
    assert_eq!(pack.keys().unwrap(), vec![key(0), key(1)]);
    assert_eq!(pack.iter().unwrap().count(), 2);
    let lost = pack
        .lost_commit()
        .unwrap()
        .expect("the newest commit is lost");
    assert_eq!(lost.generation(), 4);
    assert_eq!(lost.written().len(), 1);
    let written = &lost.written()[0];
    assert_eq!(*written.key(), key(2));
    assert_eq!(written.label(), "module-2");
    assert_eq!(written.size(), Some(500));
    assert!(written.intact() && !written.removed());

    // verify names the commit and the entry.
    let report = pack.verify().unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.entries(), 2);
    assert!(
        report.problems()[0]
            .detail()
            .contains("commit 4 is damaged")
    );
    assert_eq!(report.problems()[1].key(), Some(&key(2)));

    // Writers refuse: a commit over the older one would make the loss look intended.
    let err = pack.insert(&key(9), b"new").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("compact"), "{err}");
    let target = tempfile::tempdir().unwrap();
    assert_eq!(
        pack.install_into(target.path()).unwrap_err().kind(),
        ErrorKind::Corrupt
    );

    // Compaction repairs it, bringing back the damaged commit's value, which checks out.
    let report = pack.compact().unwrap();
    assert_eq!((report.kept(), report.recovered()), (3, 1));
    assert_eq!(report.dropped_unreadable(), 0);
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.lost_commit().unwrap(), None);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(pack.get(&key(i as u64)).unwrap().as_deref(), Some(&v[..]));
    }
    assert!(pack.verify().unwrap().is_ok());
    assert!(pack.stats().unwrap().generation > 4);
    pack.insert(&key(9), b"new").unwrap();
}

#[test]
fn keys_the_damaged_commit_replaced_or_removed_read_as_absent_never_as_before() {
    let (_dir, path) = scratch();
    let values = three_commits(&path);
    let pack = Pack::open(&path, &identity()).unwrap();
    let (replaced, added) = (value(10, 700), value(11, 40));
    let mut batch = pack.batch();
    batch.insert(&key(0), &replaced).unwrap();
    batch.remove(&key(1)).unwrap();
    batch.insert(&key(3), &added).unwrap();
    batch.commit().unwrap();
    drop(pack);
    let (payload, len) = newest_root_payload(&path);
    crate::common::flip(&path, payload + len - 1, 0x01);

    let pack = Pack::open(&path, &identity()).unwrap();
    for k in [0, 1, 3] {
        assert_eq!(pack.get(&key(k)).unwrap(), None, "key {k}");
    }
    assert_eq!(pack.get(&key(2)).unwrap().as_deref(), Some(&values[2][..]));
    assert_eq!(pack.keys().unwrap(), vec![key(2)]);
    assert_eq!(pack.stats().unwrap().entries, 1);
    let lost = pack.lost_commit().unwrap().unwrap();
    let mut written: Vec<_> = lost
        .written()
        .iter()
        .map(|e| (*e.key(), e.removed()))
        .collect();
    written.sort();
    let mut expected = vec![(key(0), false), (key(1), true), (key(3), false)];
    expected.sort();
    assert_eq!(written, expected);

    let report = pack.compact().unwrap();
    assert_eq!(report.recovered(), 2);
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.get(&key(0)).unwrap().as_deref(), Some(&replaced[..]));
    assert_eq!(pack.get(&key(1)).unwrap(), None);
    assert_eq!(pack.get(&key(3)).unwrap().as_deref(), Some(&added[..]));
    assert_eq!(pack.len().unwrap(), 3);
}

/// The structures whose damage used to lose the whole pack: the newest commit's index root and
/// the header of its index block. (Damage to an index entry or a value costs that entry: a
/// lookup reports it, compaction drops it.)
#[test]
fn any_damaged_byte_of_the_newest_root_or_block_header_loses_at_most_that_commit() {
    let (dir, path) = scratch();
    let values = three_commits(&path);
    let bytes = std::fs::read(&path).unwrap();
    let live = raw::live(&path);
    let (payload, len) = newest_root_payload(&path);
    let root_record = live.root_offset..payload + len;
    let block = {
        use wasmpak::format::index::Root;
        let root = Root::decode(&bytes[payload as usize..(payload + len) as usize]).unwrap();
        root.blocks[0].offset
    };
    let damaged = dir.path().join("damaged.wpk");
    let mut tried = 0;
    for at in root_record.chain(block..block + 64) {
        let mut flipped = bytes.clone();
        flipped[at as usize] ^= 0x20;
        std::fs::write(&damaged, &flipped).unwrap();
        let pack = Pack::open(&damaged, &identity())
            .unwrap_or_else(|e| panic!("flip at {at}: the pack does not open: {e}"));
        for i in 0..2 {
            assert_eq!(
                pack.get(&key(i)).unwrap().as_deref(),
                Some(&values[i as usize][..]),
                "flip at {at}: an older entry is lost"
            );
        }
        // The damaged commit's own entry: absent until compaction, never wrong.
        let lost = pack.lost_commit().unwrap();
        assert_eq!(
            lost.map(|l| l.generation()),
            Some(live.generation),
            "flip at {at}"
        );
        assert_eq!(pack.get(&key(2)).unwrap(), None, "flip at {at}");
        let report = pack.compact().unwrap();
        assert_eq!(report.recovered(), 1, "flip at {at}");
        tried += 1;
    }
    assert_eq!(tried, payload + len - live.root_offset + 64);
}

#[test]
fn without_the_copy_of_the_previous_commit_a_damaged_root_is_corrupt_as_before() {
    let (_dir, path) = scratch();
    three_commits(&path);
    // As a pack written before the copy existed: the rest of each slot page is zero.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for slot in SLOT_OFFSETS {
        std::os::unix::fs::FileExt::write_all_at(&file, &[0; SLOT_LEN], slot + PREVIOUS_SLOT_AT)
            .unwrap();
    }
    let (payload, _) = newest_root_payload(&path);
    crate::common::flip(&path, payload, 0x01);
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

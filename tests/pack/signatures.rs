//! Signed packs under attack: an attacker who can write the file forges values with their
//! checksums fixed up, appends entries, brings signatures by other keys, replays signatures
//! between generations, truncates and swaps signature records. Each must be refused with an
//! error naming the entry and the reason; never may the altered bytes be handed out.

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::common::raw;
use wasmpak::format::index::{ENTRY_LEN, IndexEntry};
use wasmpak::format::record::{HEADER_LEN, RecordHeader, RecordKind};
use wasmpak::format::signature::{FIXED_LEN, MANIFEST_ENTRY_LEN};
use wasmpak::format::superblock::{CommitSlot, DATA_START};
use wasmpak::{
    ErrorKind, Key, Pack, PackIdentity, PackOptions, PublicKey, SecretKey, SignatureStatus,
};

use crate::common::{identity, key, scratch, value};

const ENTRIES: u64 = 5;

/// A pack of `ENTRIES` labelled values (one of them 1.5 MiB, hashed on several threads),
/// signed by `signer`.
pub(super) fn signed_pack(path: &Path, signer: &SecretKey) -> Pack {
    let pack = Pack::create(path, &identity()).unwrap();
    let mut batch = pack.batch();
    for n in 0..ENTRIES {
        let len = if n == 2 {
            3 << 19
        } else {
            1000 + n as usize * 77
        };
        batch
            .insert_with_label(&key(n), &value(n, len), &format!("m{n}.wasm"))
            .unwrap();
    }
    batch.commit().unwrap();
    pack.sign(signer).unwrap();
    pack
}

/// The length of entry `n`'s value in [`signed_pack`].
pub(super) fn len_of(n: u64) -> usize {
    if n == 2 {
        3 << 19
    } else {
        1000 + n as usize * 77
    }
}

pub(super) fn trusting(path: &Path, keys: &[PublicKey]) -> Pack {
    PackOptions::new()
        .trusted_keys(keys.iter().copied())
        .open(path, &identity())
        .unwrap()
}

/// The error a trusting reader gets for `n`, which must be `Untrusted` and name the entry.
pub(super) fn refused(pack: &Pack, n: u64) -> String {
    let err = pack.get(&key(n)).expect_err("the entry is refused");
    assert_eq!(err.kind(), ErrorKind::Untrusted, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&key(n).to_string()) && text.contains("test.wpk"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    text
}

fn crc_word(bytes: &[u8]) -> [u8; 4] {
    crc32fast::hash(bytes).to_le_bytes()
}

/// What a forger does: changes one byte of `n`'s value in place and fixes up every checksum
/// that covers it (record header, index entry, index block), so that the CRCs all match.
pub(super) fn forge(path: &Path, n: u64, at: usize) {
    let bytes = forged(path, n, at);
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&bytes[DATA_START as usize..], DATA_START)
        .unwrap();
}

/// The bytes of the pack at `path` as [`forge`] leaves them, computed without writing.
pub(super) fn forged(path: &Path, n: u64, at: usize) -> Vec<u8> {
    let pack = PackOptions::new()
        .allow_shared_write(true)
        .open(path, &identity())
        .unwrap();
    let entry = pack.iter().unwrap().find(|e| *e.key() == key(n)).unwrap();
    drop(pack);
    let mut bytes = std::fs::read(path).unwrap();
    let payload_at = entry.offset() as usize;
    bytes[payload_at + at] ^= 0x5a;
    let new_crc = crc_word(&bytes[payload_at..payload_at + entry.size() as usize]);
    // The record header: payload CRC, then its own CRC over the header and label.
    let record_at = payload_at - HEADER_LEN as usize - entry.label().len().div_ceil(64) * 64;
    bytes[record_at + 48..record_at + 52].copy_from_slice(&new_crc);
    let label_end = record_at + 64 + entry.label().len();
    let mut covered = bytes[record_at..record_at + 60].to_vec();
    covered.extend_from_slice(&bytes[record_at + 64..label_end]);
    bytes[record_at + 60..record_at + 64].copy_from_slice(&crc_word(&covered));
    // Every index entry pointing at the record, and the blocks holding them.
    let mut at = DATA_START as usize;
    let committed = raw::live(path).committed_len as usize;
    let mut blocks_to_fix = Vec::new();
    while at + 64 <= committed {
        if let Ok((header, _)) = RecordHeader::decode(&bytes[at..]) {
            if header.kind == RecordKind::IndexBlock {
                let payload = at + 64;
                let count = header.payload_len as usize / 72;
                for i in 0..count {
                    let e = payload + i * ENTRY_LEN;
                    if let Ok(index) = IndexEntry::decode(&bytes[e..e + ENTRY_LEN])
                        && index.record_offset == record_at as u64
                    {
                        bytes[e + 48..e + 52].copy_from_slice(&new_crc);
                        let c = crc_word(&bytes[e..e + 60]);
                        bytes[e + 60..e + 64].copy_from_slice(&c);
                        blocks_to_fix.push(at);
                    }
                }
            }
            at += header.record_len().unwrap() as usize;
        } else {
            at += 64;
        }
    }
    assert!(!blocks_to_fix.is_empty(), "the index entry was found");
    for block in blocks_to_fix {
        let (header, _) = RecordHeader::decode(&bytes[block..]).unwrap();
        let payload = &bytes[block + 64..block + 64 + header.payload_len as usize];
        let fixed = RecordHeader::for_payload(RecordKind::IndexBlock, [0; 32], 0, payload);
        let head = fixed.encode_with_label(b"");
        bytes[block..block + 64].copy_from_slice(&head);
    }
    bytes
}

#[test]
fn a_signed_pack_loads_for_the_trusting_reader() {
    let (_dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    signed_pack(&path, &ci);
    let pack = trusting(&path, &[ci.public_key()]);
    for n in 0..ENTRIES {
        let len = if n == 2 {
            3 << 19
        } else {
            1000 + n as usize * 77
        };
        assert_eq!(pack.get(&key(n)).unwrap().unwrap(), value(n, len));
        // Again: from the verified bit, without hashing.
        assert!(pack.get(&key(n)).unwrap().is_some());
    }
    let report = pack.verify_signatures(&[ci.public_key()]).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems());
    assert_eq!(report.entries(), ENTRIES);
    let signatures = pack.signatures().unwrap();
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0].status(), &SignatureStatus::Trusted);
    assert_eq!(signatures[0].signer_id(), ci.public_key().id());
    assert_eq!(signatures[0].find(&key(1)).unwrap().label, "m1.wasm");
}

#[test]
fn every_forged_entry_is_refused() {
    let (dir, _) = scratch();
    let original = dir.path().join("pristine.wpk");
    let ci = SecretKey::generate().unwrap();
    signed_pack(&original, &ci);
    for n in 0..ENTRIES {
        let len = if n == 2 {
            3 << 19
        } else {
            1000 + n as usize * 77
        };
        for at in [0, len / 2, len - 1] {
            let path = dir.path().join("test.wpk");
            let copy = dir.path().join("forged-from.wpk");
            std::fs::copy(&original, &copy).unwrap();
            std::fs::rename(&copy, &path).unwrap();
            forge(&path, n, at);
            // The forgery is checksum-clean: CRCs alone would hand out the altered bytes.
            let plain = Pack::open(&path, &identity()).unwrap();
            assert!(plain.verify().unwrap().is_ok(), "entry {n} byte {at}");
            assert_ne!(plain.get(&key(n)).unwrap().unwrap(), value(n, len));
            // With the key, the altered bytes never come out.
            let pack = trusting(&path, &[ci.public_key()]);
            let text = refused(&pack, n);
            assert!(text.contains("altered after signing"), "{text}");
            for other in (0..ENTRIES).filter(|&o| o != n) {
                assert!(pack.get(&key(other)).unwrap().is_some());
            }
            let report = pack.verify_signatures(&[ci.public_key()]).unwrap();
            assert_eq!(report.problems().len(), 1, "{:?}", report.problems());
            assert_eq!(report.problems()[0].key(), Some(&key(n)));
        }
    }
    // The original is what it was: copies were forged, not it.
    assert!(original.exists());
}

#[test]
fn entries_added_after_signing_or_replaced_are_refused() {
    let (_dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let writer = signed_pack(&path, &ci);
    writer
        .insert_with_label(&key(100), b"appended", "late.wasm")
        .unwrap();
    // Same key, same length and label, other bytes: a replacement through the API.
    let original = writer.get(&key(0)).unwrap().unwrap();
    let mut replaced = original.to_vec();
    replaced[10] ^= 1;
    writer
        .insert_with_label(&key(0), &replaced, "m0.wasm")
        .unwrap();
    // A relabelled entry.
    let third = writer.get(&key(3)).unwrap().unwrap().to_vec();
    writer
        .insert_with_label(&key(3), &third, "other.wasm")
        .unwrap();

    let pack = trusting(&path, &[ci.public_key()]);
    assert!(refused(&pack, 100).contains("no signature covers it"));
    assert!(refused(&pack, 0).contains("altered after signing"));
    assert!(refused(&pack, 3).contains("length or label differs"));
    assert!(pack.get(&key(1)).unwrap().is_some());
    let report = pack.verify_signatures(&[ci.public_key()]).unwrap();
    let refused_keys: Vec<Key> = report
        .problems()
        .iter()
        .filter_map(|p| p.key().copied())
        .collect();
    assert_eq!(refused_keys.len(), 3, "{:?}", report.problems());

    // Signing again covers them all, and replaces the key's earlier signature.
    writer.sign(&ci).unwrap();
    let pack = trusting(&path, &[ci.public_key()]);
    assert_eq!(
        pack.get(&key(100)).unwrap().as_deref(),
        Some(&b"appended"[..])
    );
    assert_eq!(pack.signatures().unwrap().len(), 1);
}

#[test]
fn other_keys_and_unsigned_packs_are_refused() {
    let (_dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let stranger = SecretKey::generate().unwrap();
    signed_pack(&path, &stranger);
    let pack = trusting(&path, &[ci.public_key()]);
    let text = refused(&pack, 1);
    assert!(
        text.contains("signed only by keys not trusted here")
            && text.contains(&stranger.public_key().id()),
        "{text}"
    );
    // A second signature, by the trusted key, is added beside the stranger's.
    Pack::open(&path, &identity()).unwrap().sign(&ci).unwrap();
    let pack = trusting(&path, &[ci.public_key()]);
    assert!(pack.get(&key(1)).unwrap().is_some());
    let signers: Vec<String> = pack
        .signatures()
        .unwrap()
        .iter()
        .map(|s| s.signer_id())
        .collect();
    assert_eq!(signers, [ci.public_key().id(), stranger.public_key().id()]);

    let (_dir, unsigned) = scratch();
    let plain = Pack::create(&unsigned, &identity()).unwrap();
    plain.insert(&key(1), b"v").unwrap();
    let pack = trusting(&unsigned, &[ci.public_key()]);
    assert!(refused(&pack, 1).contains("not signed"));
    // Without keys nothing changes.
    assert!(plain.get(&key(1)).unwrap().is_some());
}

/// The signature record at the head of the pack's chain, as raw payload bytes.
fn head_signature_payload(path: &Path) -> Vec<u8> {
    let offset = raw::live(path).signature_offset;
    let bytes = std::fs::read(path).unwrap();
    let (header, _) = RecordHeader::decode(&bytes[offset as usize..]).unwrap();
    let start = offset as usize + HEADER_LEN as usize;
    bytes[start..start + header.payload_len as usize].to_vec()
}

/// Appends a signature record with `payload` and commits it as the head of the chain, as an
/// attacker with write access can.
fn graft_signature(path: &Path, payload: &[u8]) {
    let live = raw::live(path);
    let record = raw::record(RecordKind::Signature, [0; 32], b"", payload);
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&record, live.committed_len).unwrap();
    raw::write_slots(
        path,
        &CommitSlot {
            generation: live.generation + 1,
            committed_len: live.committed_len + record.len() as u64,
            signature_offset: live.committed_len,
            ..live
        },
    );
}

#[test]
fn signatures_replayed_across_generations_are_refused() {
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let writer = signed_pack(&path, &ci);
    let old_copy = dir.path().join("old.wpk");
    std::fs::copy(&path, &old_copy).unwrap();
    let old_signature = head_signature_payload(&path);
    writer
        .insert_with_label(&key(50), b"new module", "new.wasm")
        .unwrap();
    writer.sign(&ci).unwrap();
    let new_signature = head_signature_payload(&path);

    // The older signature replayed onto the newer pack: what it signed still loads, the entry
    // signed since does not.
    graft_signature(&path, &old_signature);
    let pack = trusting(&path, &[ci.public_key()]);
    assert!(pack.get(&key(1)).unwrap().is_some());
    assert!(refused(&pack, 50).contains("no signature covers it"));

    // The newer signature replayed onto the older pack: refused outright.
    let old_path = dir.path().join("test.wpk");
    std::fs::rename(&old_copy, &old_path).unwrap();
    graft_signature(&old_path, &new_signature);
    let pack = trusting(&old_path, &[ci.public_key()]);
    let text = refused(&pack, 1);
    assert!(text.contains("newer than this commit"), "{text}");
}

#[test]
fn truncated_and_swapped_signature_records_are_refused() {
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    signed_pack(&path, &ci);
    let good = head_signature_payload(&path);
    let pristine = dir.path().join("pristine.wpk");
    std::fs::copy(&path, &pristine).unwrap();
    let fresh = |name: &str| {
        let p = dir.path().join(name).with_file_name("test.wpk");
        std::fs::copy(&pristine, &p).unwrap();
        p
    };

    // Truncated: the manifest cut short (checksums recomputed by the grafting).
    let path = fresh("a");
    graft_signature(&path, &good[..good.len() - MANIFEST_ENTRY_LEN]);
    let text = refused(&trusting(&path, &[ci.public_key()]), 0);
    assert!(text.contains("signature chain is damaged"), "{text}");

    // The slot pointing into the middle of a record, and at a value record.
    for target in [raw::live(&pristine).signature_offset + 64, DATA_START] {
        let path = fresh("b");
        let live = raw::live(&path);
        raw::write_slots(
            &path,
            &CommitSlot {
                generation: live.generation + 1,
                signature_offset: target,
                ..live
            },
        );
        let text = refused(&trusting(&path, &[ci.public_key()]), 0);
        assert!(text.contains("damaged"), "{text}");
    }

    // Two manifest entries swapped: out of order, and not what was hashed.
    let path = fresh("c");
    let mut swapped = good.clone();
    let (a, b) = (FIXED_LEN, FIXED_LEN + MANIFEST_ENTRY_LEN);
    let first = swapped[a..b].to_vec();
    swapped.copy_within(b..b + MANIFEST_ENTRY_LEN, a);
    swapped[b..b + MANIFEST_ENTRY_LEN].copy_from_slice(&first);
    graft_signature(&path, &swapped);
    let text = refused(&trusting(&path, &[ci.public_key()]), 0);
    assert!(text.contains("manifest was altered"), "{text}");

    // A forged manifest hash: the signature no longer verifies.
    let path = fresh("d");
    let mut rehashed = swapped.clone();
    let hash = blake3::hash(&rehashed[FIXED_LEN..]);
    rehashed[136..168].copy_from_slice(hash.as_bytes());
    graft_signature(&path, &rehashed);
    let text = refused(&trusting(&path, &[ci.public_key()]), 0);
    assert!(text.contains("does not verify"), "{text}");

    // A genuine signature by the trusted key, but of another pack (another identity).
    let other_identity = PackIdentity::new().with("engine", "other");
    let other_path = dir.path().join("other.wpk");
    let other = Pack::create(&other_path, &other_identity).unwrap();
    let mut batch = other.batch();
    for n in 0..ENTRIES {
        let len = if n == 2 {
            3 << 19
        } else {
            1000 + n as usize * 77
        };
        batch
            .insert_with_label(&key(n), &value(n, len), &format!("m{n}.wasm"))
            .unwrap();
    }
    batch.commit().unwrap();
    other.sign(&ci).unwrap();
    let path = fresh("e");
    graft_signature(&path, &head_signature_payload(&other_path));
    let text = refused(&trusting(&path, &[ci.public_key()]), 0);
    assert!(text.contains("signed for another pack"), "{text}");
}

#[test]
fn compaction_keeps_signatures_and_sealed_packs_refuse_writers() {
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let writer = signed_pack(&path, &ci);
    writer.remove(&key(4)).unwrap();
    writer.insert(&key(77), b"unsigned").unwrap();
    writer.compact().unwrap();
    let pack = trusting(&path, &[ci.public_key()]);
    for n in 0..4 {
        assert!(pack.get(&key(n)).unwrap().is_some(), "{n}");
    }
    assert!(refused(&pack, 77).contains("no signature covers it"));
    assert_eq!(pack.get(&key(4)).unwrap(), None);

    // Install: refused while an entry is unsigned, then sealed once all are.
    let target = dir.path().join("installed");
    std::fs::create_dir(&target).unwrap();
    let err = pack.install_into(&target).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Untrusted, "{err}");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "no leftovers"
    );
    writer.sign(&ci).unwrap();
    let installed = trusting(&path, &[ci.public_key()])
        .install_into(&target)
        .unwrap();
    assert!(installed.is_sealed().unwrap());
    let err = installed.insert(&key(9), b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert!(err.to_string().contains("sealed"), "{err}");
    assert_eq!(installed.compact().unwrap_err().kind(), ErrorKind::ReadOnly);
    assert_eq!(installed.sign(&ci).unwrap_err().kind(), ErrorKind::ReadOnly);
    let report = installed.verify_signatures(&[ci.public_key()]).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems());
}

/// The live commit slot of the pack at `path`, as a reader picks it.
fn live_commit(path: &Path) -> CommitSlot {
    use wasmpak::format::superblock::{SLOT_LEN, SLOT_OFFSETS, live_slot};
    let bytes = std::fs::read(path).unwrap();
    let slot = |i: usize| &bytes[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
    live_slot([slot(0), slot(1)], bytes.len() as u64).unwrap().1
}

#[test]
fn a_torn_chain_of_an_unsynced_commit_gives_way_to_the_commit_before_it() {
    use wasmpak::Durability;
    use wasmpak::format::superblock::Publication;
    let (_dir, path) = scratch();
    let signer = SecretKey::generate().unwrap();
    drop(signed_pack(&path, &signer));
    let synced = live_commit(&path);
    let unsynced = PackOptions::new()
        .durability(Durability::None)
        .open(&path, &identity())
        .unwrap();
    // The first unsynced commit syncs before its slot: all of it is durable.
    unsynced.insert(&key(10), b"late").unwrap();
    let before = live_commit(&path);
    // The second writes its signature chain past what was durable.
    unsynced.sign(&signer).unwrap();
    let after = live_commit(&path);
    drop(unsynced);
    assert_eq!(after.generation, before.generation + 1);
    assert!(
        matches!(after.publication, Publication::Unsynced { durable_len } if durable_len <= after.signature_offset),
        "{after:?}"
    );
    // Power loss: the new chain head's payload never reached the disk.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0u8; 64], after.signature_offset + HEADER_LEN)
        .unwrap();
    drop(file);

    // The second unsynced commit rewrote the first one's slot in place, beside the durable
    // one. The pack opens at that durable commit, whose chain is intact: the entries signed
    // then are trusted (without the check it opened at the torn commit, and every entry was
    // refused for its damaged chain).
    let pack = trusting(&path, &[signer.public_key()]);
    assert_eq!(pack.stats().unwrap().generation, synced.generation);
    for n in [0, 1] {
        assert_eq!(
            pack.get(&key(n)).unwrap().as_deref(),
            Some(&value(n, 1000 + n as usize * 77)[..])
        );
    }
    assert_eq!(pack.get(&key(10)).unwrap(), None);
}

/// Found in review: signatures carried no release, and the generation §15 advised pinning is
/// a per-file counter every fresh build starts again; nothing could refuse an older genuine
/// pack. A signature names a release; a reader can require a minimum.
#[test]
fn a_minimum_release_refuses_what_older_signatures_vouch_for() {
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let writer = signed_pack(&path, &ci);
    let keys = [ci.public_key()];
    let at_least = |release: u64| {
        PackOptions::new()
            .trusted_keys(keys)
            .min_release(release)
            .open(&path, &identity())
            .unwrap()
    };
    // Signed without a release: older than any.
    assert_eq!(writer.signed_release(&keys).unwrap(), Some(0));
    assert!(at_least(0).get(&key(1)).unwrap().is_some());
    let text = refused(&at_least(1), 1);
    assert!(text.contains("names no release"), "{text}");

    let signature = writer.sign_release(&ci, 7).unwrap();
    assert_eq!(signature.release(), Some(7));
    assert_eq!(writer.signed_release(&keys).unwrap(), Some(7));
    assert!(at_least(7).get(&key(1)).unwrap().is_some());
    assert!(at_least(7).contains(&key(1)).unwrap());
    let text = refused(&at_least(8), 1);
    assert!(
        text.contains("is for release 7, older than the minimum release 8"),
        "{text}"
    );
    assert!(!at_least(8).contains(&key(1)).unwrap());
    assert_eq!(at_least(8).signatures().unwrap()[0].release(), Some(7));
    // The release is signed: changing it in the record breaks the signature.
    let mut payload = head_signature_payload(&path);
    payload[FIXED_LEN] = 9;
    let copy = dir.path().join("copy").join("test.wpk");
    std::fs::create_dir(copy.parent().unwrap()).unwrap();
    std::fs::copy(&path, &copy).unwrap();
    graft_signature(&copy, &payload);
    let pack = PackOptions::new()
        .trusted_keys(keys)
        .open(&copy, &identity())
        .unwrap();
    assert!(refused(&pack, 1).contains("does not verify"));

    // Another key signs release 8; an entry added since is vouched for at release 7 only:
    // the pack as a whole is at the oldest release any entry is vouched for at.
    let other = SecretKey::generate().unwrap();
    writer.sign_release(&other, 8).unwrap();
    writer.insert(&key(20), b"new").unwrap();
    writer.sign_release(&ci, 7).unwrap();
    let both = [ci.public_key(), other.public_key()];
    assert_eq!(writer.signed_release(&both).unwrap(), Some(7));
    let others = [other.public_key()];
    assert_eq!(
        writer.signed_release(&others).unwrap(),
        None,
        "key 20 unlisted"
    );

    // Release 0 is no release; a minimum release needs keys; Verify::Never is refused with
    // keys, whose check is the hash.
    let err = writer.sign_release(&ci, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = PackOptions::new()
        .min_release(1)
        .open(&path, &identity())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("needs trusted keys"), "{err}");
}

/// Found in review: `Verify::Never` with trusted keys silently dropped the hash, the one
/// check that stops a forged value.
#[test]
fn verify_never_with_trusted_keys_is_refused() {
    let (_dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    signed_pack(&path, &ci);
    let never = PackOptions::new()
        .verify(wasmpak::Verify::Never)
        .trusted_keys([ci.public_key()]);
    let err = never.open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Verify::Never") && text.contains("test.wpk") && !text.contains('\n'),
        "{text}"
    );
    let bytes = std::fs::read(&path).unwrap();
    let err = never
        .open_bytes(wasmpak::aligned_bytes(&bytes), &identity())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Without keys it is the caller's choice, as documented.
    PackOptions::new()
        .verify(wasmpak::Verify::Never)
        .open(&path, &identity())
        .unwrap();
}

/// Found in review: `contains` said yes for entries trusted keys refuse on load.
#[test]
fn contains_agrees_with_trusted_keys() {
    let (_dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    let writer = signed_pack(&path, &ci);
    writer.insert(&key(100), b"appended").unwrap();
    let third = writer.get(&key(3)).unwrap().unwrap().to_vec();
    writer
        .insert_with_label(&key(3), &third, "relabelled.wasm")
        .unwrap();
    let pack = trusting(&path, &[ci.public_key()]);
    for n in [100, 3] {
        assert!(!pack.contains(&key(n)).unwrap(), "{n}");
        refused(&pack, n);
    }
    assert!(pack.contains(&key(1)).unwrap());
    assert!(!pack.contains(&key(999)).unwrap());
    // Without keys, every entry with a value is there.
    assert!(writer.contains(&key(100)).unwrap());
    assert!(writer.contains(&key(3)).unwrap());
}

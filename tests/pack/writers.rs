//! Who may write a pack (docs/FORMAT.md, section 15): a file or path others could write is
//! refused, strictly so with trusted keys; a pack others may write (allowed on purpose) is
//! read through private copies, so that a writer in another process cannot change a signed
//! value between its check and its use.

use std::os::unix::fs::FileExt;
use std::path::Path;

use wasmpak::format::record::{HEADER_LEN, RecordHeader};
use wasmpak::format::signature::{FIXED_LEN, MANIFEST_ENTRY_LEN};
use wasmpak::format::superblock::DATA_START;
use wasmpak::{ErrorKind, Pack, PackOptions, SecretKey};

use super::signatures::{forged, len_of, signed_pack};
use crate::common::{
    NOBODY, env_path, identity, is_root, key, missing, nobody_can_run, played, raw,
    run_unprivileged, scratch, set_mode, value,
};

/// Found in review: only world-writable packs were refused, so a pack its group could write
/// (as `pull` created them under umask 002) was opened, and anyone in the group could place
/// code in it. The group-write bit is refused too, for every open, unless allowed.
#[test]
fn group_writable_packs_are_refused_unless_shared_write_is_allowed() {
    let (_dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    set_mode(&path, 0o664);
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("writable by its group") && text.contains("664") && text.contains("test.wpk"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    let allowed = PackOptions::new()
        .allow_shared_write(true)
        .open(&path, &identity())
        .unwrap();
    assert_eq!(allowed.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
}

/// Found in review: the directory check looked at the path as written, one level up; a
/// symlink into a directory others can write, or a writable directory higher up, passed.
/// Every directory of the resolved path is checked; with trusted keys, as ssh's StrictModes
/// checks key files: writable by its owner alone (unless sticky), owned by this user or root.
#[test]
fn every_directory_on_the_resolved_path_is_checked() {
    let (dir, _) = scratch();
    let ci = SecretKey::generate().unwrap();
    let keyed = || PackOptions::new().trusted_keys([ci.public_key()]);
    let shared = dir.path().join("shared");
    let deep = shared.join("a").join("b");
    std::fs::create_dir_all(&deep).unwrap();
    let path = deep.join("test.wpk");
    signed_pack(&path, &ci);
    keyed().open(&path, &identity()).unwrap();

    // A group-writable directory two levels up: refused with keys, accepted without.
    set_mode(&shared, 0o775);
    let err = keyed().open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    assert!(
        err.to_string().contains("shared") && err.to_string().contains("its group"),
        "{err}"
    );
    Pack::open(&path, &identity()).unwrap();
    // Reached through a symlink from a private directory: the target's path counts.
    let link = dir.path().join("link.wpk");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = keyed().open(&link, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    // Writable by every user: refused without keys too, however high up.
    set_mode(&shared, 0o777);
    let err = Pack::open(&link, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    assert!(err.to_string().contains("every user"), "{err}");
    // Sticky, as /tmp: nobody may replace what they do not own.
    set_mode(&shared, 0o1777);
    keyed().open(&link, &identity()).unwrap();
    set_mode(&shared, 0o755);
    keyed().open(&link, &identity()).unwrap();

    // A directory owned by another user, who could make it writable at will.
    if is_root() {
        std::os::unix::fs::chown(deep.parent().unwrap(), Some(NOBODY), None).unwrap();
        let err = keyed().open(&path, &identity()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
        assert!(err.to_string().contains("owned by user 65534"), "{err}");
        Pack::open(&path, &identity()).unwrap();
        std::os::unix::fs::chown(deep.parent().unwrap(), Some(0), None).unwrap();
    }
    // Allowed on purpose: opened whatever the path.
    set_mode(&shared, 0o777);
    keyed()
        .allow_shared_write(true)
        .open(&path, &identity())
        .unwrap();
    set_mode(&shared, 0o755);
}

/// The bytes of a pack after a writer replaced `n`'s value (one byte at `at`, every CRC fixed
/// up) and the hash its head signature's manifest lists for it (so that a reader re-reading
/// the manifest from the file would take the new value for the signed one).
fn forged_value_and_manifest(path: &Path, n: u64, at: usize) -> Vec<u8> {
    let mut bytes = forged(path, n, at);
    let pack = PackOptions::new()
        .allow_shared_write(true)
        .open(path, &identity())
        .unwrap();
    let entry = pack.iter().unwrap().find(|e| *e.key() == key(n)).unwrap();
    let value_at = entry.offset() as usize;
    let hash = blake3::hash(&bytes[value_at..value_at + entry.size() as usize]);
    let head = raw::live(path).signature_offset as usize;
    let (header, _) = RecordHeader::decode(&bytes[head..]).unwrap();
    let manifest = head + HEADER_LEN as usize + FIXED_LEN;
    let count = (header.payload_len as usize - FIXED_LEN) / MANIFEST_ENTRY_LEN;
    let listed = (0..count)
        .map(|i| manifest + i * MANIFEST_ENTRY_LEN)
        .find(|&at| bytes[at..at + 32] == key(n).as_bytes()[..])
        .expect("the manifest lists the entry");
    bytes[listed + 32..listed + 64].copy_from_slice(hash.as_bytes());
    bytes
}

/// Found in review: with trusted keys, `get` hashed a value inside the shared mapping, then
/// handed wasmer a slice of that same mapping, and `Verify::Once` skipped the hash from then
/// on; the manifest was read from the mapping on every lookup. A user allowed to write the
/// pack could swap a signed value (and its manifest hash) after the check. With
/// `allow_shared_write`, every get now hashes a private copy and hands out that copy, against
/// manifests copied when the chain was judged.
#[test]
fn a_shared_writer_cannot_change_a_signed_value_after_its_check() {
    if played(&[("rewrite", rewrite)]) {
        return;
    }
    if !is_root() {
        return missing(
            "nobody",
            "the test runs as root, to give the pack to the group of user 65534",
        );
    }
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    signed_pack(&path, &ci);
    set_mode(dir.path(), 0o755);
    std::os::unix::fs::chown(&path, Some(0), Some(NOBODY)).unwrap();
    set_mode(&path, 0o664);
    let trusting = PackOptions::new().trusted_keys([ci.public_key()]);

    // Writable by its group: refused with trusted keys, unless shared writing is allowed.
    let err = trusting.clone().open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    let shared = trusting
        .allow_shared_write(true)
        .open(&path, &identity())
        .unwrap();
    let n = 1;
    let original = value(n, len_of(n));
    assert_eq!(shared.get(&key(n)).unwrap().unwrap(), original);

    // A member of the group rewrites the value and its manifest hash, CRCs fixed up.
    let forged = forged_value_and_manifest(&path, n, 10);
    let forged_file = path.with_file_name(FORGED);
    std::fs::write(&forged_file, &forged).unwrap();
    set_mode(&forged_file, 0o644);
    run_unprivileged("rewrite", &path);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        forged,
        "the child rewrote it"
    );

    // The first process never hands out the new bytes.
    for _ in 0..3 {
        match shared.get(&key(n)) {
            Ok(Some(bytes)) => assert!(bytes == original, "the rewritten value came out"),
            Ok(None) => panic!("the entry vanished"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Untrusted, "{e}");
                assert!(e.to_string().contains("altered after signing"), "{e}");
            }
        }
    }
    for other in [0, 3] {
        assert_eq!(
            shared.get(&key(other)).unwrap().unwrap(),
            value(other, len_of(other))
        );
    }
}

/// Where the parent leaves the forged bytes for the child, beside the pack.
const FORGED: &str = "forged.bin";

/// The child: as a member of the pack's group, writes the forged bytes over the data area.
fn rewrite() {
    let path = env_path("WASMPAK_TEST_PACK");
    let forged = std::fs::read(path.with_file_name(FORGED)).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&forged[DATA_START as usize..], DATA_START)
        .unwrap();
}

//! Installed packs on the fast path (`trust_installed`): the seal records what the install
//! verified and the file it sealed, so that a copy is not taken for the installed file and a
//! reader trusting other keys than the install's hashes the values again.

use std::path::{Path, PathBuf};

use wasmpak::{ErrorKind, Pack, PackOptions, PublicKey, SecretKey};

use super::signatures::{forge, len_of, signed_pack};
use crate::common::{identity, key, scratch, set_mode, value};

/// Installs the pack at `path` into `dir/into`, verified with `keys`.
fn install(path: &Path, keys: &[PublicKey], into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    PackOptions::new()
        .trusted_keys(keys.iter().copied())
        .open(path, &identity())
        .unwrap()
        .install_into(into)
        .unwrap()
        .path()
        .to_path_buf()
}

/// The fast path's options: no hashing of installed values, trusting `keys` (if any).
fn fast(keys: &[PublicKey]) -> PackOptions {
    // SAFETY: the tests below change installed files only to show which reads skip hashing;
    // no module is loaded from them.
    unsafe {
        PackOptions::new()
            .trusted_keys(keys.iter().copied())
            .trust_installed()
    }
}

/// Changes entry `n` of the read-only file at `path` in place (same inode, CRCs fixed up).
fn forge_installed(path: &Path, n: u64) {
    set_mode(path, 0o644);
    forge(path, n, 5);
    set_mode(path, 0o444);
}

fn not_sealed(options: &PackOptions, path: &Path) -> String {
    let err = options.open(path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSealed, "{err}");
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    text
}

/// Found in review: the seal was one header bit that travelled with the bytes, so a sealed
/// pack copied anywhere (by `cp`, an image layer, `tar` run as root) was loaded without
/// hashing. The seal names the installed file's inode and file system: a copy is not sealed.
#[test]
fn a_copied_installed_pack_is_not_sealed() {
    let (dir, path) = scratch();
    let ci = SecretKey::generate().unwrap();
    signed_pack(&path, &ci);
    let installed = install(&path, &[ci.public_key()], &dir.path().join("node"));
    let pack = fast(&[]).open(&installed, &identity()).unwrap();
    assert_eq!(pack.get(&key(1)).unwrap().unwrap(), value(1, len_of(1)));
    drop(pack);

    // A copy in another directory: same bytes, same mode, another inode.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let copy = elsewhere.join("test.wpk");
    std::fs::copy(&installed, &copy).unwrap();
    set_mode(&copy, 0o444);
    let text = not_sealed(&fast(&[]), &copy);
    assert!(text.contains("a copy of an installed pack"), "{text}");

    // Extracted over the installed file (by tar, rsync): same path, same bytes, a new inode.
    // (Written beside it and renamed over it, so that the file system cannot hand the new
    // file the number the old one frees.)
    let bytes = std::fs::read(&installed).unwrap();
    let extracted = installed.with_extension("extracted");
    std::fs::write(&extracted, &bytes).unwrap();
    set_mode(&extracted, 0o444);
    std::fs::rename(&extracted, &installed).unwrap();
    let text = not_sealed(&fast(&[]), &installed);
    assert!(text.contains("a copy of an installed pack"), "{text}");
    // Extracted in place: the old name removed, then the file created, which may get the
    // inode number just freed; its birth time tells it apart (where the file system keeps
    // one, as ext4, xfs, btrfs and tmpfs do).
    let number = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = number(&installed);
    std::fs::remove_file(&installed).unwrap();
    std::fs::write(&installed, &bytes).unwrap();
    set_mode(&installed, 0o444);
    let has_birth = std::fs::metadata(&installed).unwrap().created().is_ok();
    if has_birth || number(&installed) != before {
        let text = not_sealed(&fast(&[]), &installed);
        assert!(text.contains("a copy of an installed pack"), "{text}");
    }

    // With trusted keys a copy opens, but its values are hashed: a forgery is refused.
    forge_installed(&copy, 3);
    let keyed = fast(&[ci.public_key()]).open(&copy, &identity()).unwrap();
    let err = keyed.get(&key(3)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Untrusted, "{err}");
    assert_eq!(keyed.get(&key(1)).unwrap().unwrap(), value(1, len_of(1)));
}

/// Found in review: the seal did not say whether the install checked signatures or with which
/// keys, so a reader trusting key B skipped hashing a pack an install had verified against
/// key A only (or against checksums only). The seal records the keys; a reader whose trusted
/// keys do not include all of them hashes.
#[test]
fn a_seal_made_with_one_key_does_not_serve_a_reader_trusting_another() {
    let (dir, path) = scratch();
    let (a, b) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    signed_pack(&path, &a);
    Pack::open(&path, &identity()).unwrap().sign(&b).unwrap();
    let by_a = install(&path, &[a.public_key()], &dir.path().join("a"));
    let checksums_only = install(&path, &[], &dir.path().join("none"));
    // Both changed in place after the install (the fast path's contract broken on purpose,
    // to see which readers still hash).
    forge_installed(&by_a, 3);
    forge_installed(&checksums_only, 3);

    // A reader trusting only B: the install never checked B's signatures, so it hashes.
    let reader_b = fast(&[b.public_key()]).open(&by_a, &identity()).unwrap();
    let err = reader_b.get(&key(3)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Untrusted, "{err}");
    assert_eq!(reader_b.get(&key(1)).unwrap().unwrap(), value(1, len_of(1)));
    // A reader trusting A (alone, or with B) relies on the install's check: no hash.
    for keys in [vec![a.public_key()], vec![b.public_key(), a.public_key()]] {
        let reader = fast(&keys).open(&by_a, &identity()).unwrap();
        assert_ne!(reader.get(&key(3)).unwrap().unwrap(), value(3, len_of(3)));
    }
    // An install that checked checksums only serves readers without keys, never with.
    let reader_a = fast(&[a.public_key()])
        .open(&checksums_only, &identity())
        .unwrap();
    assert_eq!(
        reader_a.get(&key(3)).unwrap_err().kind(),
        ErrorKind::Untrusted
    );
    let plain = fast(&[]).open(&checksums_only, &identity()).unwrap();
    assert_ne!(plain.get(&key(3)).unwrap().unwrap(), value(3, len_of(3)));
}

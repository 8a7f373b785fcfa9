//! The file under a pack changes behind its back: a read-only directory, the pack replaced by
//! a directory, deleted, replaced by another pack or by garbage while a handle maps it. Reads
//! of what the handle mapped keep working (never a panic or SIGBUS: the old inode stays mapped),
//! and writes either go to the pack now at the path or fail with a clear error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{
    NOBODY, env_path, identity, is_root, key, missing, nobody_can_run, played, run_unprivileged,
    scratch, set_mode, value,
};
use wasmpak::format::superblock::{SLOT_LEN, SLOT_OFFSETS};
use wasmpak::{ErrorKind, Pack};

/// Longer than the pack's rate limit on path checks after a miss (500 ms): a sleep this long
/// after opening a handle guarantees that its next miss looks at the path.
const PAST_PATH_CHECK_INTERVAL: Duration = Duration::from_millis(600);

/// A pack at `path` holding key 1 and key 2.
fn two_entries(path: &Path) -> Pack {
    let pack = Pack::create(path, &identity()).unwrap();
    pack.insert_with_label(&key(1), &value(1, 3000), "one")
        .unwrap();
    pack.insert(&key(2), &value(2, 70_000)).unwrap();
    pack
}

fn assert_reads_old(pack: &Pack, context: &str) {
    assert_eq!(
        pack.get(&key(1)).unwrap().as_deref(),
        Some(&value(1, 3000)[..]),
        "{context}"
    );
    assert_eq!(
        pack.get(&key(2)).unwrap().as_deref(),
        Some(&value(2, 70_000)[..]),
        "{context}"
    );
    assert!(pack.contains(&key(1)).unwrap(), "{context}");
    let report = pack.verify().unwrap();
    assert!(report.is_ok(), "{context}: {:?}", report.problems());
    assert_eq!(report.entries(), 2, "{context}");
}

// ---------------------------------------------------------------------------------------------
// A read-only directory

#[test]
fn read_only_directory_with_a_read_only_pack() {
    if played(&[("read-only", read_only_directory)]) {
        return;
    }
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    let (dir, path) = scratch();
    two_entries(&path);
    set_mode(&path, if is_root() { 0o644 } else { 0o444 });
    set_mode(dir.path(), 0o555);
    let before = std::fs::read(&path).unwrap();
    run_unprivileged("read-only", &path);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the pack is unchanged"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing was left in the directory");
    set_mode(dir.path(), 0o755);
}

fn read_only_directory() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_reads_old(&pack, "read-only directory");
    let err = pack.insert(&key(3), b"three").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(err.to_string().contains("test.wpk"), "{err}");
    let err = pack.remove(&key(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert_reads_old(&pack, "after the refused writes");

    let sibling = path.with_file_name("new.wpk");
    for err in [
        Pack::create(&sibling, &identity()).unwrap_err(),
        Pack::open_or_create(&sibling, &identity()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("new.wpk"), "{err}");
    }
}

#[test]
fn read_only_directory_with_a_writable_pack() {
    if played(&[("writer", writable_pack_in_read_only_directory)]) {
        return;
    }
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    // Writing a pack needs the file, not its directory: only creating one needs the directory.
    let (dir, path) = scratch();
    two_entries(&path);
    if is_root() {
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    set_mode(&path, 0o644);
    set_mode(dir.path(), 0o555);
    run_unprivileged("writer", &path);
    set_mode(dir.path(), 0o755);
    if is_root() {
        // A pack owned by another user is refused unless shared writes are allowed.
        let err = Pack::open(&path, &identity()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    }
    let pack = wasmpak::PackOptions::new()
        .allow_shared_write(true)
        .open(&path, &identity())
        .unwrap();
    assert_eq!(
        pack.get(&key(3)).unwrap().as_deref(),
        Some(&b"written by the child"[..])
    );
}

fn writable_pack_in_read_only_directory() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_reads_old(&pack, "writable pack, read-only directory");
    pack.insert(&key(3), b"written by the child").unwrap();
    let err = Pack::create(path.with_file_name("new.wpk"), &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

// ---------------------------------------------------------------------------------------------
// The path changes under an open handle

#[test]
fn pack_replaced_by_a_directory_while_open() {
    let (_dir, path) = scratch();
    two_entries(&path);
    let pack = Pack::open(&path, &identity()).unwrap();
    let held = pack.get(&key(1)).unwrap().unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();

    assert_reads_old(&pack, "replaced by a directory");
    std::thread::sleep(PAST_PATH_CHECK_INTERVAL);
    // A miss looks at the path, finds a directory, and stays with the mapped file.
    assert_eq!(pack.get(&key(3)).unwrap(), None);
    assert_reads_old(&pack, "after a miss looked at the path");

    let err = pack.insert(&key(3), b"three").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAPack, "{err}");
    assert!(err.to_string().contains("directory"), "{err}");
    assert!(err.to_string().contains("test.wpk"), "{err}");
    assert_reads_old(&pack, "after the failed write");
    assert_eq!(&held[..], &value(1, 3000)[..]);

    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAPack, "{err}");
    assert!(path.is_dir(), "the directory is left alone");
}

#[test]
fn pack_deleted_while_mapped() {
    let (_dir, path) = scratch();
    two_entries(&path);
    let pack = Pack::open(&path, &identity()).unwrap();
    let held = pack.get(&key(2)).unwrap().unwrap();
    std::fs::remove_file(&path).unwrap();

    assert_reads_old(&pack, "deleted");
    std::thread::sleep(PAST_PATH_CHECK_INTERVAL);
    assert_eq!(pack.get(&key(3)).unwrap(), None);
    assert_reads_old(&pack, "after a miss looked at the path");

    let err = pack.insert(&key(3), b"three").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("test.wpk"), "{err}");
    assert!(err.to_string().contains("removed"), "{err}");
    assert!(!path.exists(), "a failed write does not recreate the file");
    assert_eq!(&held[..], &value(2, 70_000)[..]);
    assert_eq!(
        Pack::open(&path, &identity()).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Once a new pack is created at the path, the old handle's next write goes there.
    Pack::create(&path, &identity()).unwrap();
    pack.insert(&key(3), b"three").unwrap();
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.keys().unwrap(), vec![key(3)]);
    assert_eq!(
        pack.get(&key(1)).unwrap(),
        None,
        "the handle moved to the new pack"
    );
    assert_eq!(
        &held[..],
        &value(2, 70_000)[..],
        "old bytes outlive the move"
    );
}

#[test]
fn pack_replaced_by_another_pack_while_mapped() {
    let (dir, path) = scratch();
    two_entries(&path);
    let reader = Pack::open(&path, &identity()).unwrap();
    let writer = Pack::open(&path, &identity()).unwrap();
    let held = reader.get(&key(1)).unwrap().unwrap();
    // A second name for the old file, to see that nothing writes to it any more.
    let old = dir.path().join("old.wpk");
    std::fs::hard_link(&path, &old).unwrap();
    let old_bytes = std::fs::read(&old).unwrap();

    let other = dir.path().join("other.wpk");
    let replacement = Pack::create(&other, &identity()).unwrap();
    replacement.insert(&key(1), b"one, replaced").unwrap();
    replacement.insert(&key(3), b"three").unwrap();
    drop(replacement);
    std::fs::rename(&other, &path).unwrap();

    // A hit never looks at the path: the handle reads the file it mapped, consistently.
    assert_reads_old(&reader, "replaced, before the handle notices");
    assert_eq!(&held[..], &value(1, 3000)[..]);

    // A miss after the rate limit looks at the path and moves to the new file.
    std::thread::sleep(PAST_PATH_CHECK_INTERVAL);
    assert_eq!(reader.get(&key(3)).unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(
        reader.get(&key(1)).unwrap().as_deref(),
        Some(&b"one, replaced"[..])
    );
    assert_eq!(reader.get(&key(2)).unwrap(), None);
    assert_eq!(&held[..], &value(1, 3000)[..], "old bytes stay valid");

    // A write always checks the path: it goes to the new file, never to the old one.
    writer.insert(&key(4), b"four").unwrap();
    assert_eq!(
        writer.get(&key(1)).unwrap().as_deref(),
        Some(&b"one, replaced"[..])
    );
    let fresh = Pack::open(&path, &identity()).unwrap();
    assert_eq!(fresh.len().unwrap(), 3);
    assert_eq!(fresh.get(&key(4)).unwrap().as_deref(), Some(&b"four"[..]));
    assert!(fresh.verify().unwrap().is_ok());
    assert_eq!(
        std::fs::read(&old).unwrap(),
        old_bytes,
        "the replaced file is untouched"
    );
    assert_eq!(reader.get(&key(4)).unwrap().as_deref(), Some(&b"four"[..]));
}

/// Garbage that can replace a pack, and the error kind opening it gives.
fn garbage(real: &[u8]) -> Vec<(&'static str, Vec<u8>, ErrorKind)> {
    let mut no_slots = real.to_vec();
    for at in SLOT_OFFSETS {
        no_slots[at as usize..at as usize + SLOT_LEN].fill(0);
    }
    vec![
        ("empty", Vec::new(), ErrorKind::NotAPack),
        ("random bytes", value(77, 50_000), ErrorKind::NotAPack),
        ("a truncated pack", real[..200].to_vec(), ErrorKind::Corrupt),
        ("a pack without commit slots", no_slots, ErrorKind::Corrupt),
    ]
}

#[test]
fn pack_replaced_by_garbage_while_mapped() {
    struct Case {
        _dir: tempfile::TempDir,
        path: PathBuf,
        pack: Pack,
        held: bytes::Bytes,
        name: &'static str,
        kind: ErrorKind,
    }
    let (_real_dir, real_path) = scratch();
    drop(two_entries(&real_path));
    let real = std::fs::read(&real_path).unwrap();
    let cases: Vec<Case> = garbage(&real)
        .into_iter()
        .map(|(name, bytes, kind)| {
            let (dir, path) = scratch();
            two_entries(&path);
            let pack = Pack::open(&path, &identity()).unwrap();
            let held = pack.get(&key(2)).unwrap().unwrap();
            let temp = dir.path().join("garbage");
            std::fs::write(&temp, &bytes).unwrap();
            std::fs::rename(&temp, &path).unwrap();
            Case {
                _dir: dir,
                path,
                pack,
                held,
                name,
                kind,
            }
        })
        .collect();
    for case in &cases {
        assert_reads_old(&case.pack, case.name);
    }
    std::thread::sleep(PAST_PATH_CHECK_INTERVAL);
    for case in &cases {
        let context = case.name;
        // The miss finds a file it cannot use and stays with the mapped one.
        assert_eq!(case.pack.get(&key(3)).unwrap(), None, "{context}");
        assert_reads_old(&case.pack, context);
        let err = case.pack.insert(&key(3), b"three").unwrap_err();
        assert_eq!(err.kind(), case.kind, "{context}: {err}");
        assert!(err.to_string().contains("test.wpk"), "{context}: {err}");
        assert_reads_old(&case.pack, context);
        assert_eq!(&case.held[..], &value(2, 70_000)[..], "{context}");
        let err = Pack::open(&case.path, &identity()).unwrap_err();
        assert_eq!(err.kind(), case.kind, "{context}: {err}");
    }
}

//! Packs the process may not write or read: clear errors, reads where possible, no damage.

use std::os::unix::fs::PermissionsExt;

use crate::common::{
    assert_passed, child, env_path, identity, is_root, key, missing, nobody_can_run,
    on_read_only_fs, played, run_unprivileged, scratch, set_mode,
};
use wasmpak::{ErrorKind, Pack};

#[test]
fn unreadable_pack_is_a_clear_permission_error() {
    if played(&[("cannot-read", cannot_read)]) {
        return;
    }
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    let (dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&path, 0o600);
    run_unprivileged("cannot-read", &path);
    if !is_root() {
        set_mode(&path, 0o000);
        run_unprivileged("cannot-read", &path);
    }
}

fn cannot_read() {
    let path = env_path("WASMPAK_TEST_PACK");
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().starts_with("failed to open pack"), "{err}");
    assert!(err.to_string().contains("test.wpk"), "{err}");
}

#[test]
fn read_only_pack_reads_and_refuses_writes() {
    if played(&[("read-only", read_only)]) {
        return;
    }
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    let (dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&path, 0o644);
    let before = std::fs::read(&path).unwrap();
    if is_root() {
        run_unprivileged("read-only", &path);
    } else {
        set_mode(&path, 0o444);
        run_unprivileged("read-only", &path);
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the pack is unchanged"
    );
}

fn read_only() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
    let err = pack.insert(&key(2), b"w").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(
        pack.remove(&key(1)).unwrap_err().kind(),
        ErrorKind::ReadOnly
    );
    // Creating a pack in a directory we cannot write fails cleanly too.
    let sibling = path.with_file_name("new.wpk");
    let err = Pack::open_or_create(&sibling, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn read_only_file_system() {
    if played(&[("read-only-fs", read_only_fs)]) {
        return;
    }
    // A private mount namespace with a read-only tmpfs.
    let (_dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    let mount = tempfile::tempdir().unwrap();
    let mut role = child("read-only-fs");
    role.env("WASMPAK_TEST_PACK", mount.path().join("test.wpk"));
    let mut command = match on_read_only_fs(&role, mount.path(), &path, "test.wpk") {
        Ok(command) => command,
        Err(why) => return missing("namespaces", why),
    };
    assert_passed(&command.output().unwrap(), "read-only-fs");
}

#[cfg(target_os = "linux")]
fn read_only_fs() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
    let err = pack.insert(&key(2), b"w").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    let err = Pack::open_or_create(path.with_file_name("new.wpk"), &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
}

/// Found in review: packs were created with mode `0o666 & !umask`, so under umask 0 the
/// creator refused its own pack as writable by every user. They are created `0o644 & !umask`.
#[test]
fn a_pack_created_under_umask_zero_opens() {
    if played(&[("umask-zero", umask_zero)]) {
        return;
    }
    let (_dir, path) = scratch();
    let output = child("umask-zero")
        .env("WASMPAK_TEST_PACK", &path)
        .output()
        .unwrap();
    assert_passed(&output, "umask-zero");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "mode {mode:o}");
    Pack::open(&path, &identity()).unwrap();
}

fn umask_zero() {
    // The umask is per process: this child's alone.
    rustix::process::umask(rustix::fs::Mode::empty());
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::create(&path, &identity()).unwrap();
    pack.insert(&key(1), b"v").unwrap();
    // Compaction writes a new file with the old one's mode.
    pack.compact().unwrap();
    let reopened = Pack::open(&path, &identity()).unwrap();
    assert_eq!(reopened.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
}

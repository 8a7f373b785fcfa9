//! Packs the process may not write or read: clear errors, reads where possible, no damage.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use support::{child, identity, is_root, key, scratch};
use wasmpak::{ErrorKind, Pack};

const NOBODY: u32 = 65534;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `entry` with the pack path, as the unprivileged user if we are root.
fn run_unprivileged(entry: &str, pack: &Path) {
    let mut command = child(entry);
    command.env("WASMPAK_TEST_PACK", pack);
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{entry} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pack_from_env() -> std::path::PathBuf {
    std::env::var_os("WASMPAK_TEST_PACK")
        .expect("set by the parent test")
        .into()
}

#[test]
fn unreadable_pack_is_a_clear_permission_error() {
    let (dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&path, 0o600);
    run_unprivileged("child_cannot_read", &path);
    if !is_root() {
        set_mode(&path, 0o000);
        run_unprivileged("child_cannot_read", &path);
    }
}

#[test]
#[ignore = "entry point for a child process"]
fn child_cannot_read() {
    let path = pack_from_env();
    let err = Pack::open(&path, &identity()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().starts_with("failed to open pack"), "{err}");
    assert!(err.to_string().contains("test.wpk"), "{err}");
}

#[test]
fn read_only_pack_reads_and_refuses_writes() {
    let (dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&path, 0o644);
    let before = std::fs::read(&path).unwrap();
    if is_root() {
        run_unprivileged("child_read_only", &path);
    } else {
        set_mode(&path, 0o444);
        run_unprivileged("child_read_only", &path);
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the pack is unchanged"
    );
}

#[test]
#[ignore = "entry point for a child process"]
fn child_read_only() {
    let path = pack_from_env();
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
    // A private mount namespace with a read-only tmpfs; skipped where namespaces are off.
    let (_dir, path) = scratch();
    Pack::create(&path, &identity())
        .unwrap()
        .insert(&key(1), b"v")
        .unwrap();
    let mount = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = r#"mount -t tmpfs none "$MNT" && cp "$SRC" "$MNT/test.wpk" && mount -o remount,ro "$MNT" && exec "$EXE" child_read_only_fs --exact --ignored --nocapture"#;
    let output = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("MNT", mount.path())
        .env("SRC", &path)
        .env("EXE", &exe)
        .env("WASMPAK_TEST_PACK", mount.path().join("test.wpk"))
        .output();
    let Ok(output) = output else {
        eprintln!("skipped: unshare is not available");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.contains("running 1 test") {
        eprintln!(
            "skipped: cannot mount in a private namespace here: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "entry point for a child process"]
fn child_read_only_fs() {
    let path = pack_from_env();
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
    let (_dir, path) = scratch();
    let output = child("child_umask_zero")
        .env("WASMPAK_TEST_PACK", &path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "mode {mode:o}");
    Pack::open(&path, &identity()).unwrap();
}

#[test]
#[ignore = "entry point for a child process"]
fn child_umask_zero() {
    // The umask is per process: this child's alone.
    rustix::process::umask(rustix::fs::Mode::empty());
    let path = pack_from_env();
    let pack = Pack::create(&path, &identity()).unwrap();
    pack.insert(&key(1), b"v").unwrap();
    // Compaction writes a new file with the old one's mode.
    pack.compact().unwrap();
    let reopened = Pack::open(&path, &identity()).unwrap();
    assert_eq!(reopened.get(&key(1)).unwrap().as_deref(), Some(&b"v"[..]));
}

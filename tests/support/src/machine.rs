//! What a test needs from the machine: tools, private mount namespaces, an unprivileged user.
//! A test whose prerequisite is missing fails, unless `WASMPAK_TEST_SKIP` names it; then the
//! test prints `SKIPPED: <test>: <reason>` and returns, and `.ci/run` counts it.

use std::fmt::Display;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::process::{assert_passed, child};

/// The opt-out: prerequisites to skip the tests of, comma-separated, or `all`.
const SKIP: &str = "WASMPAK_TEST_SKIP";

/// The prerequisites, by the names `WASMPAK_TEST_SKIP` takes (the same list in the tool's
/// tests).
const PREREQUISITES: [&str; 10] = [
    // The openssl command.
    "openssl",
    // unshare(1) from util-linux, and an unprivileged user and mount namespace.
    "namespaces",
    // script(1) from util-linux.
    "script",
    // prlimit(1) from util-linux.
    "prlimit",
    // When the tests run as root: user 65534 (nobody) can run the test binaries and the tool.
    "nobody",
    // An x86_64 host above x86-64-v2 that lacks some CPU feature wasmer knows.
    "cpu",
    // The examples, which `cargo test` builds and `cargo test --test NAME` does not.
    "examples",
    // node and npm, to install and run Azurite (the Azure Blob emulator).
    "node",
    // nginx, the HTTP server with byte ranges (`apt-get install nginx-light`).
    "nginx",
    // On aarch64 and musl: the x86_64 glibc tool that builds the packs loaded there
    // (`WASMPAK_TEST_HOST_TOOL`, set by `.ci/cross`).
    "host-tool",
];

/// The uid the permission tests drop to when run as root (root ignores permissions).
pub const NOBODY: u32 = 65534;

/// The machine lacks `prerequisite` (`why` says how): fails the test unless `WASMPAK_TEST_SKIP`
/// names it, in which case it says so on stderr, past libtest's capture. Call it as
/// `return missing(..)`.
pub fn missing(prerequisite: &str, why: impl Display) {
    assert!(
        PREREQUISITES.contains(&prerequisite),
        "{prerequisite} is no prerequisite"
    );
    let skip = std::env::var(SKIP).unwrap_or_default();
    let names: Vec<&str> = skip
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    for name in &names {
        assert!(
            *name == "all" || PREREQUISITES.contains(name),
            "{SKIP} names {name:?}, which is none of {PREREQUISITES:?} or all"
        );
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if !names.iter().any(|n| *n == prerequisite || *n == "all") {
        panic!(
            "{test} needs {prerequisite}: {why}. Provide it, or set {SKIP}={prerequisite} to \
             skip the test, saying so"
        );
    }
    let line = format!("SKIPPED: {test}: {why}\n");
    std::io::stderr().write_all(line.as_bytes()).unwrap();
}

/// Whether `tool` can be started (whatever it then says to `--version`).
pub fn installed(tool: &str) -> bool {
    let started = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match started {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("starting {tool}: {e}"),
    }
}

/// Whether this process runs as root (which ignores file permissions).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether the permission tests can run their children as [`NOBODY`] when we are root (not if
/// the test binary lives under a directory only root may enter). `Err` says why not.
pub fn nobody_can_run() -> Result<(), String> {
    nobody_can_start(&std::env::current_exe().unwrap(), "--list")
}

/// Whether user [`NOBODY`] can run `program` (with `arg`, which must succeed) when we are
/// root: the tool's tests ask it of the tool. `Err` says why not.
pub fn nobody_can_start(program: &Path, arg: &str) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let output = Command::new(program)
        .arg(arg)
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    let shown = program.display();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "user {NOBODY} cannot run {shown}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Err(format!("user {NOBODY} cannot run {shown}: {e}")),
    }
}

/// Makes `command` run as [`NOBODY`] if we are root. Check [`nobody_can_run`] first.
pub fn unprivileged(command: &mut Command) -> &mut Command {
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// Runs the current test's `role` in a child on `pack` (`WASMPAK_TEST_PACK`), as [`NOBODY`] if
/// we are root. Check [`nobody_can_run`] first.
pub fn run_unprivileged(role: &str, pack: &Path) {
    let mut command = child(role);
    command.env("WASMPAK_TEST_PACK", pack);
    assert_passed(&unprivileged(&mut command).output().unwrap(), role);
}

/// `command` to run in a private user and mount namespace in which `dir` is a read-only tmpfs
/// holding a copy of `file` named `name`. `Err` says why this machine cannot: no unshare(1), or
/// no such namespaces for this user; a probe decides that first, so that a failure of the
/// command itself is never taken for a refusal.
pub fn on_read_only_fs(
    command: &Command,
    dir: &Path,
    file: &Path,
    name: &str,
) -> Result<Command, String> {
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c", r#"mount -t tmpfs none "$1""#, "sh"])
        .arg(dir)
        .output();
    match probe {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("unshare(1), from util-linux, is not installed".into());
        }
        Err(e) => panic!("starting unshare: {e}"),
        Ok(output) if !output.status.success() => {
            return Err(format!(
                "this machine refuses a private user and mount namespace: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    let script = r#"mount -t tmpfs none "$MNT" && cp "$SRC" "$MNT/$NAME" && mount -o remount,ro "$MNT" && exec "$@""#;
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(command.get_program())
        .args(command.get_args())
        .env("MNT", dir)
        .env("SRC", file)
        .env("NAME", name);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    Ok(wrapped)
}

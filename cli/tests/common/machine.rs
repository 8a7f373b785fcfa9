//! What a test needs from the machine: tools, private mount namespaces, an unprivileged user.
//! A test whose prerequisite is missing fails, unless `WASMPAK_TEST_SKIP` names it; then the
//! test prints `SKIPPED: <test>: <reason>` and returns, and `.ci/run` counts it.

use std::fmt::Display;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::BIN;

/// The opt-out: prerequisites to skip the tests of, comma-separated, or `all`.
const SKIP: &str = "WASMPAK_TEST_SKIP";

/// The prerequisites, by the names `WASMPAK_TEST_SKIP` takes (the same list in the library's
/// tests).
const PREREQUISITES: [&str; 8] = [
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

/// Whether user [`NOBODY`] can run the binary when we are root (not if it lives under a
/// directory only root may enter). `Err` says why not.
pub fn nobody_can_run() -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let output = Command::new(BIN)
        .arg("--version")
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "user {NOBODY} cannot run {BIN}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Err(format!("user {NOBODY} cannot run {BIN}: {e}")),
    }
}

/// Makes `command` run as [`NOBODY`] if we are root. Check [`nobody_can_run`] first.
pub fn unprivileged(command: &mut Command) -> &mut Command {
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

//! Child processes. A test that needs one runs itself again: this test binary, `--exact` its own
//! name, with one more filter argument, `wasmpak-test-role=ROLE`, which names no test; the same
//! test function finds that argument and plays the role instead of the test. So no `#[ignore]`d
//! entry points, which libtest would count as skipped tests. The role travels with the test's
//! name in the arguments: a wrapper (`sh -c`, `unshare`, `prlimit`) that passes the name on
//! passes the role too, so that a child can never run the test itself again.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// The argument that tells a child which role to play.
const ROLE: &str = "wasmpak-test-role=";

/// The role this process plays, if it is a child.
fn role() -> Option<String> {
    std::env::args().find_map(|arg| arg.strip_prefix(ROLE).map(str::to_string))
}

/// A command that runs the current test again, in a child process, to play `role` there.
///
/// # Panics
///
/// Off the test's own thread (libtest names that thread after the test), and in a child.
pub fn child(role_name: &str) -> Command {
    assert!(role().is_none(), "a child starts no children");
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|name| *name != "main")
        .expect("child() runs on the test's own thread, which libtest names after the test");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        test,
        &format!("{ROLE}{role_name}"),
        "--exact",
        "--nocapture",
        "--quiet",
        "--test-threads=1",
    ]);
    command
}

/// In a child started by [`child`], runs the function of its role and returns true; in the
/// test itself, returns false.
///
/// # Panics
///
/// If the child's role is none of `roles`.
pub fn played(roles: &[(&str, fn())]) -> bool {
    let Some(role) = role() else {
        return false;
    };
    let (_, play) = roles
        .iter()
        .find(|(name, _)| *name == role)
        .unwrap_or_else(|| panic!("{role} is no role of this test"));
    play();
    true
}

/// Asserts that a child exited successfully having run its one test (a child asked for a test
/// libtest does not know would run none and exit successfully too).
pub fn assert_passed(output: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A path the parent test gave its child in the environment.
pub fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .unwrap_or_else(|| panic!("{name} is set by the parent test"))
        .into()
}

/// A number the parent test gave its child in the environment.
pub fn env_u64(name: &str) -> u64 {
    let text = std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent test"));
    text.parse()
        .unwrap_or_else(|_| panic!("{name} is a number, not {text:?}"))
}

/// A child to kill at a moment of the test's choosing, its stdout read as it goes.
pub struct Victim {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// What it printed so far.
    pub printed: String,
}

impl Victim {
    /// Starts `command` with its stdout and stderr piped.
    pub fn start(command: &mut Command) -> Victim {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Victim {
            child,
            stdout,
            printed: String::new(),
        }
    }

    /// Reads its stdout until `enough` says so of what it printed, or it ends.
    pub fn read_until(&mut self, enough: impl Fn(&str) -> bool) {
        while !enough(&self.printed) {
            if self.stdout.read_line(&mut self.printed).unwrap() == 0 {
                break;
            }
        }
    }

    /// Kills it with SIGKILL, asserts that it died of that (not of its own failure, nor done
    /// before), and returns the complete lines it printed (a kill can cut the last one short).
    pub fn kill(mut self, context: &str) -> String {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        self.stdout.read_to_string(&mut self.printed).unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{context}: the child ended with {status}:\n{}\n{stderr}",
            self.printed
        );
        let end = self.printed.rfind('\n').unwrap_or(0);
        self.printed.truncate(end);
        self.printed
    }
}

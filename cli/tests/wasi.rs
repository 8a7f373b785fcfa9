//! `wasmpak run` with WASI programs: arguments, environment, standard streams, preopened
//! directories and exit codes, as `wasmer run` has them; and every bad input as one error
//! line or the program's own exit code, never a panic, the pack unchanged.

#[cfg(feature = "wasix")]
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::*;

/// A scratch directory with `tool.wat` (the sample WASI tool) and a pack that already holds
/// it, copied from one built once per test process.
fn scratch_with_tool() -> (Scratch, PathBuf) {
    static BUILT: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (built_in, built) = BUILT.get_or_init(|| {
        let s = Scratch::new();
        s.write("tool.wat", wasmpak_samples::WASI_TOOL_WAT.as_bytes());
        let pack = s.path("tool.wpk");
        wasmpak(args(&[&"build", &pack, &s.path("tool.wat")])).ok();
        (s, pack)
    });
    let s = Scratch::new();
    s.write(
        "tool.wat",
        &std::fs::read(built_in.path("tool.wat")).unwrap(),
    );
    let pack = s.path("app.wpk");
    std::fs::copy(built, &pack).unwrap();
    (s, pack)
}

/// Runs with `stdin` piped in.
#[cfg(feature = "wasix")]
fn run_with_stdin(parts: &[&dyn AsRef<OsStr>], stdin: &[u8]) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command(args(parts))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap().into()
}

/// The failure contract of `run`: `code`, stderr holds at most a status line and then exactly
/// one `error:` line, no panic. Returns the error line.
fn run_fails(run: &Run, code: i32) -> String {
    assert_eq!(run.code, Some(code), "wrong exit code:\n{run:#?}");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{run:#?}");
    assert!(
        run.stderr.lines().last().unwrap().starts_with("error: "),
        "{run:#?}"
    );
    assert!(run.stderr.lines().count() <= 2, "{run:#?}");
    assert!(!run.stderr.to_lowercase().contains("panicked"), "{run:#?}");
    errors[0].to_string()
}

fn unchanged(pack: &Path, before: &[u8]) {
    assert_eq!(std::fs::read(pack).unwrap(), before, "the pack changed");
}

#[cfg(feature = "wasix")]
#[test]
fn a_wasi_program_misses_then_hits_with_its_args_and_streams() {
    let s = Scratch::new();
    s.write("tool.wat", wasmpak_samples::WASI_TOOL_WAT.as_bytes());
    let pack = s.path("new.wpk");
    let first = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--",
        &"echo",
        &"hello",
        &"-n",
        &"world",
    ]))
    .ok();
    assert_eq!(first.stdout, "hello -n world\n");
    assert!(first.stderr.starts_with("miss  tool.wat"), "{first:#?}");
    assert!(first.stderr.contains("saved to"), "{first:#?}");

    let second = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--",
        &"echo",
        &"again",
    ]))
    .ok();
    assert_eq!(second.stdout, "again\n");
    assert!(second.stderr.starts_with("hit   tool.wat"), "{second:#?}");
    assert_eq!(second.stderr.lines().count(), 1, "{second:#?}");

    let input = "from stdin\nsecond line\n";
    let cat = run_with_stdin(
        &[&"run", &pack, &s.path("tool.wat"), &"--", &"cat"],
        input.as_bytes(),
    );
    assert_eq!(
        (cat.code, cat.stdout.as_str()),
        (Some(0), input),
        "{cat:#?}"
    );
}

#[cfg(feature = "wasix")]
#[test]
fn env_dir_and_exit_codes_reach_the_program() {
    let (s, pack) = scratch_with_tool();
    let before = std::fs::read(&pack).unwrap();
    let env = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--env",
        &"GREETING=hello there",
        &"--env",
        &"EMPTY=",
        &"--",
        &"printenv",
    ]))
    .ok();
    let mut vars: Vec<&str> = env.stdout.lines().collect();
    vars.sort();
    assert_eq!(vars, ["EMPTY=", "GREETING=hello there"], "{env:#?}");

    let data = s.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "a file on the host\n").unwrap();
    let mapped = format!("{}:/data", data.display());
    let read = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--dir",
        &mapped,
        &"--",
        &"read",
        &"/data/in.txt",
    ]))
    .ok();
    assert_eq!(read.stdout, "a file on the host\n");
    // Without a guest path, the directory appears at its own absolute path.
    let same_path = data.canonicalize().unwrap().join("in.txt");
    let read = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--dir",
        &data,
        &"--",
        &"read",
        &same_path,
    ]))
    .ok();
    assert_eq!(read.stdout, "a file on the host\n");

    // The program's own exit code is the tool's; its stderr is its own.
    let fail = wasmpak(args(&[&"run", &pack, &s.path("tool.wat"), &"--", &"fail"]));
    assert_eq!(fail.code, Some(3), "{fail:#?}");
    assert!(fail.stderr.ends_with("failing on purpose\n"), "{fail:#?}");
    // A file outside every preopened directory: the program says so and exits with ENOENT.
    let missing = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("tool.wat"),
        &"--",
        &"read",
        &"/nowhere/x.txt",
    ]));
    assert_eq!(missing.code, Some(44), "{missing:#?}");
    assert!(
        missing.stderr.contains("cannot open the file"),
        "{missing:#?}"
    );
    assert!(!missing.stderr.contains("error:"), "{missing:#?}");
    unchanged(&pack, &before);
}

#[cfg(feature = "wasix")]
#[test]
fn bad_wasi_runs_are_one_line_and_leave_the_pack_alone() {
    let (s, pack) = scratch_with_tool();
    let before = std::fs::read(&pack).unwrap();
    let tool = s.path("tool.wat");

    // A trap ends the program as wasix (and `wasmer run`) ends it: the trap on stderr, exit
    // code 45 (ENOEXEC).
    let trap = wasmpak(args(&[&"run", &pack, &tool, &"--", &"trap"]));
    assert_eq!(trap.code, Some(45), "{trap:#?}");
    assert!(
        trap.stderr.contains("RuntimeError: unreachable"),
        "{trap:#?}"
    );
    assert!(
        !trap.stderr.to_lowercase().contains("panicked"),
        "{trap:#?}"
    );
    unchanged(&pack, &before);

    let missing_dir = s.path("no-such-dir");
    let line = run_fails(
        &wasmpak(args(&[
            &"run",
            &pack,
            &tool,
            &"--dir",
            &missing_dir,
            &"--",
            &"echo",
        ])),
        1,
    );
    assert!(
        line.contains("no-such-dir") && line.contains("does not exist"),
        "{line}"
    );
    let line = run_fails(
        &wasmpak(args(&[
            &"run",
            &pack,
            &tool,
            &"--env",
            &"NOEQUALS",
            &"--",
            &"echo",
        ])),
        2,
    );
    assert!(line.contains("NAME=VALUE"), "{line}");

    // Not a WASI program: arguments, --env or --dir make no sense; told to use --invoke.
    let answer = s.path("answer.wat");
    for extra in [["--", "x"], ["--env", "A=B"]] {
        let mut parts: Vec<&dyn AsRef<OsStr>> = vec![&"run", &pack, &answer];
        parts.extend(extra.iter().map(|e| e as &dyn AsRef<OsStr>));
        let line = run_fails(&wasmpak(args(&parts)), 2);
        assert!(
            line.contains("not a WASI program") && line.contains("--invoke"),
            "{line}"
        );
    }
    unchanged(&pack, &before);

    // A damaged entry: compiled again, saved again, and the program runs.
    let entry = listing(&pack)["entries"][0].clone();
    flip(&pack, entry["offset"].as_u64().unwrap() + 200);
    let run = wasmpak(args(&[&"run", &pack, &tool, &"--", &"echo", &"fine"])).ok();
    assert_eq!(run.stdout, "fine\n");
    assert!(run.stderr.contains("checksum mismatch"), "{run:#?}");
    wasmpak(args(&[&"verify", &pack])).ok();
}

#[cfg(not(feature = "wasix"))]
#[test]
fn without_wasix_a_wasi_program_says_how_to_get_it() {
    let (s, pack) = scratch_with_tool();
    let before = std::fs::read(&pack).unwrap();
    let run = wasmpak(args(&[&"run", &pack, &s.path("tool.wat"), &"--", &"echo"]));
    let line = run_fails(&run, 2);
    assert!(line.contains("--features wasix"), "{line}");
    unchanged(&pack, &before);
}

//! The `wasmpak` command line on bad input: every case fails with one `error:` line on stderr,
//! the documented exit code, no panic or backtrace (even with `RUST_BACKTRACE=1`), and leaves
//! the pack exactly as it was.

use std::ffi::OsStr;
use std::path::Path;

use crate::common::*;
use wasmpak::{Pack, PackIdentity};

/// Runs `parts` and asserts that it fails with `code` and leaves `pack` byte for byte as it
/// was (or absent, if it was). Returns the error line.
fn fails_unchanged(pack: &Path, code: i32, parts: &[&dyn AsRef<OsStr>]) -> String {
    let before = std::fs::read(pack).ok();
    let run = wasmpak(args(parts));
    let line = run.fails(code).to_string();
    assert_eq!(std::fs::read(pack).ok(), before, "the pack changed: {line}");
    line
}

#[test]
fn missing_files() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let missing = s.path("missing.wasm");
    let line = fails_unchanged(
        &pack,
        1,
        &[&"build", &pack, &s.path("answer.wat"), &missing],
    );
    assert!(
        line.contains("missing.wasm") && line.contains("does not exist"),
        "{line}"
    );
    let line = fails_unchanged(&pack, 1, &[&"run", &pack, &missing]);
    assert!(line.contains("missing.wasm"), "{line}");

    let nothing = s.path("nothing.wpk");
    for command in ["list", "info", "verify", "compact"] {
        let line = fails_unchanged(&nothing, 1, &[&command, &nothing]);
        assert!(
            line.contains("nothing.wpk") && line.contains("No such file"),
            "{command}: {line}"
        );
    }
    fails_unchanged(&nothing, 1, &[&"rm", &nothing, &"answer.wat"]);
    fails_unchanged(
        &nothing,
        1,
        &[&"extract", &nothing, &"answer.wat", &"-o", &s.path("x.bin")],
    );
    fails_unchanged(&nothing, 1, &[&"merge", &s.path("out.wpk"), &nothing]);
    assert!(!s.path("out.wpk").exists());
    // A build whose input is missing creates no pack.
    fails_unchanged(&nothing, 1, &[&"build", &nothing, &missing]);
    // Nor does one whose directory is missing.
    let line = fails_unchanged(
        &nothing,
        1,
        &[&"build", &s.path("no/dir.wpk"), &s.path("answer.wat")],
    );
    assert!(line.contains("does not exist"), "{line}");
}

#[test]
fn files_that_are_not_wasm_or_not_valid() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let text = s.write("notes.wasm", b"hello, I am not a module\n");
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &s.path("answer.wat"), &text]);
    assert!(
        line.contains("notes.wasm") && line.contains("not a WebAssembly module"),
        "{line}"
    );
    let binary = s.write("random.bin", &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]);
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &binary]);
    assert!(line.contains("not a WebAssembly module"), "{line}");
    let empty = s.write("empty.wasm", b"");
    fails_unchanged(&pack, 1, &[&"build", &pack, &empty]);

    // The magic, then garbage.
    let invalid = s.write("invalid.wasm", b"\0asm\x01\0\0\0\x01\x02\x03\x04");
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &invalid]);
    assert!(
        line.contains("invalid.wasm") && line.contains("not valid WebAssembly"),
        "{line}"
    );
    // Well-formed but invalid: a type error.
    let mistyped = s.write("mistyped.wat", b"(module (func (result i32) i64.const 1))");
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &mistyped]);
    assert!(line.contains("mistyped.wat"), "{line}");
    // WAT syntax errors are drawn over several lines by the parser: still one line here.
    let broken = s.write(
        "broken.wat",
        b"(module\n  (func (export \"f\") (result i32)\n    i32.const\n))\n",
    );
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &broken]);
    assert!(
        line.contains("broken.wat") && line.contains("not valid WebAssembly text"),
        "{line}"
    );
    fails_unchanged(&pack, 1, &[&"run", &pack, &broken]);
    fails_unchanged(&pack, 1, &[&"run", &pack, &invalid]);
}

#[test]
fn a_file_that_is_not_a_pack() {
    let s = Scratch::new();
    let not_pack = s.write(
        "notes.wpk",
        b"just some text, long enough to look like something\n",
    );
    let out = s.path("x.bin");
    for parts in [
        vec![&"list" as &dyn AsRef<OsStr>, &not_pack],
        vec![&"info", &not_pack],
        vec![&"verify", &not_pack],
        vec![&"verify", &"--deep", &not_pack],
        vec![&"compact", &not_pack],
        vec![&"rm", &not_pack, &"answer.wat"],
        vec![&"extract", &not_pack, &"answer.wat", &"-o", &out],
        vec![&"build", &not_pack, &s.path("answer.wat")],
        vec![&"run", &not_pack, &s.path("answer.wat")],
        vec![&"merge", &not_pack, &s.pack("app.wpk")],
    ] {
        let line = fails_unchanged(&not_pack, 1, &parts);
        assert!(line.contains("notes.wpk is not a wasmpak pack"), "{line}");
    }
    assert!(!out.exists());
}

#[test]
fn a_truncated_pack() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() - 5000]).unwrap();
    for command in ["list", "info", "compact"] {
        let line = fails_unchanged(&pack, 1, &[&command, &pack]);
        assert!(line.contains("is corrupt"), "{command}: {line}");
    }
    let line = fails_unchanged(&pack, 3, &[&"verify", &pack]);
    assert!(line.contains("is corrupt"), "{line}");
    fails_unchanged(&pack, 1, &[&"build", &pack, &s.path("trap.wat")]);
    fails_unchanged(&pack, 1, &[&"run", &pack, &s.path("answer.wat")]);
    // Shorter than the superblock.
    std::fs::write(&pack, &bytes[..5000]).unwrap();
    fails_unchanged(&pack, 1, &[&"list", &pack]);
    fails_unchanged(&pack, 3, &[&"verify", &pack]);
}

#[test]
fn a_corrupted_pack() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let listing = listing(&pack);
    let entry = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "imports.wat")
        .unwrap()
        .clone();
    let key = entry["key"].as_str().unwrap();
    flip(&pack, entry["value_offset"].as_u64().unwrap() + 64);

    // verify: exit 3, the bad entry named by key (and label) in the report and the error.
    let before = std::fs::read(&pack).unwrap();
    let run = wasmpak(args(&[&"verify", &pack]));
    let line = run.fails(3);
    assert!(line.contains(key) && line.contains("imports.wat"), "{line}");
    let bad: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("bad"))
        .collect();
    assert_eq!(bad.len(), 1, "{}", run.stdout);
    assert!(
        bad[0].contains(key) && bad[0].contains("checksum mismatch"),
        "{}",
        bad[0]
    );
    let deep = wasmpak(args(&[&"verify", &"--deep", &pack]));
    deep.fails(3);
    assert!(
        deep.stdout.contains("2 entries loaded by wasmer"),
        "{}",
        deep.stdout
    );
    assert_eq!(std::fs::read(&pack).unwrap(), before, "verify never writes");

    // extract refuses the damaged value; the others still come out.
    let line = fails_unchanged(
        &pack,
        1,
        &[&"extract", &pack, &"imports.wat", &"-o", &s.path("x.bin")],
    );
    assert!(line.contains("checksum mismatch"), "{line}");
    assert!(!s.path("x.bin").exists());
    wasmpak(args(&[
        &"extract",
        &pack,
        &"answer.wat",
        &"-o",
        &s.path("y.bin"),
    ]))
    .ok();
    // merge refuses to copy it, and writes nothing.
    let out = s.path("out.wpk");
    fails_unchanged(&out, 1, &[&"merge", &out, &pack]);

    // A damaged header: nothing can be trusted.
    let pack = s.pack("header.wpk");
    flip(&pack, 40);
    let line = fails_unchanged(&pack, 1, &[&"list", &pack]);
    assert!(line.contains("header.wpk is corrupt"), "{line}");
    fails_unchanged(&pack, 3, &[&"verify", &pack]);
    fails_unchanged(&pack, 1, &[&"build", &pack, &s.path("trap.wat")]);
}

#[test]
fn a_pack_of_another_identity() {
    let s = Scratch::new();
    let pack = s.path("other.wpk");
    Pack::create(&pack, &PackIdentity::new().with("engine", "other")).unwrap();
    for parts in [
        vec![&"build" as &dyn AsRef<OsStr>, &pack, &s.path("answer.wat")],
        vec![&"run", &pack, &s.path("answer.wat")],
    ] {
        let line = fails_unchanged(&pack, 1, &parts);
        assert!(line.contains("other.wpk"), "{line}");
        assert!(
            line.contains("engine=other") && line.contains("engine=cranelift-opts"),
            "both identities: {line}"
        );
    }
    let line = fails_unchanged(&pack, 1, &[&"merge", &pack, &s.pack("app.wpk")]);
    assert!(
        line.contains("engine=other") && line.contains("engine=cranelift-opts"),
        "{line}"
    );
    let line = fails_unchanged(
        &pack,
        1,
        &[&"merge", &s.path("new.wpk"), &s.pack("app.wpk"), &pack],
    );
    assert!(line.contains("different engine identities"), "{line}");
    assert!(!s.path("new.wpk").exists());
    // Inspecting it is fine, and says it cannot be loaded here.
    wasmpak(args(&[&"list", &pack])).ok();
    let line = wasmpak(args(&[&"verify", &"--deep", &pack]))
        .fails(4)
        .to_string();
    assert!(line.contains("not a wasmer engine identity"), "{line}");
}

/// Runs the binary as an unprivileged user when we are root (root ignores permissions).
fn as_nobody(parts: &[&dyn AsRef<OsStr>]) -> Run {
    unprivileged(&mut command(args(parts)))
        .output()
        .unwrap()
        .into()
}

#[test]
fn permission_denied() {
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    let s = Scratch::new();
    s.open_to_all();
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();

    // A pack we may not read.
    set_mode(&pack, if is_root() { 0o600 } else { 0o000 });
    for command in ["list", "info", "verify"] {
        let run = as_nobody(&[&command, &pack]);
        let line = run.fails(1);
        assert!(
            line.contains("app.wpk") && line.contains("Permission denied"),
            "{command}: {line}"
        );
    }

    // A pack we may read but not write.
    set_mode(&pack, if is_root() { 0o644 } else { 0o444 });
    let fresh = s.write("fresh.wat", numbered_wat(5).as_bytes());
    for parts in [
        vec![&"build" as &dyn AsRef<OsStr>, &pack, &fresh],
        vec![&"rm", &pack, &"answer.wat"],
        vec![&"compact", &pack],
    ] {
        let line = as_nobody(&parts).fails(1).to_string();
        assert!(
            line.contains("app.wpk") && line.contains("read-only"),
            "{line}"
        );
    }
    as_nobody(&[&"list", &pack]).ok();
    // An input we may not read.
    let secret = s.write("secret.wat", numbered_wat(6).as_bytes());
    set_mode(&secret, if is_root() { 0o600 } else { 0o000 });
    let line = as_nobody(&[&"build", &s.path("new.wpk"), &secret])
        .fails(1)
        .to_string();
    assert!(
        line.contains("secret.wat") && line.contains("Permission denied"),
        "{line}"
    );
    // A directory we may not create a pack or a file in.
    let locked = s.path("locked");
    std::fs::create_dir(&locked).unwrap();
    set_mode(&locked, 0o555);
    let line = as_nobody(&[&"build", &locked.join("p.wpk"), &fresh])
        .fails(1)
        .to_string();
    assert!(line.contains("Permission denied"), "{line}");
    let line = as_nobody(&[
        &"extract",
        &pack,
        &"answer.wat",
        &"-o",
        &locked.join("a.bin"),
    ])
    .fails(1)
    .to_string();
    assert!(line.contains("Permission denied"), "{line}");
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
    assert_eq!(std::fs::read(&pack).unwrap(), before);
}

#[test]
fn a_directory_where_a_file_is_expected() {
    let s = Scratch::new();
    let dir = s.path("adir");
    std::fs::create_dir(&dir).unwrap();
    for command in ["list", "info", "verify", "compact"] {
        let line = wasmpak(args(&[&command, &dir])).fails(1).to_string();
        assert!(
            line.contains("adir") && line.contains("directory"),
            "{command}: {line}"
        );
    }
    let line = wasmpak(args(&[&"run", &dir, &s.path("answer.wat")]))
        .fails(1)
        .to_string();
    assert!(line.contains("directory"), "{line}");
    let pack = s.pack("app.wpk");
    let line = fails_unchanged(&pack, 1, &[&"build", &pack, &dir]);
    assert!(line.contains("adir is a directory"), "{line}");
    let line = fails_unchanged(&pack, 1, &[&"extract", &pack, &"answer.wat", &"-o", &dir]);
    assert!(line.contains("directory"), "{line}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // `build` (and `import`) given a directory write the pack named for the engine there.
    wasmpak(args(&[&"build", &dir, &s.path("answer.wat")])).ok();
    let written: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let expected = wasmpak::EngineIdentity::of(&wasmer::Engine::default()).pack_file_name();
    assert_eq!(written, [std::ffi::OsString::from(expected)]);
    let missing = s.path("no-such-dir/");
    let line = wasmpak(args(&[&"build", &missing, &s.path("answer.wat")]))
        .fails(1)
        .to_string();
    assert!(line.contains("does not exist"), "{line}");
}

/// Runs `wasmpak build PACK INPUT` with the file size limit at `limit` bytes (Linux: prlimit
/// comes with util-linux), the way a full disk fails writes (EFBIG; SIGXFSZ ignored as a shell
/// would). `None` if prlimit is missing (and the test told to skip it).
#[cfg(target_os = "linux")]
fn build_with_fsize_limit(limit: u64, pack: &Path, input: &Path) -> Option<Run> {
    if !installed("prlimit") {
        missing(
            "prlimit",
            "prlimit(1), from util-linux, imposes the file size limit",
        );
        return None;
    }
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            r#"trap "" XFSZ; exec prlimit --fsize="$LIMIT" "$BIN" build "$PACK" "$INPUT""#,
        ])
        .env("LIMIT", limit.to_string())
        .env("BIN", BIN)
        .env("PACK", pack)
        .env("INPUT", input)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    Some(output.into())
}

#[cfg(target_os = "linux")]
#[test]
fn disk_full() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();
    let fresh = s.write("fresh.wat", numbered_wat(9).as_bytes());
    // No room to append anything.
    let Some(run) = build_with_fsize_limit(before.len() as u64, &pack, &fresh) else {
        return;
    };
    let line = run.fails(1);
    assert!(
        line.contains("app.wpk") && line.contains("File too large"),
        "{line}"
    );
    assert_eq!(std::fs::read(&pack).unwrap(), before, "byte for byte");
    // Room for part of the artifact.
    let run = build_with_fsize_limit(before.len() as u64 + 3000, &pack, &fresh).unwrap();
    run.fails(1);
    let after = std::fs::read(&pack).unwrap();
    assert_eq!(
        after[..before.len()],
        before[..],
        "committed bytes untouched"
    );
    assert_eq!(
        labels(&pack),
        ["answer.wasm", "answer.wat", "imports.wat"],
        "no commit"
    );
    wasmpak(args(&[&"verify", &"--deep", &pack])).ok();
    // No room for a new pack: none is left behind.
    let new = s.path("new.wpk");
    let run = build_with_fsize_limit(4096, &new, &fresh).unwrap();
    let line = run.fails(1);
    assert!(line.contains("new.wpk"), "{line}");
    assert!(!new.exists());
    let leftovers: Vec<std::path::PathBuf> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("new.wpk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn usage_errors_exit_2() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    for parts in [
        vec![&"frobnicate" as &dyn AsRef<OsStr>],
        vec![&"build", &pack],
        vec![
            &"build",
            &"--compiler",
            &"llvm",
            &pack,
            &s.path("answer.wat"),
        ],
        vec![&"build", &"-j", &"0", &pack, &s.path("answer.wat")],
        vec![&"compact", &"--max-bytes", &"lots", &pack],
        vec![&"rm", &pack],
    ] {
        let before = std::fs::read(&pack).unwrap();
        let run = wasmpak(args(&parts));
        assert_eq!(run.code, Some(2), "{run:#?}");
        assert!(run.stderr.starts_with("error:"), "{run:#?}");
        assert!(!run.stderr.to_lowercase().contains("panicked"), "{run:#?}");
        assert_eq!(std::fs::read(&pack).unwrap(), before);
    }
    // Usage errors found after parsing are one line too.
    for (parts, needle) in [
        (
            vec![
                &"build" as &dyn AsRef<OsStr>,
                &"--target",
                &"not-a-triple",
                &pack,
                &s.path("answer.wat"),
            ],
            "not-a-triple",
        ),
        (
            vec![
                &"build",
                &"--target",
                &"powerpc64-unknown-linux-gnu",
                &pack,
                &s.path("answer.wat"),
            ],
            "powerpc64",
        ),
        (
            vec![
                &"build",
                &"--cpu-features",
                &"avx9000",
                &pack,
                &s.path("answer.wat"),
            ],
            "avx9000",
        ),
        (
            vec![&"run", &pack, &s.path("answer.wat"), &"1", &"2"],
            "--invoke",
        ),
        (
            vec![&"run", &pack, &s.path("answer.wat"), &"--invoke", &"nope"],
            "nope",
        ),
        (
            vec![
                &"run",
                &pack,
                &s.path("answer.wat"),
                &"--invoke",
                &"add",
                &"1",
            ],
            "2 arguments",
        ),
        (
            vec![
                &"run",
                &pack,
                &s.path("answer.wat"),
                &"--invoke",
                &"add",
                &"x",
                &"1",
            ],
            "must be i32",
        ),
    ] {
        let line = fails_unchanged(&pack, 2, &parts);
        assert!(line.contains(needle), "{needle}: {line}");
    }
}

#[test]
fn runtime_failures_are_one_line() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    // `run` puts its status line on stderr before the error.
    let run = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("trap.wat"),
        &"--invoke",
        &"boom",
    ]));
    let status = run.stderr.lines().next().unwrap_or_default().to_string();
    assert!(status.starts_with("miss  trap.wat"), "{run:#?}");
    let without_status = Run {
        stderr: run
            .stderr
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect(),
        ..run
    };
    let line = without_status.fails(1).to_string();
    assert!(
        line.contains("boom trapped") && line.contains("unreachable"),
        "{line}"
    );
    let line = fails_unchanged(&pack, 1, &[&"rm", &pack, &"answer.wat", &"no-such-entry"]);
    assert!(line.contains("no-such-entry"), "{line}");
    let line = fails_unchanged(
        &pack,
        1,
        &[&"extract", &pack, &"nope", &"-o", &s.path("x.bin")],
    );
    assert!(line.contains("nope"), "{line}");
}

#[test]
fn a_pack_other_users_can_write_needs_allow_shared_write() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o666)).unwrap();
    for command in ["list", "info", "verify"] {
        let line = fails_unchanged(&pack, 1, &[&command, &pack]);
        assert!(
            line.contains("writable by every user") && line.contains("--allow-shared-write"),
            "{command}: {line}"
        );
    }
    fails_unchanged(&pack, 1, &[&"run", &pack, &s.path("answer.wat")]);
    // Told to, every command opens it (the flag is global: before or after the command).
    wasmpak(
        ["--allow-shared-write", "info"]
            .map(OsStr::new)
            .into_iter()
            .chain([pack.as_os_str()]),
    )
    .ok();
    wasmpak([
        OsStr::new("verify"),
        pack.as_os_str(),
        OsStr::new("--allow-shared-write"),
    ])
    .ok();
    let run = wasmpak([
        OsStr::new("run"),
        pack.as_os_str(),
        s.path("answer.wat").as_os_str(),
        OsStr::new("--allow-shared-write"),
    ])
    .ok();
    assert!(run.stderr.starts_with("hit   answer.wat"), "{run:#?}");
}

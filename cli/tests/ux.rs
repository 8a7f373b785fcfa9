//! The tool as users expect it (issue 22): clean after interruption, one meaning per argument,
//! `--json` everywhere with one schema, `run` that writes only what it is told to, and output
//! that does not mislead.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use wasmpak::{Durability, EngineIdentity, Pack, PackIdentity, PackOptions};

use crate::common::*;

/// The pack this host's `PackCache` uses in `dir`.
fn host_pack(dir: &Path) -> PathBuf {
    dir.join(EngineIdentity::of(&wasmer::Engine::default()).pack_file_name())
}

/// Temporary files in `dir` (the library's durable writes and compactions name them
/// `.{name}.{...}.tmp`).
fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.') && name.ends_with(".tmp"))
        .collect()
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal).unwrap();
}

/// Asserts a usage error clap found: exit code 2, the `error:` line first, no panic.
fn usage(run: Run) {
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
}

/// Waits for `child`.
fn finish(child: Child) -> Run {
    child.wait_with_output().unwrap().into()
}

/// The identity of the packs [`big_pack`] makes.
fn test_identity() -> PackIdentity {
    PackIdentity::new().with("engine", "test")
}

/// A pack at `path` of `entries` values of `size` bytes (labelled `m{n}.wasm`, the first
/// `big.wasm`), large enough that copying it takes a while.
fn big_pack(path: &Path, entries: u64, size: usize) {
    let built = PackOptions::new()
        .durability(Durability::None)
        .open_or_create(path, &test_identity())
        .unwrap();
    let mut batch = built.batch();
    for n in 0..entries {
        let label = if n == 0 {
            "big.wasm".into()
        } else {
            format!("m{n}.wasm")
        };
        batch
            .insert_with_label(&key(n), &value(n, size), &label)
            .unwrap();
    }
    batch.commit().unwrap();
}

/// Removes entry `n` of a [`big_pack`]: dead bytes, so that a compaction has work to do.
fn remove_entry(path: &Path, n: u64) {
    PackOptions::new()
        .durability(Durability::None)
        .open(path, &test_identity())
        .unwrap()
        .remove(&key(n))
        .unwrap();
}

/// Runs the tool with `parts` and sends it `sent` as soon as a temporary file appears in
/// `dir` (the command is then mid-write); returns what it did.
fn interrupted_mid_write(parts: &[&OsStr], dir: &Path, sent: rustix::process::Signal) -> Run {
    let mut child = command(parts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if dir.is_dir() && !temporary_files(dir).is_empty() {
            signal(&child, sent);
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{parts:?} ended ({status}) before its temporary file was seen");
        }
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    finish(child)
}

#[test]
fn a_signal_during_compact_finishes_it_and_leaves_no_temporary_file() {
    let s = Scratch::new();
    let pack = s.path("big.wpk");
    big_pack(&pack, 96, 2 << 20);
    for (round, (sent, code, name)) in [
        (rustix::process::Signal::INT, 130, "SIGINT"),
        (rustix::process::Signal::TERM, 143, "SIGTERM"),
    ]
    .into_iter()
    .enumerate()
    {
        remove_entry(&pack, round as u64);
        // The second round with --json.
        let mut parts = vec![OsStr::new("compact"), pack.as_os_str()];
        if round == 1 {
            parts.insert(0, OsStr::new("--json"));
        }
        let run = interrupted_mid_write(&parts, s.dir.path(), sent);
        let line = run.fails(code);
        assert!(line.contains(&format!("interrupted by {name}")), "{line}");
        if round == 1 {
            // One document: what it finished; the exit code says it was interrupted.
            let report = run.json();
            assert_eq!(report["kept"], 94, "{report}");
        }
        assert!(temporary_files(s.dir.path()).is_empty());
        // Finished, not torn: the compacted pack is whole.
        let compacted = Pack::open(&pack, &test_identity()).unwrap();
        assert!(compacted.verify().unwrap().is_ok());
        assert_eq!(compacted.stats().unwrap().dead_bytes, 0);
        assert_eq!(compacted.len().unwrap(), 95 - round as u64);
    }
}

#[test]
fn a_signal_before_the_commit_stops_a_build_and_writes_nothing() {
    let s = Scratch::new();
    let pack = s.path("new/app.wpk");
    for (sent, code, name) in [
        (rustix::process::Signal::INT, 130, "SIGINT"),
        (rustix::process::Signal::TERM, 143, "SIGTERM"),
        (rustix::process::Signal::HUP, 129, "SIGHUP"),
    ] {
        // A module large enough to take a while to compile; a build that finished before the
        // signal arrived (exit 0, or "had finished what it was doing": the signal came after
        // the commit) shows nothing, so it is tried again with a module twice the size (a
        // build that ignores signals still fails: the largest one finishes too).
        let mut functions = 2000;
        let run = loop {
            let big = s.write(
                "big.wat",
                wasmpak_samples::module_wat(5, functions, 500).as_bytes(),
            );
            let child = command([OsStr::new("build"), pack.as_os_str(), big.as_os_str()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(500));
            signal(&child, sent);
            let run = finish(child);
            let finished =
                run.code == Some(0) || run.stderr.contains("had finished what it was doing");
            if finished && functions < 32_000 {
                std::fs::remove_dir_all(s.path("new")).unwrap();
                functions *= 2;
                continue;
            }
            break run;
        };
        let line = run.fails(code);
        assert!(line.contains(name) && line.contains("nothing"), "{line}");
        assert!(!s.path("new").exists(), "no pack, no directory made for it");
    }
}

#[test]
fn a_signal_during_extract_leaves_no_file_and_no_directory() {
    let s = Scratch::new();
    let pack = s.path("big.wpk");
    big_pack(&pack, 1, 192 << 20);
    let out = s.path("out");
    let file = out.join("big.bin");
    for (sent, code) in [
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::TERM, 143),
    ] {
        let parts = [
            OsStr::new("extract"),
            pack.as_os_str(),
            OsStr::new("big.wasm"),
            OsStr::new("-o"),
            file.as_os_str(),
        ];
        let run = interrupted_mid_write(&parts, &out, sent);
        let line = run.fails(code);
        assert!(line.contains("interrupted by SIG"), "{line}");
        assert!(!out.exists(), "the directory extract made is gone too");
    }
}

#[test]
fn leftovers_are_reported_by_info_and_swept_when_the_pack_is_next_written() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    // What a writer that died leaves: a temporary file nobody locks.
    let dead = s.write(".app.wpk.4242-7-0.tmp", &[0u8; 3000]);
    let text = wasmpak(args(&[&"info", &pack])).ok();
    assert!(
        text.stdout.contains(".app.wpk.4242-7-0.tmp"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("2.9 KiB"), "{}", text.stdout);
    assert!(
        text.stdout.contains("left by a writer that died"),
        "{}",
        text.stdout
    );
    let json = info(&pack);
    let leftover = &json["leftovers"][0];
    assert_eq!(leftover["size"], 3000);
    assert_eq!(leftover["live"], false);
    assert!(leftover["modified_at"].as_str().unwrap().ends_with('Z'));
    assert!(leftover["age_secs"].as_u64().is_some());
    assert!(dead.exists(), "info only looks");
    for command in ["list", "verify"] {
        wasmpak(args(&[&command, &pack])).ok();
        assert!(dead.exists(), "{command} only reads");
    }
    wasmpak(args(&[&"rm", &pack, &"imports.wat"])).ok();
    assert!(!dead.exists(), "the next write sweeps it");
    // A build sweeps too, and one into a directory sweeps beside the pack it writes.
    let dir = s.path("packs");
    wasmpak(args(&[&"build", &dir.join(""), &s.path("answer.wat")])).ok();
    let name = host_pack(&dir)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dead = s.write(&format!("packs/.{name}.1-2-3.tmp"), b"torn");
    wasmpak(args(&[&"build", &dir, &s.path("trap.wat")])).ok();
    assert!(!dead.exists());
}

#[test]
fn a_directory_names_the_host_pack_in_every_command() {
    let s = Scratch::new();
    let dir = s.path("packs");
    std::fs::create_dir(&dir).unwrap();
    let pack = host_pack(&dir);
    wasmpak(args(&[
        &"build",
        &dir,
        &s.path("answer.wat"),
        &s.path("imports.wat"),
        &s.path("trap.wat"),
    ]))
    .ok();
    assert!(pack.exists());
    // `path` prints the pack every command means by the directory.
    let printed = wasmpak(args(&[&"path", &dir])).ok();
    assert_eq!(printed.stdout.trim(), pack.to_str().unwrap());
    assert_eq!(
        wasmpak(["path"]).ok().stdout.trim(),
        pack.file_name().unwrap().to_str().unwrap()
    );
    let json = wasmpak(args(&[&"--json", &"path", &dir])).ok().json();
    assert_eq!(json["pack"], pack.to_str().unwrap());
    assert_eq!(json["identity"]["engine"], "cranelift-opts");
    for parts in [
        vec![&"list" as &dyn AsRef<OsStr>, &dir],
        vec![&"info", &dir],
        vec![&"--json", &"list", &dir],
    ] {
        let run = wasmpak(args(&parts)).ok();
        assert!(
            run.stdout.contains(pack.to_str().unwrap()) || run.stdout.contains("answer.wat"),
            "{:?}: {}",
            args(&parts),
            run.stdout
        );
    }
    let verified = wasmpak(args(&[&"--json", &"verify", &dir])).ok().json();
    assert_eq!(verified["pack"], pack.to_str().unwrap());
    let out = s.path("answer.bin");
    wasmpak(args(&[&"extract", &dir, &"answer.wat", &"-o", &out])).ok();
    assert!(out.exists());
    wasmpak(args(&[&"rm", &dir, &"trap.wat"])).ok();
    wasmpak(args(&[&"compact", &dir])).ok();
    assert_eq!(labels(&pack), ["answer.wat", "imports.wat"]);
    wasmpak(args(&[&"keygen", &s.path("ci.pem")])).ok();
    wasmpak(args(&[&"sign", &dir, &"--key", &s.path("ci.pem")])).ok();
    let installed = s.path("installed");
    wasmpak(args(&[&"install", &dir, &installed])).ok();
    assert!(host_pack(&installed).exists());
    let merged = s.path("merged");
    std::fs::create_dir(&merged).unwrap();
    wasmpak(args(&[&"merge", &merged, &dir])).ok();
    assert_eq!(labels(&host_pack(&merged)), ["answer.wat", "imports.wat"]);
    // A directory without the host's pack: one message, naming the pack looked for.
    let empty = s.path("empty");
    std::fs::create_dir(&empty).unwrap();
    for command in ["list", "info", "verify", "compact"] {
        let line = wasmpak(args(&[&command, &empty])).fails(1).to_string();
        assert!(
            line.contains(host_pack(&empty).to_str().unwrap()),
            "{command}: {line}"
        );
    }
}

#[test]
fn commands_that_write_create_missing_directories_and_remove_them_when_they_fail() {
    let s = Scratch::new();
    // Created on success...
    let pack = s.path("new/sub/app.wpk");
    wasmpak(args(&[&"build", &pack, &s.path("answer.wat")])).ok();
    assert!(pack.exists());
    let dir_pack = host_pack(&s.path("fresh"));
    wasmpak(args(&[&"build", &s.path("fresh/"), &s.path("answer.wat")])).ok();
    assert!(dir_pack.exists());
    wasmpak(args(&[&"install", &pack, &s.path("opt/app/modules")])).ok();
    assert!(s.path("opt/app/modules/app.wpk").exists());
    let out = s.path("out/answer.bin");
    wasmpak(args(&[&"extract", &pack, &"answer.wat", &"-o", &out])).ok();
    assert!(out.exists());
    wasmpak(args(&[&"keygen", &s.path("keys/ci.pem")])).ok();
    assert!(s.path("keys/ci.pub.pem").exists());
    wasmpak(args(&[&"merge", &s.path("merged/all.wpk"), &pack])).ok();
    assert!(s.path("merged/all.wpk").exists());
    // ...and gone again when the command fails.
    let bad = s.write("bad.wasm", b"not wasm");
    wasmpak(args(&[&"build", &s.path("gone/app.wpk"), &bad])).fails(1);
    assert!(!s.path("gone").exists());
    let damaged = s.pack("damaged.wpk");
    let first = listing(&damaged)["entries"][0]["value_offset"]
        .as_u64()
        .unwrap();
    flip(&damaged, first + 10);
    wasmpak(args(&[&"install", &damaged, &s.path("never/here")])).fails(3);
    assert!(!s.path("never").exists());
}

#[test]
fn run_writes_only_into_an_existing_pack_and_runs_entries_by_name() {
    let s = Scratch::new();
    let answer = s.path("answer.wat");
    // A typo is no new pack.
    let typo = s.path("ap.wpk");
    let line = wasmpak(args(&[&"run", &typo, &answer, &"--invoke", &"answer"]))
        .fails(1)
        .to_string();
    assert!(
        line.contains("ap.wpk") && line.contains("--create"),
        "{line}"
    );
    assert!(!typo.exists());
    // --create makes one.
    let run = wasmpak(args(&[
        &"run",
        &"--create",
        &typo,
        &answer,
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert_eq!(run.stdout.trim(), "42");
    assert_eq!(labels(&typo), ["answer.wat"]);
    // --no-save writes nothing: not the pack, not a sidecar.
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();
    let fresh = s.write("fresh.wat", numbered_wat(7).as_bytes());
    let run = wasmpak(args(&[
        &"run",
        &"--no-save",
        &pack,
        &fresh,
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert_eq!(run.stdout.trim(), "7");
    assert!(
        run.stderr.contains("not saved: --no-save"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&pack).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("app.wpk"))
        .collect();
    assert_eq!(names, ["app.wpk"]);
    usage(wasmpak(args(&[
        &"run",
        &"--no-save",
        &"--create",
        &pack,
        &fresh,
    ])));
    // A node holding only the pack runs its modules by label, key or key prefix.
    let elsewhere = tempfile::tempdir().unwrap();
    let key = key_of(&answer);
    for name in ["answer.wat", key.as_str(), &key[..8]] {
        let run = command([
            "run",
            pack.to_str().unwrap(),
            name,
            "--invoke",
            "add",
            "2",
            "3",
        ])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
        let run = Run::from(run).ok();
        assert_eq!(run.stdout.trim(), "5", "{name}");
        assert!(run.stderr.contains("hit"), "{}", run.stderr);
    }
    let line = command(["run", pack.to_str().unwrap(), "nothing.wasm"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let line = Run::from(line).fails(1).to_string();
    assert!(line.contains("nothing.wasm"), "{line}");
    // The help says what run writes.
    let help = wasmpak(["run", "--help"]).ok();
    assert!(help.stdout.contains("What `run` writes"), "{}", help.stdout);
}

#[test]
fn run_records_use_so_compaction_keeps_what_ran() {
    let s = Scratch::new();
    let dir = s.path("cache/");
    let modules: Vec<PathBuf> = (1..=3)
        .map(|n| s.write(&format!("m{n}.wat"), numbered_wat(n).as_bytes()))
        .collect();
    let mut build = vec![&"build" as &dyn AsRef<OsStr>, &dir];
    build.extend(modules.iter().map(|m| m as &dyn AsRef<OsStr>));
    wasmpak(args(&build)).ok();
    // m1 and m2 run, m3 never.
    let run = wasmpak(args(&[&"run", &dir, &modules[0], &"--invoke", &"answer"])).ok();
    assert!(run.stderr.contains("hit"), "{}", run.stderr);
    // Named by its file name from its own directory, and opened as the global flags say
    // (a pack others may write), the use is recorded all the same.
    let pack = host_pack(&dir);
    set_mode(&pack, 0o666);
    let run = command([
        OsStr::new("--json"),
        OsStr::new("--allow-shared-write"),
        OsStr::new("run"),
        pack.file_name().unwrap(),
        modules[1].as_os_str(),
        OsStr::new("--invoke"),
        OsStr::new("answer"),
    ])
    .current_dir(&dir)
    .output()
    .unwrap();
    let run = Run::from(run).ok();
    let report: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(report["lookup"], "hit", "{report}");
    assert_eq!(report["use_recorded"], true, "{report}");
    set_mode(&pack, 0o644);
    let run = wasmpak(args(&[&"compact", &"--max-entries", &"2", &dir])).ok();
    assert!(run.stdout.contains("evicted  "), "{}", run.stdout);
    assert_eq!(labels(&host_pack(&dir)), ["m1.wat", "m2.wat"]);
}

#[test]
fn usage_mistakes_exit_2_and_what_the_file_system_lacks_exits_1() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let answer = s.path("answer.wat");
    // The command line cannot be meant whatever the files say: 2.
    for parts in [
        vec![
            &"run" as &dyn AsRef<OsStr>,
            &pack,
            &answer,
            &"--env",
            &"FOO",
        ],
        vec![&"build", &"--cpu-features", &"avx9000", &pack, &answer],
        vec![
            &"build",
            &"--target",
            &"aarch64-unknown-linux-gnu",
            &"--cpu-features",
            &"x86-64-v3",
            &pack,
            &answer,
        ],
        vec![&"path", &"--target", &"not-a-triple"],
        vec![&"extract", &"--json", &pack, &"answer.wat", &"-o", &"-"],
    ] {
        wasmpak(args(&parts)).fails(2);
    }
    // Clap's own usage errors show the usage too: still exit code 2.
    usage(wasmpak(args(&[
        &"run",
        &"--no-save",
        &"--create",
        &pack,
        &answer,
    ])));
    usage(wasmpak(["list"]));
    // Anything named that the file system lacks: 1, in every command.
    let missing = s.path("missing");
    for parts in [
        vec![
            &"run" as &dyn AsRef<OsStr>,
            &pack,
            &answer,
            &"--dir",
            &missing,
        ],
        vec![&"run", &missing, &answer],
        vec![&"build", &pack, &missing],
        vec![&"list", &missing],
        vec![&"info", &missing],
        vec![&"verify", &missing],
        vec![&"rm", &missing, &"x"],
        vec![&"compact", &missing],
        vec![&"extract", &missing, &"x", &"-o", &s.path("x.bin")],
        vec![&"merge", &s.path("out.wpk"), &missing],
        vec![&"import", &s.path("imp.wpk"), &missing],
        vec![&"sign", &pack, &"--key", &missing],
        vec![&"verify", &pack, &"--key", &missing],
        vec![&"install", &missing, &s.path("dest")],
    ] {
        wasmpak(args(&parts)).fails(1);
    }
}

#[test]
fn output_that_does_not_mislead() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    // Readable UTC times, never unix seconds.
    wasmpak(args(&[&"keygen", &s.path("ci.pem")])).ok();
    wasmpak(args(&[&"sign", &pack, &"--key", &s.path("ci.pem")])).ok();
    let text = wasmpak(args(&[&"info", &pack])).ok();
    assert!(!text.stdout.contains("(unix)"), "{}", text.stdout);
    let at = text.stdout.split("signed at ").nth(1).unwrap();
    let at = &at[..20];
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert_eq!(info(&pack)["signatures"][0]["signed_at"], at);
    // merge says it drops signatures.
    let merged = wasmpak(args(&[&"merge", &s.path("all.wpk"), &pack])).ok();
    assert!(
        merged.stderr.contains("not copied: the signature of key"),
        "{}",
        merged.stderr
    );
    // The shared-write refusal gives its advice once.
    let shared = s.pack("shared.wpk");
    set_mode(&shared, 0o666);
    let line = wasmpak(args(&[&"list", &shared])).fails(1).to_string();
    assert_eq!(line.matches("--allow-shared-write").count(), 1, "{line}");
    assert!(!line.contains("allow shared writes explicitly"), "{line}");
    // A level of another architecture is named as such.
    let line = wasmpak(args(&[
        &"build",
        &"--target",
        &"aarch64-unknown-linux-gnu",
        &"--cpu-features",
        &"x86-64-v3",
        &s.path("arm.wpk"),
        &s.path("answer.wat"),
    ]))
    .fails(2)
    .to_string();
    assert!(
        line.contains("x86-64-v3") && line.contains("does not exist for aarch64"),
        "{line}"
    );
    assert!(!line.contains("BadName"), "{line}");
    // A sealed pack is refused before anything is compiled.
    let installed = s.path("node");
    wasmpak(args(&[&"install", &pack, &installed])).ok();
    let run = wasmpak(args(&[
        &"build",
        &installed.join("app.wpk"),
        &s.path("trap.wat"),
    ]));
    let line = run.fails(1);
    assert!(line.contains("sealed"), "{line}");
    assert!(!run.stdout.contains("compiled"), "{}", run.stdout);
    // install names the source when the source is at fault.
    let damaged = s.pack("damaged.wpk");
    let first = listing(&damaged)["entries"][0]["value_offset"]
        .as_u64()
        .unwrap();
    flip(&damaged, first + 10);
    let line = wasmpak(args(&[&"install", &damaged, &s.path("node2")]))
        .fails(3)
        .to_string();
    assert!(
        line.contains("pack ") && line.contains("damaged.wpk is not installed"),
        "{line}"
    );
    // One problem is one problem, not "(and 0 more; ...)".
    #[cfg(feature = "object-store")]
    {
        let url = format!("file://{}/", s.dir.path().display());
        let line = wasmpak(args(&[&"push", &damaged, &url]))
            .fails(1)
            .to_string();
        assert!(line.contains("refusing to push damaged pack"), "{line}");
        assert!(!line.contains("and 0 more"), "{line}");
    }
}

#[test]
fn import_says_what_it_skipped_and_labels_key_named_files() {
    let s = Scratch::new();
    let engine = wasmer::Engine::default();
    let wasm = numbered_wasm(11);
    let module = wasmer::Module::new(&engine, &wasm).unwrap();
    let key = wasmpak::ModuleHash::new(&wasm);
    let cache = s.path("cache");
    std::fs::create_dir(&cache).unwrap();
    let name = format!("{}.bin", key_of_bytes(&wasm));
    std::fs::write(cache.join(&name), module.serialize().unwrap()).unwrap();
    std::fs::write(cache.join("notes.txt"), b"hello").unwrap();
    let _ = key;
    let run = wasmpak(args(&[&"import", &s.path("app.wpk"), &cache])).ok();
    assert!(
        run.stdout.contains("notes.txt") && run.stdout.contains("not a .bin artifact"),
        "{}",
        run.stdout
    );
    assert_eq!(labels(&s.path("app.wpk")), [name]);
}

/// The pack key of some bytes, in the uppercase wasmer prints (wasix caches name files so).
fn key_of_bytes(bytes: &[u8]) -> String {
    let hash = wasmpak::ModuleHash::new(bytes);
    wasmpak::Key::from_bytes(hash.as_bytes().try_into().unwrap())
        .to_string()
        .to_uppercase()
}

#[test]
fn every_command_prints_one_json_document_with_the_shared_objects() {
    let s = Scratch::new();
    let pack = s.path("app.wpk");
    let answer = s.path("answer.wat");
    let json = |parts: &[&dyn AsRef<OsStr>]| {
        let mut all: Vec<&dyn AsRef<OsStr>> = vec![&"--json"];
        all.extend_from_slice(parts);
        let run = wasmpak(args(&all)).ok();
        let doc = serde_json::from_str::<serde_json::Value>(&run.stdout)
            .unwrap_or_else(|e| panic!("{:?}: {e}: {}", args(parts), run.stdout));
        documented(&parts[0].as_ref().to_string_lossy(), &doc);
        doc
    };
    let identity = |doc: &serde_json::Value| {
        assert!(doc["identity"]["engine"].is_string(), "{doc}");
        assert!(doc["identity"]["abi"].is_number(), "{doc}");
    };
    let entry = |e: &serde_json::Value| {
        for field in ["key", "label"] {
            assert!(e[field].is_string(), "{field}: {e}");
        }
        for field in ["size", "offset", "value_offset"] {
            assert!(e[field].is_u64(), "{field}: {e}");
        }
        assert!(e["signed_by"].is_array(), "{e}");
    };

    let built = json(&[&"build", &pack, &answer, &s.path("imports.wat")]);
    identity(&built);
    assert_eq!(built["added"], 2);
    assert_eq!(built["entries"][0]["status"], "added");
    assert!(built["entries"][0]["compile_nanos"].is_u64());
    entry(&built["entries"][0]);
    let listed = json(&[&"list", &pack]);
    identity(&listed);
    entry(&listed["entries"][0]);
    assert_eq!(listed["identity"], built["identity"]);
    let described = json(&[&"info", &pack]);
    assert_eq!(described["identity"], built["identity"]);
    assert!(described["leftovers"].is_array());
    let verified = json(&[&"verify", &"--deep", &pack]);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["checksums"]["entries"], 2);
    assert_eq!(verified["deep"]["loaded"], 2);
    entry(&verified["entries"][0]);
    assert_eq!(verified["identity"], built["identity"]);
    let keys = json(&[&"keygen", &s.path("ci.pem")]);
    assert_eq!(keys["key_id"].as_str().unwrap().len(), 16);
    let signed = json(&[&"sign", &pack, &"--key", &s.path("ci.pem")]);
    assert_eq!(signed["key_id"], keys["key_id"]);
    assert_eq!(signed["entries"], 2);
    let extracted = json(&[&"extract", &pack, &"answer.wat", &"-o", &s.path("a.bin")]);
    entry(&extracted["entry"]);
    assert_eq!(extracted["entry"]["signed_by"][0], keys["key_id"]);
    let installed = json(&[
        &"install",
        &pack,
        &s.path("node"),
        &"--key",
        &s.path("ci.pub.pem"),
    ]);
    identity(&installed);
    assert_eq!(installed["sealed"], true);
    assert_eq!(installed["entries"], 2);
    let merged = json(&[&"merge", &s.path("all.wpk"), &pack]);
    identity(&merged);
    entry(&merged["added"][0]);
    assert_eq!(merged["signatures_dropped"][0]["key_id"], keys["key_id"]);
    let removed = json(&[&"rm", &pack, &"imports.wat"]);
    assert_eq!(removed["removed"][0]["label"], "imports.wat");
    assert_eq!(removed["entries_left"], 1);
    let compacted = json(&[&"compact", &pack]);
    assert_eq!(compacted["kept"], 1);
    assert!(compacted["size_after"].as_u64() < compacted["size_before"].as_u64());
    let imported = json(&[&"import", &s.path("imp.wpk"), &s.path("a.bin")]);
    identity(&imported);
    assert_eq!(imported["imported"].as_array().unwrap().len(), 1);
    let path = json(&[&"path"]);
    identity(&path);
    let demo = json(&[&"demo"]);
    assert_eq!(demo["modules"].as_array().unwrap().len(), 4);
    assert!(demo["modules"][0]["compile_nanos"].is_u64());
    // run's stdout is the program's: its report is one JSON line on stderr.
    let run = wasmpak(args(&[
        &"--json",
        &"run",
        &pack,
        &answer,
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert_eq!(run.stdout.trim(), "42");
    let report: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    documented("run", &report);
    assert_eq!(report["lookup"], "hit");
    assert_eq!(report["label"], "answer.wat");
    #[cfg(feature = "object-store")]
    {
        let store = s.path("store");
        std::fs::create_dir(&store).unwrap();
        let url = format!("file://{}/", store.display());
        let pushed = json(&[&"push", &pack, &url]);
        identity(&pushed);
        assert_eq!(
            pushed["url"],
            format!("{url}app.wpk"),
            "the object, not the folder"
        );
        let pulled = json(&[&"pull", &format!("{url}app.wpk"), &s.path("pulled")]);
        assert_eq!(pulled["mode"], "full");
        assert_eq!(pulled["pack"], s.path("pulled/app.wpk").to_str().unwrap());
    }
}

/// Asserts that every field of `command`'s JSON document is one docs/CLI.md names in its row
/// of the table of documents.
fn documented(command: &str, doc: &serde_json::Value) {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md"))
            .unwrap();
    let row = docs
        .lines()
        .find(|line| line.starts_with(&format!("| `{command}` |")))
        .unwrap_or_else(|| panic!("docs/CLI.md has no JSON row for {command}"));
    let named: Vec<&str> = row.split('`').skip(3).step_by(2).collect();
    for field in doc.as_object().unwrap().keys() {
        assert!(
            named.contains(&field.as_str()),
            "{command} --json prints {field:?}, which docs/CLI.md does not name: {row}"
        );
    }
}

#[test]
fn failures_are_json_too_with_json() {
    let s = Scratch::new();
    let missing = s.path("missing.wpk");
    let mut cases = vec![
        (vec!["verify".to_string(), missing.display().to_string()], 1),
        (
            vec![
                "build".into(),
                missing.display().to_string(),
                "nothing.wat".into(),
            ],
            1,
        ),
        (vec!["list".into()], 2),
        (vec!["frobnicate".into()], 2),
    ];
    if cfg!(feature = "object-store") {
        cases.push((
            vec!["pull".into(), "ftp://host/app.wpk".into(), "x".into()],
            2,
        ));
        cases.push((
            vec![
                "pull".into(),
                format!("file://{}/none.wpk", s.dir.path().display()),
                s.path("node").display().to_string(),
            ],
            1,
        ));
    }
    for (parts, code) in cases {
        let mut all = vec!["--json".to_string()];
        all.extend(parts.clone());
        let run = wasmpak(&all);
        assert_eq!(run.code, Some(code), "{parts:?}: {run:#?}");
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{parts:?}: {e}: {}", run.stdout));
        assert_eq!(doc["error"]["exit_code"], code, "{doc}");
        assert!(doc["error"]["message"].is_string() && doc["error"]["kind"].is_string());
    }
    assert!(
        !s.path("node").exists(),
        "a failed pull creates no directory"
    );
    // verify's verdict is in its report, with the same error object.
    let damaged = s.pack("damaged.wpk");
    let first = listing(&damaged)["entries"][0]["value_offset"]
        .as_u64()
        .unwrap();
    flip(&damaged, first + 10);
    let run = wasmpak(args(&[&"--json", &"verify", &damaged]));
    assert_eq!(run.code, Some(3));
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["exit_code"], 3);
    let bad: Vec<_> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["problems"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(bad.len(), 1, "{doc}");
}

#[test]
fn compile_times_are_the_modules_own() {
    let s = Scratch::new();
    // Two different modules of one size, compiled at once: each has its own engine, so neither
    // waits for the other and their times are alike. Sharing one engine, the second queued
    // behind the first and reported about twice the time.
    let a = s.write("a.wat", wasmpak_samples::module_wat(1, 400, 250).as_bytes());
    let b = s.write("b.wat", wasmpak_samples::module_wat(2, 400, 250).as_bytes());
    let built = wasmpak(args(&[
        &"--json",
        &"build",
        &"-j",
        &"2",
        &s.path("app.wpk"),
        &a,
        &b,
    ]))
    .ok()
    .json();
    let times: Vec<f64> = built["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["compile_nanos"].as_u64().unwrap() as f64)
        .collect();
    let (low, high) = (times[0].min(times[1]), times[0].max(times[1]));
    assert!(high / low < 1.6, "{times:?}");
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_a_pipe() {
    let s = Scratch::new();
    let big = s.write(
        "big.wat",
        wasmpak_samples::module_wat(9, 1000, 500).as_bytes(),
    );
    // Piped (as here): no bar, no control characters.
    let run = wasmpak(args(&[&"build", &s.path("piped.wpk"), &big])).ok();
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "{run:#?}"
    );
    if !installed("script") {
        return missing(
            "script",
            "script(1), from util-linux, gives the tool a terminal",
        );
    }
    let line = format!(
        "{BIN} build {} {}",
        s.path("tty.wpk").display(),
        big.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{seen}");
    assert!(seen.contains("compiling big.wat"), "{seen}");
}

#[test]
fn progress_of_transfers_installs_and_compactions_shows_only_on_a_terminal() {
    let s = Scratch::new();
    // Large enough that each step lasts a few ticks of its bar.
    let pack = s.path("big.wpk");
    big_pack(&pack, 48, 4 << 20);
    remove_entry(&pack, 0);
    let shown = |p: &Path| p.to_str().unwrap().to_string();
    let mut steps: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["install".into(), shown(&pack), shown(&s.path("node"))],
            "installing",
        ),
        (vec!["compact".into(), shown(&pack)], "compacting"),
    ];
    if cfg!(feature = "object-store") {
        let store = s.path("store");
        std::fs::create_dir(&store).unwrap();
        let url = format!("file://{}/big.wpk", store.display());
        steps.push((
            vec!["push".into(), shown(&pack), url.clone()],
            "uploading to",
        ));
        steps.push((
            vec!["pull".into(), url, shown(&s.path("pulled"))],
            "downloading",
        ));
    }
    // Piped (as here): no bar, no control characters.
    for (parts, _) in &steps {
        let run = wasmpak(parts).ok();
        assert!(
            !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
            "{parts:?}: {run:#?}"
        );
    }
    if !installed("script") {
        return missing(
            "script",
            "script(1), from util-linux, gives the tool a terminal",
        );
    }
    // On a terminal: the bar, then cleared.
    std::fs::remove_dir_all(s.path("node")).unwrap();
    std::fs::remove_dir_all(s.path("pulled")).unwrap();
    for (parts, message) in &steps {
        let line = format!("{BIN} {}", parts.join(" "));
        let output = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .output()
            .unwrap();
        let seen = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{parts:?}: {seen}");
        assert!(seen.contains(message), "{parts:?}: {seen}");
    }
    // --json on a terminal: the document alone.
    let line = format!("{BIN} --json compact {}", pack.display());
    let output = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{seen}");
    assert!(!seen.contains("compacting"), "{seen}");
    serde_json::from_str::<serde_json::Value>(seen.trim()).unwrap();
}

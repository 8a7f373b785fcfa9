//! The `wasmpak` command line, driven as users drive it: every command's happy path.

use std::ffi::OsStr;
use std::path::Path;

use crate::common::*;

#[test]
fn help_has_examples_and_exit_codes() {
    let top = wasmpak(["--help"]).ok();
    assert!(top.stdout.contains("Examples:"), "{}", top.stdout);
    assert!(top.stdout.contains("Exit codes:"), "{}", top.stdout);
    for command in [
        "build", "import", "list", "info", "verify", "compact", "rm", "extract", "merge", "run",
        "demo",
    ] {
        let help = wasmpak([command, "--help"]).ok();
        assert!(
            help.stdout.contains("Examples:")
                && help.stdout.contains(&format!("wasmpak {command}")),
            "{command} --help has no example:\n{}",
            help.stdout
        );
        assert!(help.stdout.contains("Exit codes:"), "{command}");
        let short = wasmpak([command, "-h"]).ok();
        assert!(short.stdout.contains("Examples:"), "{command} -h");
    }
    assert!(wasmpak(["--version"]).ok().stdout.starts_with("wasmpak "));
}

#[test]
fn build_list_info() {
    let s = Scratch::new();
    let pack = s.path("app.wpk");
    let built = wasmpak(args(&[
        &"build",
        &pack,
        &s.path("answer.wat"),
        &s.path("answer.wasm"),
        &s.path("imports.wat"),
    ]))
    .ok();
    assert_eq!(
        built.stdout.matches("compiled  ").count(),
        3,
        "{}",
        built.stdout
    );
    assert!(built.stdout.contains("added 3"), "{}", built.stdout);
    assert!(
        built.stdout.contains("identity: engine="),
        "{}",
        built.stdout
    );

    // list --json: key = sha256 of the file as given, label = file name, sizes and offsets.
    let listing = listing(&pack);
    let entries = listing["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for name in ["answer.wat", "answer.wasm", "imports.wat"] {
        let entry = entries
            .iter()
            .find(|e| e["label"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listing}"));
        assert_eq!(entry["key"].as_str().unwrap(), key_of(&s.path(name)));
        assert!(entry["size"].as_u64().unwrap() > 1000, "{entry}");
        assert_eq!(entry["offset"].as_u64().unwrap() % 64, 0, "{entry}");
    }

    // The human listing: aligned columns, every key and label.
    let human = wasmpak(args(&[&"list", &pack])).ok();
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert!(lines[0].starts_with("KEY") && lines[0].contains("LABEL") && lines[0].contains("SIZE"));
    let label_column = lines[0].find("LABEL").unwrap();
    for entry in entries {
        let line = lines
            .iter()
            .find(|l| l.starts_with(entry["key"].as_str().unwrap()))
            .expect("a line per entry");
        assert_eq!(
            &line[label_column..].split_whitespace().next().unwrap(),
            &entry["label"].as_str().unwrap()
        );
        assert!(line.contains("KiB"), "{line}");
    }
    assert!(
        human.stdout.trim_end().ends_with("3 entries, 21 KiB")
            || human.stdout.contains("3 entries")
    );

    let info_json = info(&pack);
    assert_eq!(info_json["entries"], 3);
    assert_eq!(info_json["identity"]["engine"], "cranelift-opts");
    assert_eq!(
        info_json["identity"]["target"].as_str().unwrap(),
        host_target()
    );
    assert_eq!(info_json["loadable_here"], true);
    assert_eq!(info_json["dead_bytes"], 0);
    assert!(info_json["generation"].as_u64().unwrap() >= 2);
    assert_eq!(
        info_json["file_size"],
        std::fs::metadata(&pack).unwrap().len()
    );
    let human = wasmpak(args(&[&"info", &pack])).ok();
    for field in [
        "identity",
        "engine",
        "generation",
        "entries",
        "live",
        "dead",
        "file size",
        "loadable     yes",
    ] {
        assert!(human.stdout.contains(field), "{field}:\n{}", human.stdout);
    }
}

#[test]
fn build_skips_what_the_pack_has_and_commits_nothing() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();
    let again = wasmpak(args(&[
        &"build",
        &pack,
        &s.path("answer.wat"),
        &s.path("imports.wat"),
    ]))
    .ok();
    assert_eq!(
        again.stdout.matches("(already in pack)").count(),
        2,
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("added 0"), "{}", again.stdout);
    assert_eq!(
        std::fs::read(&pack).unwrap(),
        before,
        "nothing to add, nothing written"
    );

    // The same module twice on one command line is compiled once.
    let twice = s.write("twice.wat", numbered_wat(77).as_bytes());
    let run = wasmpak(args(&[&"build", &pack, &twice, &twice])).ok();
    assert!(run.stdout.contains("same module as"), "{}", run.stdout);
    assert!(run.stdout.contains("added 1"), "{}", run.stdout);
}

#[test]
fn a_runtime_keying_by_the_wasm_bytes_hits_the_built_entry() {
    use wasmpak::{ModuleCache, ModuleHash, PackCache};
    let s = Scratch::new();
    let engine = wasmer::Engine::default();
    let cache = PackCache::new(s.path("cache"));
    // Given a directory, build names the pack as the cache looks for it.
    std::fs::create_dir_all(s.path("cache")).unwrap();
    wasmpak(args(&[&"build", &s.path("cache"), &s.path("answer.wasm")])).ok();
    assert!(cache.pack_path(&engine).unwrap().is_file());

    let wasm = std::fs::read(s.path("answer.wasm")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let module = runtime
        .block_on(cache.load(ModuleHash::new(&wasm), &engine))
        .expect("the runtime finds what the CLI built");
    assert_eq!(cache.stats().hits, 1);
    let mut store = wasmer::Store::new(engine);
    let instance = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap();
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap();
    assert_eq!(answer.call(&mut store).unwrap(), 42);
}

#[test]
fn concurrent_builds_lose_nothing() {
    let s = Scratch::new();
    let pack = s.path("shared.wpk");
    // Modules that take a few milliseconds each to compile, so that the builds overlap.
    let files: Vec<_> = (0..12)
        .map(|n| {
            let wat = wasmpak_samples::module_wat(1000 + n, 20, 100);
            s.write(&format!("m{n}.wat"), wat.as_bytes())
        })
        .collect();
    // Two builds, overlapping in the middle, started together into a pack that does not exist.
    let first: Vec<&dyn AsRef<OsStr>> = files[..8].iter().map(|f| f as &dyn AsRef<OsStr>).collect();
    let second: Vec<&dyn AsRef<OsStr>> =
        files[4..].iter().map(|f| f as &dyn AsRef<OsStr>).collect();
    let spawn = |inputs: &[&dyn AsRef<OsStr>]| {
        let mut command = command([
            "build".as_ref(),
            pack.as_os_str(),
            "-j".as_ref(),
            "1".as_ref(),
        ]);
        command.args(inputs.iter().map(|i| i.as_ref()));
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let a = spawn(&first);
    let b = spawn(&second);
    let a: Run = a.wait_with_output().unwrap().into();
    let b: Run = b.wait_with_output().unwrap().into();
    // Each module written once: the four both were given are added by exactly one of them.
    let added = |run: Run| -> usize {
        let run = run.ok();
        let summary = run.stdout.lines().find(|l| l.contains(": added ")).unwrap();
        summary
            .split(": added ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(added(a) + added(b), 12);
    let mut expected: Vec<String> = (0..12).map(|n| format!("m{n}.wat")).collect();
    expected.sort();
    assert_eq!(labels(&pack), expected);
    let verify = wasmpak(args(&[&"verify", &"--deep", &pack])).ok();
    assert!(
        verify.stdout.contains("12 entries loaded"),
        "{}",
        verify.stdout
    );
}

#[test]
fn cross_target_pack_ships_but_does_not_load_here() {
    // The usual case, aarch64 built on x86_64; the other way round on an aarch64 host.
    let host = host_target();
    let (foreign, baseline) = if host.starts_with("aarch64") {
        ("x86_64-unknown-linux-gnu", "sse2")
    } else {
        ("aarch64-unknown-linux-gnu", "neon")
    };
    let s = Scratch::new();
    let pack = s.path("foreign.wpk");
    let built = wasmpak(args(&[
        &"build",
        &"--target",
        &foreign,
        &pack,
        &s.path("answer.wat"),
        &s.path("imports.wat"),
    ]))
    .ok();
    assert!(
        built.stdout.contains(&format!("target={foreign}")),
        "{}",
        built.stdout
    );
    let info = info(&pack);
    assert_eq!(info["identity"]["target"], foreign);
    assert_eq!(info["identity"]["cpu"], baseline);
    assert_eq!(info["entries"], 2);
    assert_eq!(info["loadable_here"], false);

    let before = std::fs::read(&pack).unwrap();
    let run = wasmpak(args(&[&"run", &pack, &s.path("answer.wat")]));
    let line = run.fails(1);
    assert!(line.contains(foreign) && line.contains(&host), "{line}");
    assert!(line.contains("cannot be loaded"), "{line}");
    assert_eq!(std::fs::read(&pack).unwrap(), before);

    // The checksums are fine; loading needs a host of that target.
    wasmpak(args(&[&"verify", &pack])).ok();
    let deep = wasmpak(args(&[&"verify", &"--deep", &pack]));
    let line = deep.fails(4);
    assert!(line.contains(foreign), "{line}");
}

#[test]
fn verify_deep_loads_every_module() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let run = wasmpak(args(&[&"verify", &"--deep", &pack])).ok();
    assert!(
        run.stdout.contains("3 entries") && run.stdout.contains("all intact"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("3 entries loaded by wasmer, all accepted"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn extract_writes_an_artifact_module_deserialize_loads() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let out = s.path("answer.bin");
    wasmpak(args(&[&"extract", &pack, &"answer.wasm", &"-o", &out])).ok();
    let bytes = std::fs::read(&out).unwrap();
    let key: wasmpak::Key = key_of(&s.path("answer.wasm")).parse().unwrap();
    let stored = wasmpak::Pack::open_any(&pack)
        .unwrap()
        .get(&key)
        .unwrap()
        .unwrap();
    assert_eq!(bytes, &stored[..], "the raw artifact, byte for byte");

    // wasmer's own file loader (`Module::deserialize_from_file`, which validates the layout,
    // reached through the library's one audited call) takes the extracted file as it is.
    let engine = wasmer::Engine::default();
    let module = wasmpak::FileSystemCache::load_file(&out, &engine).expect("deserializes");
    let mut store = wasmer::Store::new(engine);
    let instance = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap();
    let add = instance
        .exports
        .get_typed_function::<(i32, i32), i32>(&store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, 40, 2).unwrap(), 42);

    // By key prefix, to stdout.
    let prefix = &key_of(&s.path("imports.wat"))[..10];
    let raw = command([
        "extract".as_ref(),
        pack.as_os_str(),
        prefix.as_ref(),
        "-o".as_ref(),
        "-".as_ref(),
    ])
    .output()
    .unwrap();
    assert!(raw.status.success());
    let key: wasmpak::Key = key_of(&s.path("imports.wat")).parse().unwrap();
    let stored = wasmpak::Pack::open_any(&pack)
        .unwrap()
        .get(&key)
        .unwrap()
        .unwrap();
    assert_eq!(raw.stdout, &stored[..]);
}

#[test]
fn rm_by_label_key_and_prefix() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let run = wasmpak(args(&[&"rm", &pack, &"answer.wat"])).ok();
    assert!(
        run.stdout.contains("removed 1, 2 entries left"),
        "{}",
        run.stdout
    );
    assert_eq!(labels(&pack), ["answer.wasm", "imports.wat"]);

    let full = key_of(&s.path("answer.wasm"));
    let prefix = &key_of(&s.path("imports.wat"))[..8];
    wasmpak(args(&[&"rm", &pack, &full, &prefix])).ok();
    assert!(labels(&pack).is_empty());
    assert!(info(&pack)["dead_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn compact_reclaims_and_evicts() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    wasmpak(args(&[&"rm", &pack, &"imports.wat"])).ok();
    let size_before = std::fs::metadata(&pack).unwrap().len();
    let run = wasmpak(args(&[&"compact", &pack])).ok();
    assert!(run.stdout.contains("kept 2, evicted 0"), "{}", run.stdout);
    let after = info(&pack);
    assert_eq!(after["dead_bytes"], 0);
    assert!(after["file_size"].as_u64().unwrap() < size_before);

    let run = wasmpak(args(&[&"compact", &"--max-entries", &"1", &pack])).ok();
    assert!(run.stdout.contains("kept 1, evicted 1"), "{}", run.stdout);
    assert!(run.stdout.contains("evicted  "), "{}", run.stdout);
    assert_eq!(info(&pack)["entries"], 1);

    let run = wasmpak(args(&[&"compact", &"--max-bytes", &"1K", &pack])).ok();
    assert!(run.stdout.contains("kept 0, evicted 1"), "{}", run.stdout);
    wasmpak(args(&[&"verify", &pack])).ok();
}

#[test]
fn merge_combines_packs_of_one_identity() {
    let s = Scratch::new();
    let (a, b, out) = (s.path("a.wpk"), s.path("b.wpk"), s.path("out.wpk"));
    wasmpak(args(&[
        &"build",
        &a,
        &s.path("answer.wat"),
        &s.path("trap.wat"),
    ]))
    .ok();
    wasmpak(args(&[
        &"build",
        &b,
        &s.path("answer.wat"),
        &s.path("imports.wat"),
    ]))
    .ok();
    let run = wasmpak(args(&[&"merge", &out, &a, &b])).ok();
    assert!(run.stdout.contains("added 3"), "{}", run.stdout);
    assert!(run.stdout.contains("skipped 1"), "{}", run.stdout);
    assert_eq!(labels(&out), ["answer.wat", "imports.wat", "trap.wat"]);
    // Merging again adds nothing.
    let run = wasmpak(args(&[&"merge", &out, &a, &b])).ok();
    assert!(run.stdout.contains("added 0"), "{}", run.stdout);
    wasmpak(args(&[&"verify", &"--deep", &out])).ok();
}

#[test]
fn run_misses_then_hits_and_invokes() {
    let s = Scratch::new();
    let pack = s.path("run.wpk");
    let first = wasmpak(args(&[
        &"run",
        &"--create",
        &pack,
        &s.path("answer.wat"),
        &"--invoke",
        &"add",
        &"2",
        &"-3",
    ]))
    .ok();
    // Status on stderr, results alone on stdout.
    assert!(
        first.stderr.starts_with("miss  answer.wat"),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("saved to"), "{}", first.stderr);
    assert_eq!(first.stdout, "-1\n");

    let second = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("answer.wat"),
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert!(
        second.stderr.starts_with("hit   answer.wat: loaded from"),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains(" in "), "{}", second.stderr);
    assert_eq!(second.stdout, "42\n");

    // Without --invoke: instantiate and list the exported functions.
    let plain = wasmpak(args(&[&"run", &pack, &s.path("answer.wat")])).ok();
    assert!(
        plain
            .stdout
            .contains("answer() -> i32, add(i32, i32) -> i32"),
        "{}",
        plain.stdout
    );

    // Imports of every kind are stubbed: the function returns 0, the global is 0, memory 0.
    let stubbed = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("imports.wat"),
        &"--invoke",
        &"probe",
    ]))
    .ok();
    assert!(
        stubbed
            .stderr
            .contains("stubbed 4 imports: env.log, env.memory, env.table, env.base"),
        "{}",
        stubbed.stderr
    );
    assert_eq!(stubbed.stdout, "5\n");
    assert_eq!(labels(&pack), ["answer.wat", "imports.wat"]);
}

#[test]
fn run_recompiles_and_replaces_a_damaged_entry() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let entry = &listing(&pack)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "answer.wat")
        .unwrap()
        .clone();
    flip(&pack, entry["value_offset"].as_u64().unwrap() + 100);
    assert_eq!(wasmpak(args(&[&"verify", &pack])).code, Some(3));

    let run = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("answer.wat"),
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert!(
        run.stderr
            .starts_with("miss  answer.wat: its entry is unusable"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("checksum mismatch"), "{}", run.stderr);
    assert_eq!(run.stdout, "42\n");
    wasmpak(args(&[&"verify", &pack])).ok();
    let again = wasmpak(args(&[&"run", &pack, &s.path("answer.wat")])).ok();
    assert!(again.stderr.starts_with("hit"), "{}", again.stderr);
}

#[test]
fn demo_needs_nothing_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let run: Run = command(["demo"])
        .env("TMPDIR", tmp.path())
        .current_dir(tmp.path())
        .output()
        .unwrap()
        .into();
    let run = run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("MODULE"))
        .unwrap_or_else(|| panic!("no table:\n{}", run.stdout));
    // The first table a user sees compares the pack with what they use today.
    let peers: &[&str] = if cfg!(feature = "wasix") {
        &["WASMER-CACHE", "WASIX CACHE"]
    } else {
        &["WASMER-CACHE"]
    };
    for column in ["COMPILE", "PACK FIRST LOAD", "PACK REPEATED"]
        .iter()
        .chain(peers)
    {
        assert!(lines[header].contains(column), "{}", lines[header]);
    }
    for (row, name) in ["tiny", "small", "medium", "large", "total"]
        .iter()
        .enumerate()
    {
        let line = lines[header + 1 + row];
        assert!(line.starts_with(name), "{line}");
        assert_eq!(
            line.split_whitespace().count(),
            1 + 2 * 2 + 2 * (3 + peers.len()),
            "a name, then 2 sizes and the times with their units: {line}"
        );
    }
    assert!(
        run.stdout.contains("faster than compiling"),
        "{}",
        run.stdout
    );
    for peer in peers {
        let verdict = run
            .stdout
            .lines()
            .find(|l| l.contains(&format!("than {}", peer.to_lowercase())))
            .unwrap_or_else(|| panic!("no verdict on {peer}:\n{}", run.stdout));
        assert!(
            verdict.starts_with("first loads of all 4 modules, the pack opened once: "),
            "{verdict}"
        );
    }
    // Memory and damage, measured in worker processes, for every cache.
    let memory = run
        .stdout
        .lines()
        .find(|l| l.starts_with("memory, total PSS of "))
        .unwrap_or_else(|| panic!("no memory line:\n{}", run.stdout));
    for peer in peers {
        assert!(
            memory.contains(&format!(", {} ", peer.to_lowercase())),
            "{memory}"
        );
    }
    let damage = lines
        .iter()
        .position(|l| l.starts_with("damage: one byte flipped"))
        .unwrap_or_else(|| panic!("no damage case:\n{}", run.stdout));
    assert!(
        lines[damage + 1].starts_with("  pack: refused it, a miss")
            && lines[damage + 1].ends_with("recompiled, ran correctly"),
        "the pack must refuse a damaged artifact: {}",
        lines[damage + 1]
    );
    for (i, peer) in peers.iter().enumerate() {
        let line = lines[damage + 2 + i];
        assert!(
            line.starts_with(&format!("  {}: ", peer.to_lowercase())),
            "{line}"
        );
    }
    assert!(
        run.stdout.contains("removed the temporary directory"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the demo left files behind"
    );
}

#[cfg(feature = "singlepass")]
#[test]
fn singlepass_builds_and_runs() {
    let s = Scratch::new();
    let pack = s.path("sp.wpk");
    wasmpak(args(&[
        &"build",
        &"--compiler",
        &"singlepass",
        &pack,
        &s.path("answer.wat"),
    ]))
    .ok();
    let engine = info(&pack)["identity"]["engine"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(engine.starts_with("singlepass"), "{engine}");
    let run = wasmpak(args(&[
        &"run",
        &"--compiler",
        &"singlepass",
        &pack,
        &s.path("answer.wat"),
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert!(run.stderr.starts_with("hit"), "{}", run.stderr);
    assert_eq!(run.stdout, "42\n");
    // The default engine is another identity.
    let line = wasmpak(args(&[&"run", &pack, &s.path("answer.wat")]))
        .fails(1)
        .to_string();
    assert!(
        line.contains("engine=singlepass") && line.contains("engine=cranelift"),
        "{line}"
    );
    wasmpak(args(&[&"verify", &"--deep", &pack])).ok();
}

#[cfg(not(feature = "singlepass"))]
#[test]
fn singlepass_is_a_clear_usage_error_without_the_feature() {
    let s = Scratch::new();
    let pack = s.path("sp.wpk");
    let run = wasmpak(args(&[
        &"build",
        &"--compiler",
        &"singlepass",
        &pack,
        &s.path("answer.wat"),
    ]));
    let line = run.fails(2);
    assert!(
        line.contains("singlepass") && line.contains("--features singlepass"),
        "{line}"
    );
    assert!(!pack.exists());
}

/// Keeps `Path` used on every feature set.
#[allow(dead_code)]
fn _path(_: &Path) {}

/// This host's target as identities spell it (a musl build's with glibc's environment).
fn host_target() -> String {
    wasmpak::EngineIdentity::of(&wasmer::Engine::default())
        .target_triple()
        .to_string()
}

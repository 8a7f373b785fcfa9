//! Ship once, load everywhere: packs built in CI for a fleet's CPU level and loaded by a
//! runtime's `PackCache` on every host that can run them; `info` telling which; `import` moving
//! an existing cache over; `build` repairing what it shipped; and the command-line details
//! such a workflow runs into.

#[cfg(target_arch = "x86_64")]
mod cpu_levels;

use std::path::Path;

use crate::common::*;
use wasmer::Engine;
use wasmpak::{FileSystemCache, ModuleCache, ModuleHash, Pack, PackCache};

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn import_moves_a_wasix_cache_into_a_pack() {
    let s = Scratch::new();
    let engine = Engine::default();
    let cache_dir = s.path("wasix-cache");
    let fs_cache = FileSystemCache::new(&cache_dir);
    let mut keys = Vec::new();
    for n in [1, 2] {
        let wasm = wasmer::wat2wasm(numbered_wat(n).as_bytes())
            .unwrap()
            .into_owned();
        let key = ModuleHash::new(&wasm);
        let module = wasmer::Module::new(&engine, &wasm).unwrap();
        block_on(fs_cache.save(key, &engine, &module)).unwrap();
        keys.push(key);
    }
    let first = fs_cache.path(keys[0], &engine);
    let engine_dir = first.parent().unwrap().to_path_buf();
    // wasix names files by the module hash in uppercase hex.
    let name = first.file_stem().unwrap().to_str().unwrap();
    assert!(
        name.len() == 64 && name.chars().all(|c| !c.is_ascii_lowercase()),
        "{name}"
    );
    std::fs::write(engine_dir.join("0".repeat(64) + ".bin"), b"not an artifact").unwrap();
    let other = cache_dir.join("singlepass-wasmer-universal-v1");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("A".repeat(64) + ".bin"), b"whatever").unwrap();
    // A loose artifact not named by its key: extracted from a pack.
    let pack = s.pack("shared.wpk");
    wasmpak(args(&[
        &"extract",
        &pack,
        &"imports.wat",
        &"-o",
        &s.path("loose.bin"),
    ]))
    .ok();

    let packs = s.path("packs");
    std::fs::create_dir(&packs).unwrap();
    let run = wasmpak(args(&[&"import", &packs, &cache_dir, &s.path("loose.bin")])).ok();
    assert!(
        run.stdout.contains("imported 3") && run.stdout.contains("refused 1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("skipped 1"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("written by another engine or wasmer version"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("refuses it"), "{}", run.stdout);

    // The runtime switches to a PackCache over that directory: hits, nothing compiled.
    let cache = PackCache::new(&packs);
    for key in &keys {
        block_on(cache.load(*key, &engine)).expect("imported");
    }
    // The loose one is keyed by the SHA-256 of its wasm binary, as wasmer recorded it.
    let imports_wasm = wasmer::wat2wasm(IMPORTS_WAT.as_bytes()).unwrap();
    block_on(cache.load(ModuleHash::new(&imports_wasm), &engine)).expect("imported");
    assert_eq!(cache.stats().hits, 3);

    // Importing again adds nothing.
    let again = wasmpak(args(&[&"import", &packs, &cache_dir])).ok();
    assert!(
        again.stdout.contains("imported 0") && again.stdout.contains("already in the pack"),
        "{}",
        again.stdout
    );
    let missing = wasmpak(args(&[&"import", &packs, &s.path("nowhere")]));
    assert!(missing.fails(1).contains("does not exist"));
}

#[test]
fn build_replaces_damaged_entries_and_force_recompiles() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let entry = entry_labelled(&pack, "answer.wat");
    flip(&pack, entry["value_offset"].as_u64().unwrap() + 100);
    assert_eq!(wasmpak(args(&[&"verify", &pack])).code, Some(3));

    let run = wasmpak(args(&[
        &"build",
        &pack,
        &s.path("answer.wat"),
        &s.path("imports.wat"),
    ]))
    .ok();
    assert!(
        run.stdout
            .contains("replacing answer.wat  (its entry is damaged: value of"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("added 0 (0 B), replaced 1") && run.stdout.contains("skipped 1"),
        "{}",
        run.stdout
    );
    wasmpak(args(&[&"verify", &"--deep", &pack])).ok();

    let forced = wasmpak(args(&[&"build", &"--force", &pack, &s.path("answer.wat")])).ok();
    assert!(
        forced.stdout.contains("added 0 (0 B), replaced 1"),
        "{}",
        forced.stdout
    );
    assert!(
        !forced.stdout.contains("already in pack"),
        "{}",
        forced.stdout
    );
}

fn entry_labelled(pack: &Path, label: &str) -> serde_json::Value {
    listing(pack)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == label)
        .unwrap()
        .clone()
}

#[test]
fn compact_names_the_damaged_entries_it_drops() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let entry = entry_labelled(&pack, "imports.wat");
    // A damaged record header: the entry cannot be copied.
    flip(&pack, entry["offset"].as_u64().unwrap() + 45);
    let run = wasmpak(args(&[&"compact", &pack])).ok();
    let key = entry["key"].as_str().unwrap();
    // Its label was in the damaged header; the key comes from the index.
    assert!(
        run.stdout
            .contains(&format!("dropped  {key}  (damaged; rebuild it)")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("dropped 1 damaged entry"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("warning: 1 damaged entry was dropped"),
        "{}",
        run.stderr
    );
    wasmpak(args(&[&"verify", &pack])).ok();
}

#[test]
fn list_and_verify_name_the_same_offset() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let entry = entry_labelled(&pack, "imports.wat");
    let offset = entry["offset"].as_u64().unwrap();
    let value_offset = entry["value_offset"].as_u64().unwrap();
    assert!(
        value_offset > offset && value_offset.is_multiple_of(64),
        "{entry}"
    );
    let human = wasmpak(args(&[&"list", &pack])).ok();
    let line = human
        .stdout
        .lines()
        .find(|l| l.contains("imports.wat"))
        .unwrap();
    // KEY LABEL SIZE (two words) OFFSET SIGNED-BY
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(4), Some(&offset.to_string().as_str()), "{line}");
    flip(&pack, value_offset + 8);
    let verify = wasmpak(args(&[&"verify", &pack]));
    verify.fails(3);
    assert!(
        verify.stdout.contains(&format!("at offset {offset}:")),
        "{}",
        verify.stdout
    );
}

#[test]
fn json_commands_report_errors_as_json() {
    let s = Scratch::new();
    for (command, path, kind) in [
        ("info", s.path("missing.wpk"), "not_found"),
        ("list", s.path("answer.wat"), "not_a_pack"),
    ] {
        let run = wasmpak(args(&[&command, &"--json", &path]));
        let line = run.fails(1).to_string();
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{command}: {e}: {}", run.stdout));
        assert_eq!(json["error"]["kind"], kind, "{json}");
        assert_eq!(json["error"]["exit_code"], 1);
        assert_eq!(
            format!("error: {}", json["error"]["message"].as_str().unwrap()),
            line
        );
    }
    // Without --json, stdout stays empty.
    let plain = wasmpak(args(&[&"info", &s.path("missing.wpk")]));
    plain.fails(1);
    assert!(plain.stdout.is_empty());
}

#[test]
fn keys_and_prefixes_in_either_case() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let key = key_of(&s.path("answer.wat"));
    let upper_prefix = key[..10].to_uppercase();
    let out = wasmpak(args(&[
        &"extract",
        &pack,
        &upper_prefix,
        &"-o",
        &s.path("a.bin"),
    ]))
    .ok();
    assert!(out.stdout.contains(&key), "{}", out.stdout);
    wasmpak(args(&[&"rm", &pack, &key.to_uppercase()])).ok();
    assert!(!labels(&pack).contains(&"answer.wat".to_string()));
}

#[test]
fn rm_force_and_short_prefixes() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();
    let line = wasmpak(args(&[&"rm", &pack, &"gone.wasm"]))
        .fails(1)
        .to_string();
    assert!(
        line.contains("no entry with key or label \"gone.wasm\""),
        "{line}"
    );
    let line = wasmpak(args(&[&"rm", &pack, &"abc"])).fails(1).to_string();
    assert!(
        line.contains("too short for a key prefix: give at least 4 hex digits"),
        "{line}"
    );
    let line = wasmpak(args(&[&"rm", &"-f", &pack, &"abc"]))
        .fails(1)
        .to_string();
    assert!(line.contains("too short"), "{line}");
    assert_eq!(std::fs::read(&pack).unwrap(), before);

    let run = wasmpak(args(&[&"rm", &"-f", &pack, &"gone.wasm", &"answer.wat"])).ok();
    assert!(
        run.stdout.contains("removed 1, 2 entries left"),
        "{}",
        run.stdout
    );
    let none = wasmpak(args(&[&"rm", &"--force", &pack, &"gone.wasm"])).ok();
    assert!(none.stdout.contains("removed 0"), "{}", none.stdout);
}

#[test]
fn different_modules_with_one_label_get_a_warning() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("a")).unwrap();
    std::fs::create_dir(s.path("b")).unwrap();
    let a = s.write("a/m.wat", numbered_wat(1).as_bytes());
    let b = s.write("b/m.wat", numbered_wat(2).as_bytes());
    let same = s.write("b/same.wat", numbered_wat(1).as_bytes());
    let pack = s.path("app.wpk");
    let run = wasmpak(args(&[&"build", &pack, &a, &b])).ok();
    assert!(
        run.stderr
            .contains("warning: 2 different modules are labelled \"m.wat\""),
        "{}",
        run.stderr
    );
    // The same module twice is one entry, not a clash.
    std::fs::copy(&same, s.path("a/same.wat")).unwrap();
    let quiet = wasmpak(args(&[&"build", &pack, &same, &s.path("a/same.wat")])).ok();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[test]
fn extract_defaults_to_stdout_when_piped_and_to_label_bin_on_a_terminal() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let stored = Pack::open_any(&pack)
        .unwrap()
        .get(&key_of(&s.path("answer.wat")).parse().unwrap())
        .unwrap()
        .unwrap();
    // The test harness reads stdout through a pipe.
    let out = command(args(&[&"extract", &pack, &"answer.wat"]))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, stored);

    // On a terminal (util-linux script(1) gives the command one), LABEL.bin in the current
    // directory.
    if cfg!(not(target_os = "linux")) {
        return;
    }
    let script = std::process::Command::new("script")
        .arg("-qec")
        .arg(format!("{BIN} extract {} answer.wat", pack.display()))
        .arg("/dev/null")
        .current_dir(s.dir.path())
        .stdin(std::process::Stdio::null())
        .output();
    let out = match script {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return missing(
                "script",
                "script(1), from util-linux (bsdutils on Debian 12), gives the command a terminal",
            );
        }
        Err(e) => panic!("starting script: {e}"),
    };
    assert!(
        out.status.success(),
        "extract on a terminal failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(s.path("answer.bin")).expect("answer.bin");
    assert_eq!(written, stored);
}

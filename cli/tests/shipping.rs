//! Ship once, load everywhere: packs built in CI for a fleet's CPU level and loaded by a
//! runtime's `PackCache` on every host that can run them; `info` telling which; `import` moving
//! an existing cache over; `build` repairing what it shipped; and the command-line details
//! such a workflow runs into.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::common::*;
use wasmer::Engine;
use wasmer::sys::CpuFeature;
use wasmpak::{
    CpuLevel, EngineIdentity, FileSystemCache, Key, ModuleCache, ModuleHash, Pack, PackCache,
    PackCacheBuilder,
};

/// Every warning any thread of this test process logged so far, one line each.
fn warnings() -> Vec<String> {
    let text = log().lock().unwrap_or_else(PoisonError::into_inner).clone();
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The process-wide log buffer, with a subscriber writing warnings into it.
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let log = LOG.get_or_init(Default::default);
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .without_time()
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    });
    log
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        log()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn key_for(path: &Path) -> ModuleHash {
    ModuleHash::new(std::fs::read(path).unwrap())
}

/// The one pack `build` wrote into `dir`.
fn only_pack_in(dir: &Path) -> PathBuf {
    let packs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wpk"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs.into_iter().next().unwrap()
}

/// This host's engine identity, if it is an x86_64 host above x86-64-v2 (so that a pack built
/// for x86-64-v2 is one for a lower level); otherwise the test fails, unless told to skip it.
/// (x86_64's CPU levels: these tests are compiled for x86_64 alone.)
#[cfg(target_arch = "x86_64")]
fn host_above_x86_64_v2() -> Option<EngineIdentity> {
    let host = EngineIdentity::of(&Engine::default());
    if !host.target_triple().starts_with("x86_64") || host.cpu_level() == "x86-64-v2" {
        missing(
            "cpu",
            format!(
                "needs an x86_64 host above x86-64-v2, this is {} at {}",
                host.target_triple(),
                host.cpu_level()
            ),
        );
        return None;
    }
    Some(host)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_pack_built_for_a_lower_cpu_level_loads_here_without_compiling() {
    let Some(host) = host_above_x86_64_v2() else {
        return;
    };
    let s = Scratch::new();
    let ship = s.path("ship");
    std::fs::create_dir(&ship).unwrap();
    let built = wasmpak(args(&[
        &"build",
        &"--cpu-features",
        &"x86-64-v2",
        &ship,
        &s.path("answer.wasm"),
    ]))
    .ok();
    assert!(
        built.stdout.contains("at least CPU level x86-64-v2"),
        "{}",
        built.stdout
    );
    let pack = only_pack_in(&ship);
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.ends_with("-x86-64-v2.v1.wpk"), "{name}");

    let info = info(&pack);
    assert_eq!(info["cpu_level"], "x86-64-v2");
    assert_eq!(info["cache_file_name"], name.as_str());
    assert_eq!(info["loadable_here"], true);
    assert_eq!(info["host_cache_file_name"], host.pack_file_name().as_str());
    let mut required: Vec<String> = CpuLevel::named("x86-64-v2")
        .unwrap()
        .features()
        .iter()
        .map(|f| f.to_string())
        .collect();
    required.sort();
    assert_eq!(info["required_cpu_features"], serde_json::json!(required));

    // A runtime on this (higher) host: shipped read-only, its own directory for compiles.
    let engine = Engine::default();
    let key = key_for(&s.path("answer.wasm"));
    let stored = Pack::open_any(&pack)
        .unwrap()
        .get(&Key::from_bytes(key.as_bytes().try_into().unwrap()))
        .unwrap()
        .unwrap();
    for cache in [
        PackCache::builder(s.path("local"))
            .shipped_dir(&ship)
            .build(),
        PackCache::new(&ship),
    ] {
        let module = block_on(cache.load(key, &engine)).expect("a hit, no compile");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.saves), (1, 0, 0));
        assert_eq!(
            module.serialize().unwrap(),
            stored,
            "the v2 artifact itself"
        );
        let mut store = wasmer::Store::new(engine.clone());
        let instance = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap();
        let answer = instance
            .exports
            .get_typed_function::<(), i32>(&store, "answer")
            .unwrap();
        assert_eq!(answer.call(&mut store).unwrap(), 42);
    }
    assert!(!s.path("local").exists(), "nothing compiled, nothing saved");
}

// x86_64 only, as the CPU-level tests above: the CPU features wasmer knows for aarch64 are
// few and every aarch64 host has them, so there this test's prerequisite can never hold.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_pack_needing_a_cpu_feature_this_host_lacks_is_a_miss_with_one_warning() {
    let host = CpuFeature::for_host();
    let Some(lacking) = CpuFeature::all().iter().find(|f| !host.contains(*f)) else {
        return missing(
            "cpu",
            "needs a host that lacks a CPU feature wasmer knows; this one has them all",
        );
    };
    let identity = EngineIdentity::of(&Engine::default());
    let features = format!("{},{lacking}", identity.cpu_features());
    let s = Scratch::new();
    let ship = s.path("ship");
    std::fs::create_dir(&ship).unwrap();
    wasmpak(args(&[
        &"build",
        &"--cpu-features",
        &features,
        &ship,
        &s.path("answer.wasm"),
        &s.path("imports.wat"),
    ]))
    .ok();
    let pack = only_pack_in(&ship);
    let info = info(&pack);
    assert_eq!(info["loadable_here"], false);
    let why = info["not_loadable_because"].as_str().unwrap();
    assert_eq!(
        why,
        format!("it was built for CPU features this host lacks: {lacking}")
    );
    let human = wasmpak(args(&[&"info", &pack])).ok();
    assert!(
        human.stdout.contains("loadable     no") && human.stdout.contains(&lacking.to_string()),
        "{}",
        human.stdout
    );

    log(); // capture from here on
    let engine = Engine::default();
    for cache in [
        PackCacheBuilder::new().shipped_dir(&ship).build(),
        PackCacheBuilder::new().shipped_pack(&pack).build(),
    ] {
        let miss = block_on(cache.load(key_for(&s.path("answer.wasm")), &engine));
        assert!(miss.unwrap_err().is_not_found());
        assert_eq!(cache.stats().unusable_packs, 1);
        let again = block_on(cache.load(key_for(&s.path("imports.wat")), &engine));
        assert!(again.unwrap_err().is_not_found());
        assert_eq!(cache.stats().unusable_packs, 1, "counted once per pack");
    }
    // One warning per pack and process, naming the pack and the missing feature.
    let shown = pack.display().to_string();
    let about: Vec<String> = warnings()
        .into_iter()
        .filter(|w| w.contains(&shown))
        .collect();
    assert_eq!(about.len(), 1, "{about:#?}");
    assert!(
        about[0].contains(&format!("needs CPU features this engine lacks: {lacking}")),
        "{}",
        about[0]
    );
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

#[cfg(target_arch = "x86_64")]
#[test]
fn run_loads_from_a_pack_built_for_a_lower_cpu_level_and_saves_for_that_level() {
    let Some(host) = host_above_x86_64_v2() else {
        return;
    };
    let s = Scratch::new();
    let pack = s.path("fleet.wpk");
    wasmpak(args(&[
        &"build",
        &"--cpu-features",
        &"x86-64-v2",
        &pack,
        &s.path("answer.wasm"),
    ]))
    .ok();
    // Without --cpu-features: the v2 artifact loads on this higher host, nothing compiled.
    let hit = wasmpak(args(&[
        &"run",
        &pack,
        &s.path("answer.wasm"),
        &"--invoke",
        &"answer",
    ]))
    .ok();
    assert_eq!(hit.stdout.trim(), "42");
    assert!(hit.stderr.starts_with("hit "), "{}", hit.stderr);
    // A miss compiles for the pack's level: the saved artifact is a v2 one, which a v2 host's
    // PackCache loads; the pack keeps its identity.
    let add = s.write(
        "add.wat",
        br#"(module (func (export "add") (param i32 i32) (result i32)
            local.get 0 local.get 1 i32.add))"#,
    );
    let before = info(&pack);
    let miss = wasmpak(args(&[
        &"run",
        &pack,
        &add,
        &"--invoke",
        &"add",
        &"2",
        &"3",
    ]))
    .ok();
    assert!(miss.stderr.starts_with("miss "), "{}", miss.stderr);
    assert!(miss.stderr.contains("saved"), "{}", miss.stderr);
    assert_eq!(miss.stdout.trim(), "5");
    let after = info(&pack);
    assert_eq!(after["cpu_level"], "x86-64-v2");
    assert_eq!(after["identity"], before["identity"]);
    let again = wasmpak(args(&[
        &"run",
        &pack,
        &add,
        &"--invoke",
        &"add",
        &"2",
        &"3",
    ]))
    .ok();
    assert!(again.stderr.starts_with("hit "), "{}", again.stderr);
    // Asking for this host's own features explicitly is still an identity mismatch.
    let host_level = host.cpu_level();
    let explicit = wasmpak(args(&[
        &"run",
        &"--cpu-features",
        &host_level.as_str(),
        &pack,
        &s.path("answer.wasm"),
    ]));
    explicit.fails(1);
}

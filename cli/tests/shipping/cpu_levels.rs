//! Packs built for one CPU level and loaded on hosts of another: a lower level loads without
//! compiling, a feature the host lacks is a miss with one warning. x86_64 alone (its CPU levels;
//! the CPU features wasmer knows for aarch64 are few and every aarch64 host has them, so there
//! these tests' prerequisites can never hold).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::block_on;
use crate::common::*;
use wasmer::Engine;
use wasmer::sys::CpuFeature;
use wasmpak::{
    CpuLevel, EngineIdentity, Key, ModuleCache, ModuleHash, Pack, PackCache, PackCacheBuilder,
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

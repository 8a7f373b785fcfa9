//! `ObjectStoreCache` against moto: the fallback chain across processes, concurrent saves,
//! damaged and foreign objects, and a server that stops or stalls.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmer::Engine;
use wasmer::sys::{CpuFeature, Cranelift, Features, NativeEngineExt, Target, Triple};
use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use wasmpak::{
    CacheError, EngineIdentity, ModuleCache, ObjectStoreCache, PackCache, RemoteError,
    RemoteErrorKind, SharedCache,
};

use super::moto::Moto;
use super::{compile, module_key, wait_for};
use crate::common::{answer, assert_passed, child, env_path, env_var, played};

const PREFIX: &str = "fleet/modules";

/// A runtime without time or I/O drivers, as an application may well use: the cache brings
/// its own for its requests.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A runtime for the tests' own requests to the store, which need both drivers.
fn io() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The store a child process builds from the environment its parent gave it.
fn store_from_env() -> Arc<dyn ObjectStore> {
    super::moto::store_at(
        env_var("FLEET_PORT").parse().unwrap(),
        &env_var("FLEET_BUCKET"),
    )
}

fn spawn(role: &str, moto: &Moto, bucket: &str) -> Command {
    let mut command = child(role);
    command
        .env("FLEET_PORT", moto.port.to_string())
        .env("FLEET_BUCKET", bucket);
    command
}

#[test]
fn a_module_compiled_on_one_node_loads_on_another_without_compiling() {
    if played(&[
        ("compiles-and-saves", compiles_and_saves),
        ("loads-without-compiling", loads_without_compiling),
    ]) {
        return;
    }
    let moto = Moto::shared();
    let bucket = moto.bucket("chain");
    let (node_a, node_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn("compiles-and-saves", moto, &bucket)
        .env("FLEET_DIR", node_a.path())
        .output()
        .unwrap();
    assert_passed(&a, "node A");
    let b = spawn("loads-without-compiling", moto, &bucket)
        .env("FLEET_DIR", node_b.path())
        .output()
        .unwrap();
    assert_passed(&b, "node B");
    // Node B's pack now holds the module: its next process loads locally.
    let engine = Engine::default();
    let local = PackCache::new(node_b.path());
    let module = runtime()
        .block_on(local.load(module_key(7), &engine))
        .unwrap();
    assert_eq!(answer(&engine, &module), 7);
}

fn compiles_and_saves() {
    let engine = Engine::default();
    let fleet = ObjectStoreCache::new(store_from_env(), PREFIX);
    let cache = SharedCache::default()
        .with_fallback(PackCache::new(env_path("FLEET_DIR")).with_fallback(fleet.clone()));
    runtime().block_on(async {
        assert!(
            cache
                .load(module_key(7), &engine)
                .await
                .unwrap_err()
                .is_not_found()
        );
        cache
            .save(module_key(7), &engine, &compile(&engine, 7))
            .await
            .unwrap();
        fleet.flush().await;
    });
    assert_eq!(fleet.stats().saves, 1, "{:?}", fleet.stats());
}

fn loads_without_compiling() {
    let engine = Engine::default();
    let fleet = ObjectStoreCache::new(store_from_env(), PREFIX);
    let pack = PackCache::new(env_path("FLEET_DIR"));
    let cache = SharedCache::default().with_fallback(pack.clone().with_fallback(fleet.clone()));
    let module = runtime()
        .block_on(cache.load(module_key(7), &engine))
        .unwrap();
    assert_eq!(answer(&engine, &module), 7);
    assert_eq!(fleet.stats().hits, 1);
    assert_eq!(pack.stats().saves, 1, "promoted into the local pack");
    // Loaded again: from memory, the remote tier is not asked.
    runtime()
        .block_on(cache.load(module_key(7), &engine))
        .unwrap();
    assert_eq!(fleet.stats().hits, 1);
}

#[test]
fn four_processes_saving_one_key_leave_one_good_object() {
    if played(&[("saver", saves_at_once)]) {
        return;
    }
    let moto = Moto::shared();
    let bucket = moto.bucket("race");
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let children: Vec<_> = (0..4)
        .map(|i| {
            spawn("saver", moto, &bucket)
                .env("FLEET_GO", &go)
                .env("FLEET_READY", dir.path().join(format!("ready-{i}")))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for i in 0..4 {
        wait_for(&dir.path().join(format!("ready-{i}")));
    }
    std::fs::write(&go, b"").unwrap();
    let mut saved = 0;
    let mut already = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_passed(&output, "a saver");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let (_, counts) = stdout
            .split_once("saved=")
            .expect("the child reports its counts");
        let counts: Vec<u64> = counts
            .split_whitespace()
            .next()
            .unwrap()
            .split(',')
            .map(|n| n.parse().unwrap())
            .collect();
        saved += counts[0];
        already += counts[1];
    }
    assert!(saved >= 1, "someone wrote it");
    assert_eq!(saved + already, 4, "every save counted as saved");
    let store = moto.store(&bucket);
    let objects: Vec<_> = io().block_on(async {
        use futures::TryStreamExt;
        store
            .list(Some(&ObjectPath::from(PREFIX)))
            .try_collect()
            .await
            .unwrap()
    });
    assert_eq!(objects.len(), 1, "{objects:?}");
    let engine = Engine::default();
    let cache = ObjectStoreCache::new(store, PREFIX);
    let module = runtime()
        .block_on(cache.load(module_key(11), &engine))
        .unwrap();
    assert_eq!(answer(&engine, &module), 11);
}

fn saves_at_once() {
    let engine = Engine::default();
    let module = compile(&engine, 11);
    let cache = ObjectStoreCache::builder(store_from_env(), PREFIX)
        .background_saves(false)
        .build();
    std::fs::write(env_path("FLEET_READY"), b"").unwrap();
    wait_for(&env_path("FLEET_GO"));
    runtime().block_on(async {
        cache.save(module_key(11), &engine, &module).await.unwrap();
        let loaded = cache.load(module_key(11), &engine).await.unwrap();
        assert_eq!(answer(&engine, &loaded), 11);
    });
    let stats = cache.stats();
    println!("saved={},{}", stats.saves, stats.already_saved);
}

#[test]
fn damaged_object_is_a_miss_and_the_local_tiers_keep_working() {
    let moto = Moto::shared();
    let bucket = moto.bucket("damaged");
    let store = moto.store(&bucket);
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let fleet = ObjectStoreCache::builder(store.clone(), PREFIX)
        .background_saves(false)
        .build();
    let rt = runtime();
    rt.block_on(fleet.save(module_key(21), &engine, &compile(&engine, 21)))
        .unwrap();
    let path = fleet.object_path(module_key(21), &engine);
    let mut bytes = io()
        .block_on(async { store.get(&path).await.unwrap().bytes().await })
        .unwrap()
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    io().block_on(store.put(&path, PutPayload::from(bytes)))
        .unwrap();

    let local = PackCache::new(dir.path());
    rt.block_on(local.save(module_key(22), &engine, &compile(&engine, 22)))
        .unwrap();
    let cache = local.clone().with_fallback(fleet.clone());
    let miss = rt
        .block_on(cache.load(module_key(21), &engine))
        .unwrap_err();
    assert!(miss.is_not_found(), "{miss}");
    assert_eq!(fleet.stats().stale, 1);
    let module = rt.block_on(cache.load(module_key(22), &engine)).unwrap();
    assert_eq!(answer(&engine, &module), 22);
    // Compiled again and saved: the damaged object is replaced, and loads from it work.
    rt.block_on(cache.save(module_key(21), &engine, &compile(&engine, 21)))
        .unwrap();
    let fresh = ObjectStoreCache::new(store, PREFIX);
    let module = rt.block_on(fresh.load(module_key(21), &engine)).unwrap();
    assert_eq!(answer(&engine, &module), 21);
}

#[test]
fn objects_of_another_identity_are_misses() {
    let moto = Moto::shared();
    let bucket = moto.bucket("identity");
    let store = moto.store(&bucket);
    let rt = runtime();
    let host = Engine::default();
    let plain = Engine::new(
        Box::new(Cranelift::default()),
        Target::new(Triple::host(), CpuFeature::set()),
        Features::default(),
    );
    assert_ne!(EngineIdentity::of(&host), EngineIdentity::of(&plain));
    let cache = ObjectStoreCache::builder(store.clone(), PREFIX)
        .background_saves(false)
        .build();
    rt.block_on(cache.save(module_key(31), &host, &compile(&host, 31)))
        .unwrap();
    // Another engine looks under its own identity's prefix and finds nothing.
    assert!(
        rt.block_on(cache.load(module_key(31), &plain))
            .unwrap_err()
            .is_not_found()
    );
    assert_ne!(
        cache.object_path(module_key(31), &plain),
        cache.object_path(module_key(31), &host)
    );
    // The host's object copied to where the other engine looks: foreign, so a miss.
    let copy = io().block_on(async {
        let from = cache.object_path(module_key(31), &host);
        let to = cache.object_path(module_key(31), &plain);
        store.copy(&from, &to).await
    });
    copy.unwrap();
    assert!(
        rt.block_on(cache.load(module_key(31), &plain))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(cache.stats().stale, 1);
    assert_eq!(
        answer(
            &host,
            &rt.block_on(cache.load(module_key(31), &host)).unwrap()
        ),
        31
    );
}

#[test]
fn a_stopped_server_is_a_bounded_miss_and_is_then_skipped() {
    let mut moto = Moto::start();
    let bucket = moto.bucket("stopped");
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let timeout = Duration::from_millis(1500);
    let fleet = ObjectStoreCache::builder(moto.store(&bucket), PREFIX)
        .timeout(timeout)
        .retry_after(Duration::from_secs(60))
        .background_saves(false)
        .build();
    rt.block_on(fleet.save(module_key(41), &engine, &compile(&engine, 41)))
        .unwrap();
    let local = PackCache::new(dir.path());
    rt.block_on(local.save(module_key(42), &engine, &compile(&engine, 42)))
        .unwrap();
    moto.kill();

    let cache = local.with_fallback(fleet.clone());
    let started = Instant::now();
    let miss = rt
        .block_on(cache.load(module_key(41), &engine))
        .unwrap_err();
    assert!(miss.is_not_found(), "{miss}");
    assert!(
        started.elapsed() < timeout * 4,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fleet.stats().failures, 1);
    // While the store is known to be down, it is not asked again.
    assert!(
        rt.block_on(cache.load(module_key(41), &engine))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!((fleet.stats().failures, fleet.stats().skipped), (1, 1));
    // The local tier serves what it has.
    let module = rt.block_on(cache.load(module_key(42), &engine)).unwrap();
    assert_eq!(answer(&engine, &module), 42);
}

#[test]
fn a_stalled_server_never_hangs_a_load_or_a_save() {
    let moto = Moto::start();
    let bucket = moto.bucket("stalled");
    let engine = Engine::default();
    let rt = runtime();
    let timeout = Duration::from_millis(800);
    let build = || {
        ObjectStoreCache::builder(moto.store(&bucket), PREFIX)
            .timeout(timeout)
            .retry_after(Duration::ZERO)
    };
    let foreground = build().background_saves(false).build();
    rt.block_on(foreground.save(module_key(51), &engine, &compile(&engine, 51)))
        .unwrap();
    moto.stall();

    let started = Instant::now();
    assert!(
        rt.block_on(foreground.load(module_key(51), &engine))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        !rt.block_on(foreground.contains(module_key(51), &engine))
            .unwrap()
    );
    let error = rt
        .block_on(foreground.save(module_key(52), &engine, &compile(&engine, 52)))
        .unwrap_err();
    let CacheError::Other(error) = error else {
        panic!("{error}")
    };
    let remote = error.downcast_ref::<RemoteError>().unwrap();
    assert_eq!(remote.kind(), RemoteErrorKind::Timeout);
    assert!(remote.to_string().contains(PREFIX), "{remote}");
    assert!(
        started.elapsed() < timeout * 3 * 4,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(foreground.stats().failures, 3);

    // A background save returns before its upload has an outcome (the server is stalled, so the
    // upload can only time out, which takes `slow`): no timeout error, and nothing counted
    // yet. The upload then times out on its own. (How fast the save returns is the fleet
    // bench's `save` part.)
    let slow = Duration::from_secs(3);
    let background = ObjectStoreCache::builder(moto.store(&bucket), PREFIX)
        .timeout(slow)
        .retry_after(Duration::ZERO)
        .build();
    let module = compile(&engine, 53);
    rt.block_on(background.save(module_key(53), &engine, &module))
        .unwrap();
    assert_eq!(
        (background.stats().saves, background.stats().failures),
        (0, 0),
        "the save waited for its upload"
    );
    rt.block_on(background.flush());
    assert_eq!(
        (background.stats().saves, background.stats().failures),
        (0, 1)
    );
    moto.resume();
}

//! `WasmerCache`: a program written against the `wasmer-cache` crate's `Cache` trait runs the
//! same over `wasmer_cache::FileSystemCache` and over our caches, which share their keys with
//! the `ModuleCache` they wrap.

use std::io::ErrorKind;

use wasmer::{DeserializeError, Engine, Instance, Module, Store, imports};
use wasmer_cache::{Cache, FileSystemCache, Hash};
use wasmpak::{ModuleCache, ModuleHash, PackCache, WasmerCache};

const ANSWER: &[u8] = br#"(module (func (export "answer") (result i32) i32.const 42))"#;

/// The usual wasmer-cache code: the module from `cache`, else compiled and stored; whether it
/// was loaded.
fn load_or_compile<C: Cache>(
    cache: &mut C,
    engine: &Engine,
    wasm: &[u8],
    key: Hash,
) -> (Module, bool)
where
    C::SerializeError: std::fmt::Debug,
{
    // SAFETY (wasmer-cache's contract): only this test writes its cache directories.
    match unsafe { cache.load(engine, key) } {
        Ok(module) => (module, true),
        Err(_) => {
            let module = Module::new(engine, wasm).unwrap();
            cache.store(key, &module).unwrap();
            (module, false)
        }
    }
}

fn answer(engine: &Engine, module: &Module) -> i32 {
    let mut store = Store::new(engine.clone());
    let instance = Instance::new(&mut store, module, &imports! {}).unwrap();
    let function = instance.exports.get_function("answer").unwrap();
    function.call(&mut store, &[]).unwrap()[0].unwrap_i32()
}

#[test]
fn one_line_switches_a_wasmer_cache_program_to_a_pack() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let wasm = wasmer::wat2wasm(ANSWER).unwrap();
    let key = Hash::generate(&wasm);
    for run in 0..2 {
        let mut cache = FileSystemCache::new(dir.path().join("wasmer")).unwrap();
        let (module, loaded) = load_or_compile(&mut cache, &engine, &wasm, key);
        assert_eq!(loaded, run == 1, "FileSystemCache, run {run}");
        assert_eq!(answer(&engine, &module), 42);
    }
    for run in 0..2 {
        let mut cache = WasmerCache::new(PackCache::new(dir.path().join("pack")), &engine);
        let (module, loaded) = load_or_compile(&mut cache, &engine, &wasm, key);
        assert_eq!(loaded, run == 1, "WasmerCache<PackCache>, run {run}");
        assert_eq!(answer(&engine, &module), 42);
    }
    // The module went into the engine's pack, not beside it.
    let pack = PackCache::new(dir.path().join("pack"))
        .pack_path(&engine)
        .unwrap();
    assert_eq!(wasmpak::Pack::open_any(&pack).unwrap().len().unwrap(), 1);
}

#[test]
fn a_miss_is_not_found_as_for_file_system_cache() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let cache = WasmerCache::new(PackCache::new(dir.path()), &engine);
    let key = Hash::generate(b"never stored");
    // SAFETY (wasmer-cache's contract): nothing else writes the directory.
    match unsafe { cache.load(&engine, key) } {
        Err(DeserializeError::Io(e)) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
        other => panic!("a miss should be Io(NotFound), not {:?}", other.map(|_| ())),
    }
}

#[test]
fn wasmer_cache_hashes_are_the_module_cache_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let wasm = wasmer::wat2wasm(ANSWER).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    // Stored through the trait under `WasmerCache::hash`, loaded through `ModuleCache`.
    let mut door = WasmerCache::new(PackCache::new(dir.path().join("a")), &engine);
    let module = Module::new(&engine, &wasm).unwrap();
    door.store(WasmerCache::<PackCache>::hash(&wasm), &module)
        .unwrap();
    let loaded = runtime
        .block_on(door.cache().load(ModuleHash::new(&wasm), &engine))
        .unwrap();
    assert_eq!(answer(&engine, &loaded), 42);

    // Saved through `ModuleCache` (as `wasmpak build` files it), loaded through the trait.
    let cache = PackCache::new(dir.path().join("b"));
    runtime
        .block_on(cache.save(ModuleHash::new(&wasm), &engine, &module))
        .unwrap();
    let door = WasmerCache::new(cache, &engine);
    // SAFETY (wasmer-cache's contract): only this test writes the directory.
    let loaded = unsafe { door.load(&engine, WasmerCache::<PackCache>::hash(&wasm)) }.unwrap();
    assert_eq!(answer(&engine, &loaded), 42);
    // wasmer-cache's own hash (BLAKE3) is another key: a miss, not another module.
    // SAFETY: as above.
    assert!(unsafe { door.load(&engine, Hash::generate(&wasm)) }.is_err());
}

#[test]
fn damaged_pack_bytes_are_a_miss_or_an_error_never_a_module() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let wasm = wasmer::wat2wasm(ANSWER).unwrap();
    let key = Hash::generate(&wasm);
    let module = Module::new(&engine, &wasm).unwrap();
    let mut cache = WasmerCache::new(PackCache::new(dir.path()), &engine);
    cache.store(key, &module).unwrap();
    let path = cache.cache().pack_path(&engine).unwrap();
    drop(cache);
    // Flip a byte in the middle of the stored artifact.
    let artifact = module.serialize().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(artifact.len())
        .position(|w| w == &artifact[..])
        .expect("the pack holds the artifact");
    bytes[at + artifact.len() / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let cache = WasmerCache::new(PackCache::new(dir.path()), &engine);
    // SAFETY (wasmer-cache's contract): only this test writes the directory.
    assert!(unsafe { cache.load(&engine, key) }.is_err());
}

//! A program written against the `wasmer-cache` crate, switched to a pack by one line.
//!
//! `cargo run --example wasmer_cache --features wasmer-cache`
//!
//! `run` is the usual wasmer-cache code: load the module by its hash, else compile and store
//! it. It runs twice over `wasmer_cache::FileSystemCache` (one file per module), then twice
//! over a `PackCache` behind `WasmerCache` (one memory-mapped, checksummed file per engine):
//! the only difference is the line that makes the cache.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use wasmer::{Engine, Instance, Module, Store, imports};
use wasmer_cache::{Cache, FileSystemCache, Hash};
use wasmpak::{PackCache, WasmerCache};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::default();
    let wasm = wasmer::wat2wasm(br#"(module (func (export "answer") (result i32) i32.const 42))"#)?;

    let wasmer_dir = dir.path().join("wasmer-cache");
    let pack_dir = dir.path().join("wasmpak");
    for run_number in 1..=2 {
        let mut cache = FileSystemCache::new(&wasmer_dir)?;
        run("wasmer-cache", run_number, &mut cache, &engine, &wasm)?;
    }
    for run_number in 1..=2 {
        let mut cache = WasmerCache::new(PackCache::new(&pack_dir), &engine);
        run("wasmpak", run_number, &mut cache, &engine, &wasm)?;
    }
    let pack = PackCache::new(&pack_dir).pack_path(&engine);
    println!(
        "the pack: {}",
        pack.as_deref().unwrap_or(Path::new("-")).display()
    );
    Ok(())
}

/// Loads the module from `cache`, or compiles and stores it, then calls it.
fn run<C: Cache<SerializeError: 'static>>(
    name: &str,
    run_number: u32,
    cache: &mut C,
    engine: &Engine,
    wasm: &[u8],
) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let key = Hash::generate(wasm);
    // SAFETY (wasmer-cache's contract): only this program writes its cache directories.
    let (module, how) = match unsafe { cache.load(engine, key) } {
        Ok(module) => (module, "loaded"),
        Err(_) => {
            let module = Module::new(engine, wasm)?;
            cache.store(key, &module)?;
            (module, "compiled and stored")
        }
    };
    let elapsed = start.elapsed();
    let mut store = Store::new(engine.clone());
    let instance = Instance::new(&mut store, &module, &imports! {})?;
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")?
        .call(&mut store)?;
    println!("{name} run {run_number}: {how} in {elapsed:?}, answer {answer}");
    Ok(())
}

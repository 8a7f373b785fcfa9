//! Shipping compiled modules inside the binary.
//!
//! `cargo run --example embedded`
//!
//! 1. `include_pack!` embeds a pack file (here the small `examples/demo.wpk`, whose recipe is
//!    the test `the_included_demo_pack_is_aligned_and_matches_its_recipe`) with the alignment
//!    packs need, and `Pack::from_static` reads it with no copy and no file.
//! 2. A `PackCache` with an embedded pack in front of a writable directory: what the binary
//!    carries loads from memory, anything else is compiled once and saved to the directory.
//!    A real application would `include_pack!` a pack that `wasmpak build` made in CI for its
//!    target; this example builds one at run time, so that it matches this machine's CPU and
//!    wasmer whatever they are, and hands it over as bytes.

use wasmer::{Engine, Module};
use wasmpak::{Key, ModuleCache, ModuleHash, Pack, PackCache, PackCacheBuilder, PackIdentity};

static DEMO: &[u8] = wasmpak::include_pack!("demo.wpk");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = Pack::from_static(DEMO, &PackIdentity::new().with("engine", "demo"))?;
    let greeting = demo.get(&Key::from_bytes([1; 32]))?.unwrap_or_default();
    println!(
        "embedded demo pack: {} entries, first says {:?}",
        demo.len()?,
        String::from_utf8_lossy(&greeting)
    );
    if let Err(refused) = demo.insert(&Key::from_bytes([9; 32]), b"nope") {
        println!("writing to it: {refused}");
    }

    let engine = Engine::default();
    let wat = |n: i32| format!(r#"(module (func (export "answer") (result i32) i32.const {n}))"#);
    let shipped_wasm = wasmer::wat2wasm(wat(42).as_bytes())?.into_owned();
    let other_wasm = wasmer::wat2wasm(wat(7).as_bytes())?.into_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;

    // "CI": compile the shipped module into a pack, and take its bytes.
    let build_dir = tempfile::tempdir()?;
    let builder = PackCache::new(build_dir.path());
    let shipped_key = ModuleHash::new(&shipped_wasm);
    runtime.block_on(builder.save(shipped_key, &engine, &Module::new(&engine, &shipped_wasm)?))?;
    let bytes = wasmpak::aligned_bytes(&std::fs::read(builder.pack_path(&engine).unwrap())?);

    // "The application": the embedded pack first, then its own directory.
    let cache_dir = tempfile::tempdir()?;
    let cache = PackCacheBuilder::new()
        .embedded_pack(bytes)
        .dir(cache_dir.path())
        .build();
    runtime.block_on(async {
        for wasm in [&shipped_wasm, &other_wasm, &other_wasm] {
            let key = ModuleHash::new(wasm);
            match cache.load(key, &engine).await {
                Ok(_) => println!("module {key}: loaded from the cache"),
                Err(e) if e.is_not_found() => {
                    let module = Module::new(&engine, wasm)?;
                    cache.save(key, &engine, &module).await?;
                    println!("module {key}: compiled, saved to the cache directory");
                }
                Err(e) => return Err(Box::<dyn std::error::Error>::from(e)),
            }
        }
        Ok(())
    })?;
    let stats = cache.stats();
    // The last load found the module in the cache's in-process memo, filled by the save.
    println!(
        "pack hits {}, memo hits {}, saves {}",
        stats.hits, stats.memo_hits, stats.saves
    );
    assert_eq!((stats.hits + stats.memo_hits, stats.saves), (2, 1));
    Ok(())
}

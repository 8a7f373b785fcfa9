//! A host that runs WASI programs in a wasix runtime whose module cache is a pack: the code an
//! edge runtime or a plugin host copies.
//!
//! ```sh
//! cargo run --release --features wasix --example wasix_host            # cache in a temporary directory
//! cargo run --release --features wasix --example wasix_host -- CACHE_DIR   # run it twice: the second run compiles nothing
//! ```
//!
//! The host builds one runtime per process: an in-memory cache in front of a `PackCache`, so a
//! module is deserialized from the pack once per process and shared after that. Every module
//! compiled on a miss is saved to the pack, and every later process (a worker after a deploy,
//! the next run of this example) loads it from there.

use std::error::Error;
use std::path::PathBuf;

use wasmer::Engine;
use wasmer_wasix::runners::wasi::WasiRunner;
use wasmpak::{ModuleCache, PackCache, SharedCache, WasixHost};

fn main() -> Result<(), Box<dyn Error>> {
    let temporary = tempfile::tempdir()?;
    let cache_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());

    // One runtime per process. The pack cache is cheap to clone: keep a handle for its stats.
    let pack = PackCache::new(&cache_dir);
    let cache = SharedCache::default().with_fallback(pack.clone());
    let host = WasixHost::new(Engine::default(), cache)?;

    // Several programs: the WASI tool that comes with wasmpak's samples, and two generated
    // variants of it (different bytes, so different cache keys).
    let tool = wasmer::wat2wasm(wasmpak_samples::WASI_TOOL_WAT.as_bytes())?.into_owned();
    let programs = [
        (
            "wasi-tool",
            tool.clone(),
            vec!["echo", "hello", "from", "a", "pack"],
        ),
        (
            "wasi-tool-2",
            with_custom_section(&tool, 2),
            vec!["printenv"],
        ),
        ("wasi-tool-3", with_custom_section(&tool, 3), vec!["fail"]),
    ];
    for (name, wasm, args) in programs {
        let module = host.load(&wasm)?;
        let mut runner = WasiRunner::new();
        runner
            .with_args(args)
            .with_envs([("HOST", "wasix_host example")]);
        let code = host.run(&runner, name, module)?;
        eprintln!("{name} exited with code {code}");
    }

    let stats = pack.stats();
    let pack_path = pack
        .pack_path(&Engine::default())
        .ok_or("the cache has no directory of its own")?;
    eprintln!(
        "pack {}: {} loaded from the pack, {} compiled and saved",
        pack_path.display(),
        stats.hits,
        stats.saves
    );
    Ok(())
}

/// `wasm` with a custom section appended: the same program under another key.
fn with_custom_section(wasm: &[u8], n: u8) -> Vec<u8> {
    let name = b"variant";
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push((1 + name.len() + 1) as u8); // section size (fits one LEB128 byte)
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(n);
    out
}

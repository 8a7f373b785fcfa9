//! A process `wasmpak demo` starts to measure what a freshly started worker sees: it creates
//! one cache, makes the first load of some of the demo's modules by their keys, runs each,
//! says what happened, and stays alive (holding its modules) until its standard input closes,
//! so that the parent can read its memory. The parent reads a crash from the exit status, so a
//! damaged artifact that takes a process down is reported, not suffered. A worker generates a
//! module's WebAssembly only to recompile one its cache refused: generating it (the text, then
//! its parse) leaves tens of MiB of freed heap resident, which the memory figure would count.

use std::io::{BufRead, Write};
use std::path::Path;

use wasmer::{Engine, Module};
use wasmpak::PackCache;
use wasmpak_samples::{SAMPLES, module_wat};

use super::caches::{DemoCache, Keys};
use super::run_answer;
use crate::error::CliError;

/// The environment variable that makes `wasmpak demo` this child: `CACHE;DIR;I=KEYS,...`, the
/// cache's directory name (`pack` or a peer's), the demo's root directory and, for each of the
/// [`SAMPLES`] to load, its index and its keys ([`Keys::to_spec`]).
pub const ROLE: &str = "WASMPAK_DEMO_CHILD";

/// The seed of the `index`th sample: what its `answer` export returns.
pub fn seed(index: usize) -> u32 {
    1000 + index as u32
}

/// The `index`th sample's WebAssembly.
pub fn wasm(index: usize) -> Result<Vec<u8>, String> {
    let sample = SAMPLES.get(index).ok_or("no such sample")?;
    wasmer::wat2wasm(module_wat(seed(index), sample.functions, sample.ops).as_bytes())
        .map(|w| w.into_owned())
        .map_err(|e| e.to_string())
}

/// Runs the child described by `spec` (see [`ROLE`]). One line per module on standard
/// output: `loaded ANSWER`, `loaded, does not run: ...` or `refused: ...; recompiled ANSWER`;
/// then `ready`.
pub fn run(spec: &str) -> Result<(), CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::failed(format!("demo child: {e}"));
    let mut parts = spec.splitn(3, ';');
    let (Some(cache), Some(root), Some(modules)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(failed(&format!("malformed {ROLE}")));
    };
    let modules = modules
        .split(',')
        .map(|module| {
            let (index, keys) = module
                .split_once('=')
                .ok_or_else(|| format!("{module:?} is not INDEX=KEYS"))?;
            let index = index.parse::<usize>().map_err(|e| e.to_string())?;
            Ok((index, Keys::from_spec(keys)?))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| failed(&e))?;
    let engine = Engine::default();
    // A server's runtime: the pack loads large artifacts in place on its worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| failed(&e))?;
    let mut out = std::io::stdout().lock();
    let mut held: Vec<Module> = Vec::new();
    runtime.block_on(async {
        let root = Path::new(root);
        let cache = match cache {
            "pack" => DemoCache::Pack(PackCache::new(root.join("pack"))),
            peer => DemoCache::peer(root, peer).map_err(|e| failed(&e))?,
        };
        for (index, keys) in modules {
            let line = match cache.load(&keys, &engine).await {
                Ok(module) => {
                    let line = match run_answer(&engine, &module) {
                        Ok(answer) => format!("loaded {answer}"),
                        Err(e) => format!("loaded, does not run: {e}"),
                    };
                    held.push(module);
                    line
                }
                Err(refused) => {
                    let wasm = wasm(index).map_err(|e| failed(&e))?;
                    let module = Module::new(&engine, &wasm).map_err(|e| failed(&e))?;
                    let answer = run_answer(&engine, &module).map_err(|e| failed(&e))?;
                    held.push(module);
                    format!("refused: {refused}; recompiled {answer}")
                }
            };
            writeln!(out, "{}", line.replace('\n', " ")).map_err(|e| failed(&e))?;
        }
        Ok::<(), CliError>(())
    })?;
    writeln!(out, "ready").map_err(|e| failed(&e))?;
    out.flush().map_err(|e| failed(&e))?;
    // Hold the modules (and their mappings) until the parent has read this process's memory.
    let mut sink = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut sink)
        .map_or(0, |n| n)
        > 0
    {}
    drop(held);
    Ok(())
}

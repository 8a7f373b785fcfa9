//! The benchmark corpus: generated modules from a few KB to tens of MB of artifact, compiled
//! once and kept under the target directory, so later runs start in seconds.

use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};
use wasmpak::ModuleHash;

/// How many modules; at least 50 by the issue.
pub const MODULES: usize = 60;
/// The smallest and largest target artifact sizes.
const SMALLEST: f64 = 5e3;
const LARGEST: f64 = 30e6;
/// Bytes of artifact per generated arithmetic op, and per function, roughly (measured on
/// cranelift x86_64; only used to aim, sizes are reported as they come out).
const BYTES_PER_OP: f64 = 9.0;

/// One module of the corpus.
#[derive(Debug, Clone)]
pub struct CorpusModule {
    pub index: usize,
    pub seed: u32,
    pub functions: u32,
    pub ops: u32,
    pub wasm: PathBuf,
    pub artifact: PathBuf,
    pub artifact_len: u64,
    pub key: ModuleHash,
    /// The key `wasmer-cache` uses: BLAKE3 of the wasm bytes.
    pub blake3: wasmer_cache::Hash,
}

/// The shape of module `i`: sizes spread from SMALLEST to LARGEST, most of them small, the way
/// a fleet's modules are (many handlers, a few big applications).
fn shape(i: usize) -> (u32, u32) {
    let t = (i as f64 / (MODULES - 1) as f64).powf(1.5);
    let target = SMALLEST * (LARGEST / SMALLEST).powf(t);
    let total_ops = (target / BYTES_PER_OP).max(4.0) as u64;
    let functions = (total_ops / 500).clamp(1, 6000) as u32;
    let ops = (total_ops / functions as u64).max(4) as u32;
    (functions, ops)
}

/// The corpus, compiling what is not cached yet under `cache_dir`.
pub fn load_or_build(engine: &Engine, cache_dir: &Path) -> Vec<CorpusModule> {
    let dir = cache_dir.join(wasmpak::EngineIdentity::of(engine).file_stem());
    std::fs::create_dir_all(&dir).unwrap();
    let mut corpus = Vec::with_capacity(MODULES);
    for index in 0..MODULES {
        let (functions, ops) = shape(index);
        let seed = 1000 + index as u32;
        let wat = wasmpak_samples::module_wat(seed, functions, ops);
        let wasm_bytes = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
        let key = ModuleHash::new(&wasm_bytes);
        let wasm = dir.join(format!("{key}.wasm"));
        let artifact = dir.join(format!("{key}.bin"));
        if !artifact.exists() {
            eprintln!(
                "edge: compiling corpus module {index} ({functions} functions x {ops} ops) once..."
            );
            let module = Module::new(engine, &wasm_bytes).unwrap();
            let bytes = module.serialize().unwrap();
            let partial = artifact.with_extension("partial");
            std::fs::write(&partial, &bytes).unwrap();
            std::fs::rename(&partial, &artifact).unwrap();
        }
        if !wasm.exists() {
            std::fs::write(&wasm, &wasm_bytes).unwrap();
        }
        corpus.push(CorpusModule {
            index,
            seed,
            functions,
            ops,
            artifact_len: std::fs::metadata(&artifact).unwrap().len(),
            blake3: wasmer_cache::Hash::generate(&wasm_bytes),
            wasm,
            artifact,
            key,
        });
    }
    corpus
}

/// The artifact as a module of `engine`.
pub fn deserialize(engine: &Engine, module: &CorpusModule) -> Module {
    // Written whole by `load_or_build` (renamed into place), as a file cache does.
    wasmpak::FileSystemCache::load_file(&module.artifact, engine).unwrap()
}

/// Checks that `module` is corpus module `m`: its `answer` export returns the seed.
pub fn check(engine: &Engine, module: &Module, m: &CorpusModule) {
    let mut store = wasmer::Store::new(engine.clone());
    let instance = wasmer::Instance::new(&mut store, module, &wasmer::imports! {}).unwrap();
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap()
        .call(&mut store)
        .unwrap();
    assert_eq!(
        answer, m.seed as i32,
        "module {} is not what was saved",
        m.index
    );
}

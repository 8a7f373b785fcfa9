//! The caches `wasmpak demo` compares: the pack, and what its users have today: the
//! `wasmer-cache` crate's `FileSystemCache` (what `wasmer run` uses) and, in builds with the
//! `wasix` feature, wasix's `FileSystemCache` (what wasix runtimes use). Each is driven the way
//! its users drive it.

use std::path::Path;

use wasmer::{Engine, Module};
use wasmpak::{ModuleCache, ModuleHash, PackCache};

/// One cache of the comparison.
pub enum DemoCache {
    /// A fresh `PackCache` is a freshly started process's.
    Pack(PackCache),
    WasmerCache(wasmer_cache::FileSystemCache),
    #[cfg(feature = "wasix")]
    Wasix(wasmer_wasix::runtime::module_cache::FileSystemCache),
}

/// The peers this build compares with: their column titles and directories under `root`.
pub fn peers() -> Vec<(&'static str, &'static str)> {
    let mut peers = vec![("WASMER-CACHE", "wasmer-cache")];
    if cfg!(feature = "wasix") {
        peers.push(("WASIX CACHE", "wasix"));
    }
    peers
}

impl DemoCache {
    /// The peer cache named `dir_name` (see [`peers`]) in `root`.
    pub fn peer(root: &Path, dir_name: &str) -> Result<DemoCache, String> {
        let dir = root.join(dir_name);
        match dir_name {
            "wasmer-cache" => wasmer_cache::FileSystemCache::new(&dir)
                .map(DemoCache::WasmerCache)
                .map_err(|e| format!("{}: {e}", dir.display())),
            #[cfg(feature = "wasix")]
            "wasix" => {
                use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
                let tasks = TokioTaskManager::new(tokio::runtime::Handle::current());
                Ok(DemoCache::Wasix(
                    wasmer_wasix::runtime::module_cache::FileSystemCache::new(
                        dir,
                        std::sync::Arc::new(tasks),
                    ),
                ))
            }
            other => Err(format!("unknown cache {other}")),
        }
    }

    pub async fn save(
        &mut self,
        key: ModuleHash,
        wasm: &[u8],
        engine: &Engine,
        module: &Module,
    ) -> Result<(), String> {
        match self {
            DemoCache::Pack(cache) => cache
                .save(key, engine, module)
                .await
                .map_err(|e| e.to_string()),
            DemoCache::WasmerCache(cache) => {
                use wasmer_cache::Cache;
                cache
                    .store(wasmer_cache::Hash::generate(wasm), module)
                    .map_err(|e| e.to_string())
            }
            #[cfg(feature = "wasix")]
            DemoCache::Wasix(cache) => {
                use wasmer_wasix::runtime::module_cache::ModuleCache as _;
                cache
                    .save(key, engine, module)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub async fn load(
        &self,
        key: ModuleHash,
        wasm: &[u8],
        engine: &Engine,
    ) -> Result<Module, String> {
        match self {
            DemoCache::Pack(cache) => cache.load(key, engine).await.map_err(|e| e.to_string()),
            DemoCache::WasmerCache(cache) => {
                load_from_wasmer_cache(cache, engine, wasmer_cache::Hash::generate(wasm))
            }
            #[cfg(feature = "wasix")]
            DemoCache::Wasix(cache) => {
                use wasmer_wasix::runtime::module_cache::ModuleCache as _;
                cache.load(key, engine).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// `wasmer_cache::Cache::load`, whose contract is unsafe: the peer's own API, called the way
/// its users call it, because that is what the comparison measures.
#[allow(unsafe_code)]
fn load_from_wasmer_cache(
    cache: &wasmer_cache::FileSystemCache,
    engine: &Engine,
    key: wasmer_cache::Hash,
) -> Result<Module, String> {
    use wasmer_cache::Cache;
    // SAFETY: the demo's temporary directory holds only what `save` stored moments ago with
    // this engine: `Module::serialize` output of an engine of this configuration, which is
    // what `Cache::load` requires (it hands the file to `Module::deserialize_from_file`).
    unsafe { cache.load(engine, key) }.map_err(|e| e.to_string())
}

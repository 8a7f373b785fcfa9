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

/// What each cache looks a module up by. A runtime has its keys before it asks a cache, so
/// they are computed before any load is timed: the pack and wasix's cache take wasmer's
/// `ModuleHash` (SHA-256 of the WebAssembly), `wasmer-cache` a BLAKE3 hash of it.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    /// The pack's and wasix's key.
    pub module: ModuleHash,
    /// `wasmer-cache`'s key.
    pub blake3: wasmer_cache::Hash,
}

impl Keys {
    /// The keys of the module `wasm`.
    pub fn of(wasm: &[u8]) -> Keys {
        Keys {
            module: ModuleHash::new(wasm),
            blake3: wasmer_cache::Hash::generate(wasm),
        }
    }

    /// The keys as a worker's spec spells them: `MODULE:BLAKE3`, both in hex.
    pub fn to_spec(self) -> String {
        format!("{}:{}", self.module, self.blake3)
    }

    /// The keys `spec` spells (see [`to_spec`](Self::to_spec)).
    pub fn from_spec(spec: &str) -> Result<Keys, String> {
        let (module, blake3) = spec
            .split_once(':')
            .ok_or_else(|| format!("{spec:?} is not MODULE:BLAKE3"))?;
        let module = module.parse::<wasmpak::Key>().map_err(|e| e.to_string())?;
        Ok(Keys {
            module: ModuleHash::from_bytes(*module.as_bytes()),
            blake3: blake3.parse().map_err(|e| format!("{blake3:?}: {e}"))?,
        })
    }
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
        keys: &Keys,
        engine: &Engine,
        module: &Module,
    ) -> Result<(), String> {
        match self {
            DemoCache::Pack(cache) => cache
                .save(keys.module, engine, module)
                .await
                .map_err(|e| e.to_string()),
            DemoCache::WasmerCache(cache) => {
                use wasmer_cache::Cache;
                cache.store(keys.blake3, module).map_err(|e| e.to_string())
            }
            #[cfg(feature = "wasix")]
            DemoCache::Wasix(cache) => {
                use wasmer_wasix::runtime::module_cache::ModuleCache as _;
                cache
                    .save(keys.module, engine, module)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub async fn load(&self, keys: &Keys, engine: &Engine) -> Result<Module, String> {
        match self {
            DemoCache::Pack(cache) => cache
                .load(keys.module, engine)
                .await
                .map_err(|e| e.to_string()),
            DemoCache::WasmerCache(cache) => load_from_wasmer_cache(cache, engine, keys.blake3),
            #[cfg(feature = "wasix")]
            DemoCache::Wasix(cache) => {
                use wasmer_wasix::runtime::module_cache::ModuleCache as _;
                cache
                    .load(keys.module, engine)
                    .await
                    .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_travel_to_a_worker_unchanged() {
        let keys = Keys::of(b"\0asm\x01\0\0\0");
        let back = Keys::from_spec(&keys.to_spec()).unwrap();
        assert_eq!(back.module, keys.module);
        assert_eq!(back.blake3, keys.blake3);
        for bad in ["", "nocolon", ":", "00:11", &format!("{}:zz", keys.module)] {
            assert!(Keys::from_spec(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

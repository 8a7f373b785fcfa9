//! The caches compared, each used exactly as its users use it.
//!
//! - `pack`: `PackCache`, loads through our `ModuleCache` trait inside a tokio runtime.
//! - `shared+pack`: `SharedCache::default().with_fallback(PackCache)`, the wasix composition.
//! - `wasix-fs`: `wasmer_wasix::runtime::module_cache::FileSystemCache`, what wasix users have:
//!   one file per module under `{dir}/{engine}-{format}-v{abi}/`, loaded on its own tokio
//!   runtime's blocking pool with `Module::deserialize_from_file` (mmap + rkyv validation of
//!   the metadata, no checksum).
//! - `wasmer-cache`: `wasmer_cache::FileSystemCache` 7.4, what `wasmer run` uses: one file per
//!   BLAKE3 key, `Module::deserialize_from_file` (the same mmap), synchronously.
//! - `compile`: `Module::new` from the wasm bytes, the ceiling.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmer::{Engine, Module};
use wasmer_cache::Cache as _;
use wasmer_wasix::runtime::module_cache::{
    FileSystemCache as WasixFileSystemCache, ModuleCache as WasixModuleCache,
};
use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
use wasmpak::{Durability, ModuleCache, PackCache, SharedCache};

use crate::corpus::CorpusModule;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Pack,
    SharedPack,
    WasixFs,
    WasmerCache,
    Compile,
    /// Saves only: the pack without fsync, as `wasix-fs` and `wasmer-cache` write.
    PackNoSync,
}

pub const LOADERS: [Variant; 5] = [
    Variant::Pack,
    Variant::SharedPack,
    Variant::WasixFs,
    Variant::WasmerCache,
    Variant::Compile,
];
pub const CACHES: [Variant; 4] = [
    Variant::Pack,
    Variant::SharedPack,
    Variant::WasixFs,
    Variant::WasmerCache,
];

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Pack => "pack",
            Variant::SharedPack => "shared+pack",
            Variant::WasixFs => "wasix-fs",
            Variant::WasmerCache => "wasmer-cache",
            Variant::Compile => "compile",
            Variant::PackNoSync => "pack (no fsync)",
        }
    }

    pub fn parse(name: &str) -> Variant {
        [
            Variant::Pack,
            Variant::SharedPack,
            Variant::WasixFs,
            Variant::WasmerCache,
            Variant::Compile,
            Variant::PackNoSync,
        ]
        .into_iter()
        .find(|v| v.name() == name)
        .unwrap_or_else(|| panic!("unknown variant {name}"))
    }

    /// Where this variant keeps the corpus under `root` (shared+pack reads pack's files).
    pub fn dir(self, root: &Path) -> PathBuf {
        match self {
            Variant::Pack | Variant::SharedPack | Variant::PackNoSync => root.join("pack"),
            Variant::WasixFs => root.join("wasix-fs"),
            Variant::WasmerCache => root.join("wasmer-cache"),
            Variant::Compile => root.join("compile"),
        }
    }
}

/// A cache as a worker holds it.
pub enum Opened {
    Pack(PackCache),
    SharedPack(wasmpak::FallbackCache<SharedCache, PackCache>),
    WasixFs(WasixFileSystemCache),
    WasmerCache(wasmer_cache::FileSystemCache),
    Compile,
}

impl Opened {
    /// Opens the variant's cache in `dir` the way its users do (nothing is read yet).
    pub fn new(variant: Variant, dir: &Path, tokio: &tokio::runtime::Runtime) -> Opened {
        match variant {
            Variant::Pack => Opened::Pack(PackCache::new(dir)),
            Variant::PackNoSync => {
                Opened::Pack(PackCache::builder(dir).durability(Durability::None).build())
            }
            Variant::SharedPack => Opened::SharedPack(ModuleCache::with_fallback(
                SharedCache::default(),
                PackCache::new(dir),
            )),
            Variant::WasixFs => Opened::WasixFs(WasixFileSystemCache::new(
                dir,
                Arc::new(TokioTaskManager::new(tokio.handle().clone())),
            )),
            Variant::WasmerCache => {
                Opened::WasmerCache(wasmer_cache::FileSystemCache::new(dir).unwrap())
            }
            Variant::Compile => Opened::Compile,
        }
    }

    /// Loads `m`; `wasm` is read (untimed, before) for `compile` only.
    pub fn load(
        &self,
        tokio: &tokio::runtime::Handle,
        engine: &Engine,
        m: &CorpusModule,
        wasm: Option<&[u8]>,
    ) -> Module {
        match self {
            Opened::Pack(cache) => tokio.block_on(ModuleCache::load(cache, m.key, engine)),
            Opened::SharedPack(cache) => tokio.block_on(ModuleCache::load(cache, m.key, engine)),
            Opened::WasixFs(cache) => tokio
                .block_on(WasixModuleCache::load(cache, m.key, engine))
                .map_err(wasmpak::CacheError::other),
            // SAFETY: the directory holds only what `save` below stored: `Module::serialize`
            // output of an engine with this configuration.
            Opened::WasmerCache(cache) => Ok(unsafe { cache.load(engine, m.blake3) }.unwrap()),
            Opened::Compile => Ok(Module::new(engine, wasm.unwrap()).unwrap()),
        }
        .unwrap_or_else(|e| panic!("loading module {}: {e}", m.index))
    }

    /// Saves `module` (corpus module `m`).
    pub fn save(
        &mut self,
        tokio: &tokio::runtime::Handle,
        engine: &Engine,
        m: &CorpusModule,
        module: &Module,
    ) {
        match self {
            Opened::Pack(cache) => tokio
                .block_on(ModuleCache::save(cache, m.key, engine, module))
                .unwrap(),
            Opened::SharedPack(cache) => tokio
                .block_on(ModuleCache::save(cache, m.key, engine, module))
                .unwrap(),
            Opened::WasixFs(cache) => tokio
                .block_on(WasixModuleCache::save(cache, m.key, engine, module))
                .unwrap(),
            Opened::WasmerCache(cache) => cache.store(m.blake3, module).unwrap(),
            Opened::Compile => {}
        }
    }

    /// The pack cache's counters, where there is one.
    pub fn pack_stats(&self) -> Option<wasmpak::CacheStats> {
        match self {
            Opened::Pack(cache) => Some(cache.stats()),
            Opened::SharedPack(cache) => Some(cache.fallback().stats()),
            _ => None,
        }
    }
}

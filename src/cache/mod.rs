//! Caches of compiled wasmer modules, mirroring (and improving on) wasix's `module_cache`.
//!
//! # Assumptions
//!
//! - A key is a [`ModuleHash`], the SHA-256 of a module's wasm bytes: one key names one wasm
//!   binary, so whatever is saved under a key is "the same" module for a given engine.
//! - [`ModuleCache::load`] is called far more often than [`ModuleCache::save`], so caches
//!   favour fast, concurrent loads.
//! - A compiled module is only valid for an engine with the same compiler, wasmer artifact
//!   layout and target triple, and at least the CPU features it was compiled for. Every cache
//!   keys its entries by that [`EngineIdentity`] (the file system cache by wasix's directory
//!   layout); [`PackCache`] also loads from packs built for lower CPU levels.
//! - A stale or damaged entry is a miss, never an error that keeps failing on later loads.
//!
//! # The caches
//!
//! - [`PackCache`]: the reason this crate exists: every module of an engine in one
//!   memory-mapped, checksummed pack file, loaded zero-copy and memoized per process.
//! - [`SharedCache`]: in memory, shared by all threads of the process.
//! - [`ThreadLocalCache`]: in memory, one per thread, no locking.
//! - [`FileSystemCache`]: one file per module in a directory, wasix-compatible.
//! - [`FallbackCache`]: chains two caches; built with [`ModuleCache::with_fallback`].
//! - `ObjectStoreCache` (feature `object-store`): one object per module in S3, GCS, Azure or
//!   any other `object_store` backend, the tier a fleet of nodes shares.
//!
//! # Where things are
//!
//! `types.rs` holds the trait, `error.rs` its error ([`CacheError`], [`CacheErrorKind`]),
//! `artifact.rs` the one `unsafe` deserialization every cache goes through (and
//! [`load_module`], the same for a tool holding a [`Pack`](crate::Pack)), and each
//! implementor has its own file or folder. `conformance.rs` (feature `conformance`) is the set
//! of checks every implementor runs in its tests. Engine identities live in `src/engine`, the
//! wasix glue in `src/wasix`.
//!
//! None of them needs a tokio runtime: inside one, blocking file work moves to tokio's
//! blocking pool (or, for `PackCache`'s loads, runs in place: see its documentation);
//! outside, it runs inline. With the `wasix` feature each also implements
//! `wasmer_wasix::runtime::module_cache::ModuleCache`.
//!
//! # Example
//!
//! A memory cache in front of a directory: the first load after a restart reads the file and
//! promotes the module into memory.
//!
//! ```
//! use wasmer::{Engine, Module};
//! use wasmpak::{FileSystemCache, ModuleCache, ModuleHash, SharedCache};
//!
//! let dir = tempfile::tempdir()?;
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let engine = Engine::default();
//!     let wat = r#"(module (func (export "answer") (result i32) i32.const 42))"#;
//!     let wasm = wasmer::wat2wasm(wat.as_bytes())?;
//!     let key = ModuleHash::new(&wasm);
//!
//!     let cache = SharedCache::default().with_fallback(FileSystemCache::new(dir.path()));
//!     let module = match cache.load(key, &engine).await {
//!         Ok(module) => module,
//!         Err(error) if error.is_not_found() => {
//!             let module = Module::new(&engine, &wasm)?;
//!             cache.save(key, &engine, &module).await?;
//!             module
//!         }
//!         Err(error) => return Err(error.into()),
//!     };
//!     assert!(module.exports().any(|export| export.name() == "answer"));
//!
//!     // A new process: an empty memory cache over the same directory.
//!     let cache = SharedCache::default().with_fallback(FileSystemCache::new(dir.path()));
//!     let loaded = cache.load(key, &engine).await?;
//!     assert!(loaded.exports().any(|export| export.name() == "answer"));
//!     assert_eq!(cache.primary().len(), 1);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod artifact;
mod blocking;
mod error;
mod fallback;
mod fallback_base;
mod filesystem;
mod shared;
mod thread_local;
mod types;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
pub(crate) mod test_support;

mod memo;
#[cfg(feature = "object-store")]
mod object_store;
mod pack_cache;
#[cfg(feature = "wasmer-cache")]
mod wasmer_cache;

#[cfg(feature = "object-store")]
pub use self::object_store::{
    ObjectStoreCache, ObjectStoreCacheBuilder, ObjectStoreStats, RemoteError, RemoteErrorKind,
    StoreUrl,
};
pub use artifact::load_module;
pub(crate) use error::CacheResult;
pub use error::{CacheError, CacheErrorKind};
pub use fallback_base::FallbackCache;
pub use filesystem::FileSystemCache;
pub use pack_cache::{CacheStats, PackCache, PackCacheBuilder};
pub use shared::SharedCache;
pub use thread_local::ThreadLocalCache;
pub use types::{ModuleCache, ModuleHash};
#[cfg(feature = "wasmer-cache")]
pub use wasmer_cache::WasmerCache;

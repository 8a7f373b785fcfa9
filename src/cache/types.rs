//! The [`ModuleCache`] trait.
//!
//! Assumptions: a [`ModuleHash`] names exactly one wasm binary, so the same key always stands
//! for the "same" module, and [`ModuleCache::load`] is called far more often than
//! [`ModuleCache::save`]. The trait mirrors `wasmer_wasix::runtime::module_cache::ModuleCache`
//! so our caches can be handed to wasix unchanged (see the `wasix` feature).

use std::fmt::Debug;
use std::ops::Deref;

use wasmer::{Engine, Module};
pub use wasmer_types::ModuleHash;

use super::{CacheError, CacheResult, FallbackCache};

/// A cache of compiled WebAssembly modules, keyed by the hash of the wasm bytes.
///
/// Implementations must keep modules built by different engines apart (see
/// [`EngineIdentity`](crate::EngineIdentity)): a module compiled for one CPU or wasmer
/// version must never be handed to another. A stale or unreadable entry is a miss
/// ([`CacheError::NotFound`]), never an error that keeps failing on later loads.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wasmer::{Engine, Module};
/// use wasmpak::{ModuleCache, ModuleHash, SharedCache};
///
/// let runtime = tokio::runtime::Runtime::new()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let module = Module::new(&engine, &wasm)?;
///
///     let cache: Arc<dyn ModuleCache + Send + Sync> = Arc::new(SharedCache::new());
///     assert!(!cache.contains(key, &engine).await?);
///     cache.save(key, &engine, &module).await?;
///     assert_eq!(cache.load(key, &engine).await?, module);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait::async_trait]
pub trait ModuleCache: Debug {
    /// Loads the module saved under `key` for `engine`, or [`CacheError::NotFound`].
    async fn load(&self, key: ModuleHash, engine: &Engine) -> Result<Module, CacheError>;

    /// Whether a module is saved under `key` for `engine`. A `true` is a hint, not a promise
    /// that [`load`](ModuleCache::load) succeeds: an entry may be stale or removed meanwhile.
    async fn contains(&self, key: ModuleHash, engine: &Engine) -> Result<bool, CacheError>;

    /// Saves `module`, which must have been compiled by `engine` from the wasm that `key`
    /// hashes, replacing any entry already under `key`.
    async fn save(
        &self,
        key: ModuleHash,
        engine: &Engine,
        module: &Module,
    ) -> Result<(), CacheError>;

    /// Chains `other` behind this cache: lookups that miss here are tried there, and its hits
    /// are promoted into this cache. `other` is assumed to be slower.
    fn with_fallback<C: ModuleCache>(self, other: C) -> FallbackCache<Self, C>
    where
        Self: Sized,
    {
        FallbackCache::new(self, other)
    }
}

// Lets `Arc<dyn ModuleCache + Send + Sync>`, `Box<..>` and `&C` be used wherever a cache is.
#[async_trait::async_trait]
impl<D, C> ModuleCache for D
where
    D: Deref<Target = C> + Debug + Send + Sync,
    C: ModuleCache + Send + Sync + ?Sized,
{
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        (**self).load(key, engine).await
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        (**self).contains(key, engine).await
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        (**self).save(key, engine, module).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::SharedCache;
    use crate::cache::conformance::{self, MemoryOnly};
    use crate::cache::test_support::{answer, compiled, engine, key};

    #[test]
    fn a_shared_trait_object_conforms_through_the_blanket_impl() {
        let cache: Arc<dyn ModuleCache + Send + Sync> = Arc::new(SharedCache::new());
        let report = conformance::run(&MemoryOnly(cache)).unwrap();
        assert_eq!(report.skipped, ["corruption"]);
    }

    #[tokio::test]
    async fn box_dyn_cache_round_trips_and_chains() {
        let engine = engine();
        let boxed: Box<dyn ModuleCache + Send + Sync> = Box::new(SharedCache::new());
        let shared = SharedCache::new();
        // The blanket impl makes a boxed trait object a cache, so it chains like any other.
        let cache = boxed.with_fallback(shared.clone());
        shared.save(key(2), engine, &compiled(2)).await.unwrap();
        assert_eq!(
            answer(&cache.load(key(2), engine).await.unwrap(), engine),
            2
        );
        assert!(cache.primary().contains(key(2), engine).await.unwrap());
    }
}

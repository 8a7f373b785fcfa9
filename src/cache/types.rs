//! The [`ModuleCache`] trait and its error type.
//!
//! Assumptions: a [`ModuleHash`] names exactly one wasm binary, so the same key always stands
//! for the "same" module, and [`ModuleCache::load`] is called far more often than
//! [`ModuleCache::save`]. The trait mirrors `wasmer_wasix::runtime::module_cache::ModuleCache`
//! so our caches can be handed to wasix unchanged (see the `wasix` feature).

use std::fmt::Debug;
use std::ops::Deref;
use std::path::PathBuf;

use wasmer::{Engine, Module};
pub use wasmer_types::ModuleHash;

use super::FallbackCache;

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
    async fn load(&self, key: ModuleHash, engine: &Engine) -> Result<Module, CacheError> {
        (**self).load(key, engine).await
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> Result<bool, CacheError> {
        (**self).contains(key, engine).await
    }

    async fn save(
        &self,
        key: ModuleHash,
        engine: &Engine,
        module: &Module,
    ) -> Result<(), CacheError> {
        (**self).save(key, engine, module).await
    }
}

/// What went wrong in a [`ModuleCache`] operation.
///
/// # Example
///
/// ```
/// use std::path::PathBuf;
/// use wasmpak::CacheError;
///
/// let err = CacheError::FileRead {
///     path: PathBuf::from("cache/module.bin"),
///     error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
/// };
/// assert!(err.to_string().starts_with("failed to read cache/module.bin: "));
/// assert!(!err.is_not_found());
/// assert!(CacheError::NotFound.is_not_found());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache has no usable module under the key: a plain miss.
    #[error("module not found in the cache")]
    NotFound,
    /// The module could not be serialized.
    #[error("failed to serialize the module: {0}")]
    Serialize(#[from] wasmer::SerializeError),
    /// The module could not be deserialized.
    #[error("failed to deserialize the module: {0}")]
    Deserialize(#[from] wasmer::DeserializeError),
    /// A cache file could not be read.
    #[error("failed to read {}: {error}", path.display())]
    FileRead {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// A cache file could not be written.
    #[error("failed to write {}: {error}", path.display())]
    FileWrite {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// Any other failure, such as one from a custom cache.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl CacheError {
    /// Wraps any error as [`CacheError::Other`].
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> CacheError {
        CacheError::Other(Box::new(error))
    }

    /// Whether this is a plain miss rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CacheError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::Arc;

    use super::*;
    use crate::cache::SharedCache;
    use crate::cache::test_support::{answer, compiled, engine, key};

    #[tokio::test]
    async fn arc_dyn_cache_round_trips() {
        let engine = engine();
        let cache: Arc<dyn ModuleCache + Send + Sync> = Arc::new(SharedCache::new());
        assert!(!cache.contains(key(1), engine).await.unwrap());
        cache.save(key(1), engine, &compiled(1)).await.unwrap();
        assert!(cache.contains(key(1), engine).await.unwrap());
        assert_eq!(
            answer(&cache.load(key(1), engine).await.unwrap(), engine),
            1
        );
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

    #[test]
    fn errors_name_what_failed() {
        let err = CacheError::FileWrite {
            path: PathBuf::from("dir/x.bin"),
            error: std::io::Error::other("disk full"),
        };
        assert_eq!(err.to_string(), "failed to write dir/x.bin: disk full");
        assert!(err.source().is_some());
        let other = CacheError::other(std::io::Error::other("boom"));
        assert_eq!(other.to_string(), "boom");
        assert!(!other.is_not_found());
        let de = CacheError::from(wasmer::DeserializeError::Generic("bad".into()));
        assert_eq!(de.to_string(), "failed to deserialize the module: bad");
    }
}

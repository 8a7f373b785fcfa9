//! Our caches as wasix module caches, so a wasix runtime can use them unchanged.
//!
//! Assumptions: wasix's `ModuleCache` trait has the same three operations and the same
//! meaning as ours, and its `CacheError` has a variant for each of ours, so forwarding
//! loses nothing. Both traits have `load`, `contains` and `save` methods: code that imports
//! both must call them as `ModuleCache::load(&cache, ..)` to say which it means.

use wasmer_wasix::runtime::module_cache as wasix;

use crate::cache::{CacheError, FallbackCache, ModuleCache};

impl From<CacheError> for wasix::CacheError {
    fn from(error: CacheError) -> Self {
        match error {
            CacheError::NotFound => wasix::CacheError::NotFound,
            CacheError::Serialize(error) => wasix::CacheError::Serialize(error),
            CacheError::Deserialize(error) => wasix::CacheError::Deserialize(error),
            CacheError::FileRead { path, error } => wasix::CacheError::FileRead { path, error },
            CacheError::FileWrite { path, error } => wasix::CacheError::FileWrite { path, error },
            CacheError::Other(error) => wasix::CacheError::Other(error),
        }
    }
}

/// Implements `wasmer_wasix::runtime::module_cache::ModuleCache` for a type that implements
/// our [`ModuleCache`](crate::ModuleCache), by forwarding each call. Generic types list
/// their parameters and bounds in brackets:
/// `impl_wasix_module_cache!(impl [P: Bounds, F: Bounds] FallbackCache<P, F>);`
macro_rules! impl_wasix_module_cache {
    // The generic arm comes first: `impl [` would otherwise start parsing as an `impl` type.
    (impl [$($generics:tt)*] $ty:ty) => {
        #[::async_trait::async_trait]
        impl<$($generics)*> ::wasmer_wasix::runtime::module_cache::ModuleCache for $ty {
            async fn load(
                &self,
                key: $crate::ModuleHash,
                engine: &::wasmer::Engine,
            ) -> Result<::wasmer::Module, ::wasmer_wasix::runtime::module_cache::CacheError> {
                Ok($crate::ModuleCache::load(self, key, engine).await?)
            }

            async fn contains(
                &self,
                key: $crate::ModuleHash,
                engine: &::wasmer::Engine,
            ) -> Result<bool, ::wasmer_wasix::runtime::module_cache::CacheError> {
                Ok($crate::ModuleCache::contains(self, key, engine).await?)
            }

            async fn save(
                &self,
                key: $crate::ModuleHash,
                engine: &::wasmer::Engine,
                module: &::wasmer::Module,
            ) -> Result<(), ::wasmer_wasix::runtime::module_cache::CacheError> {
                Ok($crate::ModuleCache::save(self, key, engine, module).await?)
            }
        }
    };
    ($ty:ty) => {
        impl_wasix_module_cache!(impl [] $ty);
    };
}

impl_wasix_module_cache!(crate::SharedCache);
impl_wasix_module_cache!(crate::ThreadLocalCache);
impl_wasix_module_cache!(crate::FileSystemCache);
impl_wasix_module_cache!(crate::PackCache);
#[cfg(feature = "object-store")]
impl_wasix_module_cache!(crate::ObjectStoreCache);
impl_wasix_module_cache!(impl [
    P: ModuleCache + Send + Sync,
    F: ModuleCache + Send + Sync
] FallbackCache<P, F>);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::wasix;
    use crate::cache::test_support::{answer, compiled, engine, key};
    use crate::cache::{CacheError, FileSystemCache, SharedCache};

    type DynWasixCache = Arc<dyn wasix::ModuleCache + Send + Sync>;

    #[tokio::test]
    async fn shared_cache_round_trips_as_a_wasix_cache() {
        let engine = engine();
        let cache: DynWasixCache = Arc::new(SharedCache::new());
        let miss = cache.load(key(1), engine).await.unwrap_err();
        assert!(matches!(miss, wasix::CacheError::NotFound), "{miss}");
        assert!(!cache.contains(key(1), engine).await.unwrap());
        cache.save(key(1), engine, &compiled(1)).await.unwrap();
        assert!(cache.contains(key(1), engine).await.unwrap());
        assert_eq!(
            answer(&cache.load(key(1), engine).await.unwrap(), engine),
            1
        );
    }

    #[tokio::test]
    async fn pack_cache_round_trips_as_a_wasix_cache() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache: DynWasixCache = Arc::new(crate::PackCache::new(temp.path()));
        assert!(matches!(
            cache.load(key(3), engine).await,
            Err(wasix::CacheError::NotFound)
        ));
        cache.save(key(3), engine, &compiled(3)).await.unwrap();
        // A new cache over the same directory loads it from the pack.
        let cache: DynWasixCache = Arc::new(crate::PackCache::new(temp.path()));
        assert!(cache.contains(key(3), engine).await.unwrap());
        let loaded = cache.load(key(3), engine).await.unwrap();
        assert_eq!(answer(&loaded, engine), 3);
        assert_eq!(
            loaded.serialize().unwrap(),
            compiled(3).serialize().unwrap()
        );
    }

    #[tokio::test]
    async fn chained_caches_work_as_a_wasix_cache() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let disk = FileSystemCache::new(temp.path());
        crate::ModuleCache::save(&disk, key(2), engine, &compiled(2))
            .await
            .unwrap();
        let chained = crate::ModuleCache::with_fallback(SharedCache::new(), disk);
        let cache: DynWasixCache = Arc::new(chained);
        assert_eq!(
            answer(&cache.load(key(2), engine).await.unwrap(), engine),
            2
        );
    }

    #[test]
    fn errors_map_to_their_wasix_counterparts() {
        let read = CacheError::FileRead {
            path: "x.bin".into(),
            error: std::io::Error::other("eio"),
        };
        let mapped = wasix::CacheError::from(read);
        assert!(
            matches!(&mapped, wasix::CacheError::FileRead { path, .. } if path.ends_with("x.bin"))
        );
        let other = wasix::CacheError::from(CacheError::other(std::io::Error::other("boom")));
        assert_eq!(other.to_string(), "boom");
        assert!(matches!(
            wasix::CacheError::from(CacheError::NotFound),
            wasix::CacheError::NotFound
        ));
    }
}

//! Chaining two caches: a fast primary in front of a slower fallback.
//!
//! Assumptions: the fallback is much slower than the primary (memory in front of disk, disk
//! in front of network), so a module found in the fallback is worth copying into the primary.
//! A tier that fails is logged and skipped: one broken tier must not take the cache down.

use wasmer::{Engine, Module};

use super::fallback_base::FallbackCache;
use super::{CacheError, CacheResult, ModuleCache, ModuleHash};

#[async_trait::async_trait]
impl<Primary, Fallback> ModuleCache for FallbackCache<Primary, Fallback>
where
    Primary: ModuleCache + Send + Sync,
    Fallback: ModuleCache + Send + Sync,
{
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        match self.primary.load(key, engine).await {
            Ok(module) => return Ok(module),
            Err(CacheError::NotFound) => {}
            Err(error) => tracing::warn!(
                %key,
                error = &error as &dyn std::error::Error,
                "primary cache failed to load a module, trying the fallback",
            ),
        }
        let module = self.fallback.load(key, engine).await?;
        if let Err(error) = self.primary.save(key, engine, &module).await {
            tracing::warn!(
                %key,
                error = &error as &dyn std::error::Error,
                "failed to promote a module into the primary cache",
            );
        }
        Ok(module)
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        match self.primary.contains(key, engine).await {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                %key,
                error = &error as &dyn std::error::Error,
                "primary cache failed to check for a module, asking the fallback",
            ),
        }
        self.fallback.contains(key, engine).await
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        // Both tiers are written even if the first fails, so a broken primary still lets
        // the module reach the slower, longer-lived fallback.
        let primary = self.primary.save(key, engine, module).await;
        let fallback = self.fallback.save(key, engine, module).await;
        primary.and(fallback)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::cache::conformance::{self, CHECKS, CacheUnderTest};
    use crate::cache::test_support::{
        compiled, engine, key, loaded_answer, misses, poll_ready, save_numbered, tear,
    };
    use crate::cache::{FileSystemCache, SharedCache};

    /// Memory in front of files under the conformance checks; damage is a torn file.
    struct MemoryOverFiles(
        tempfile::TempDir,
        FallbackCache<SharedCache, FileSystemCache>,
    );

    impl CacheUnderTest for MemoryOverFiles {
        type Cache = FallbackCache<SharedCache, FileSystemCache>;

        fn cache(&self) -> &Self::Cache {
            &self.1
        }

        fn reopen(&self) -> Option<Self::Cache> {
            Some(SharedCache::new().with_fallback(FileSystemCache::new(self.0.path())))
        }

        fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool {
            tear(&self.1.fallback().path(key, engine));
            true
        }
    }

    #[test]
    fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SharedCache::new().with_fallback(FileSystemCache::new(dir.path()));
        let report = conformance::run(&MemoryOverFiles(dir, cache)).unwrap();
        assert_eq!(report.ran, CHECKS);
    }

    /// A tier that fails every operation, counting the calls.
    #[derive(Debug, Default)]
    struct Broken {
        calls: AtomicUsize,
    }

    impl Broken {
        fn fail(&self, what: &str) -> CacheError {
            self.calls.fetch_add(1, Ordering::SeqCst);
            CacheError::other(std::io::Error::other(format!("broken {what}")))
        }
    }

    #[async_trait::async_trait]
    impl ModuleCache for Broken {
        async fn load(&self, _: ModuleHash, _: &Engine) -> Result<Module, CacheError> {
            Err(self.fail("load"))
        }

        async fn contains(&self, _: ModuleHash, _: &Engine) -> Result<bool, CacheError> {
            Err(self.fail("contains"))
        }

        async fn save(&self, _: ModuleHash, _: &Engine, _: &Module) -> Result<(), CacheError> {
            Err(self.fail("save"))
        }
    }

    #[tokio::test]
    async fn primary_hit_leaves_the_fallback_alone() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(Broken::default());
        save_numbered(cache.primary(), 3, engine).await;
        assert_eq!(loaded_answer(&cache, 3, engine).await, 3);
        assert!(cache.contains(key(3), engine).await.unwrap());
        assert_eq!(cache.fallback().calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fallback_hit_is_promoted() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(SharedCache::new());
        save_numbered(cache.fallback(), 4, engine).await;
        assert!(!cache.primary().contains(key(4), engine).await.unwrap());
        assert!(cache.contains(key(4), engine).await.unwrap());
        assert_eq!(loaded_answer(&cache, 4, engine).await, 4);
        let (primary, _) = cache.into_inner();
        assert_eq!(loaded_answer(&primary, 4, engine).await, 4);
    }

    #[test]
    fn miss_everywhere_is_not_found_even_without_a_runtime() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(SharedCache::new());
        assert!(poll_ready(misses(&cache, 5, engine)));
        assert!(!poll_ready(cache.contains(key(5), engine)).unwrap());
    }

    #[tokio::test]
    async fn broken_primary_is_skipped() {
        let engine = engine();
        let cache = Broken::default().with_fallback(SharedCache::new());
        assert!(misses(&cache, 6, engine).await);
        assert!(!cache.contains(key(6), engine).await.unwrap());
        // Saving reports the primary's failure but still reaches the fallback.
        let error = cache.save(key(6), engine, &compiled(6)).await.unwrap_err();
        assert_eq!(error.to_string(), "broken save");
        // Loading falls through to the fallback and survives the failed promotion.
        assert_eq!(loaded_answer(&cache, 6, engine).await, 6);
        assert!(cache.contains(key(6), engine).await.unwrap());
        assert_eq!(cache.primary().calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn broken_fallback_error_is_returned() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(Broken::default());
        let error = cache.load(key(7), engine).await.unwrap_err();
        assert_eq!(error.to_string(), "broken load");
        assert!(cache.contains(key(7), engine).await.is_err());
        let error = cache.save(key(7), engine, &compiled(7)).await.unwrap_err();
        assert_eq!(error.to_string(), "broken save");
        // The primary was saved even though the fallback failed.
        assert!(cache.primary().contains(key(7), engine).await.unwrap());
        assert_eq!(loaded_answer(&cache, 7, engine).await, 7);
    }
}

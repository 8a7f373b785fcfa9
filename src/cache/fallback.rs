//! Chaining two caches: a fast primary in front of a slower fallback.
//!
//! Assumptions: the fallback is much slower than the primary (memory in front of disk, disk
//! in front of network), so a module found in the fallback is worth copying into the primary.
//! A tier that fails is logged and skipped: one broken tier must not take the cache down.

use wasmer::{Engine, Module};

use super::{CacheError, CacheResult, ModuleCache, ModuleHash};

/// Two caches chained: every lookup tries `Primary` first, then `Fallback`; a module found
/// only in the fallback is promoted (saved) into the primary. Usually built with
/// [`ModuleCache::with_fallback`].
///
/// Unlike wasix's `FallbackCache`, an error from the primary does not fail a lookup: it is
/// logged with `tracing::warn!` and the fallback is asked instead.
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmpak::{ModuleCache, ModuleHash, SharedCache, ThreadLocalCache};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let shared = SharedCache::new();
///     shared.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///
///     let cache = ThreadLocalCache::new().with_fallback(shared);
///     assert!(!cache.primary().contains(key, &engine).await?);
///     cache.load(key, &engine).await?; // found in the fallback, promoted
///     assert!(cache.primary().contains(key, &engine).await?);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FallbackCache<Primary, Fallback> {
    primary: Primary,
    fallback: Fallback,
}

impl<Primary, Fallback> FallbackCache<Primary, Fallback> {
    /// Chains `fallback` behind `primary`.
    pub fn new(primary: Primary, fallback: Fallback) -> Self {
        FallbackCache { primary, fallback }
    }

    /// The cache tried first.
    pub fn primary(&self) -> &Primary {
        &self.primary
    }

    /// The cache tried when the primary misses.
    pub fn fallback(&self) -> &Fallback {
        &self.fallback
    }

    /// The two caches, primary first.
    pub fn into_inner(self) -> (Primary, Fallback) {
        (self.primary, self.fallback)
    }
}

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
    use crate::cache::test_support::{answer, compiled, engine, key, poll_ready, tear};
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
        cache
            .primary()
            .save(key(3), engine, &compiled(3))
            .await
            .unwrap();
        assert_eq!(
            answer(&cache.load(key(3), engine).await.unwrap(), engine),
            3
        );
        assert!(cache.contains(key(3), engine).await.unwrap());
        assert_eq!(cache.fallback().calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fallback_hit_is_promoted() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(SharedCache::new());
        cache
            .fallback()
            .save(key(4), engine, &compiled(4))
            .await
            .unwrap();
        assert!(!cache.primary().contains(key(4), engine).await.unwrap());
        assert!(cache.contains(key(4), engine).await.unwrap());
        assert_eq!(
            answer(&cache.load(key(4), engine).await.unwrap(), engine),
            4
        );
        let (primary, _) = cache.into_inner();
        assert_eq!(
            answer(&primary.load(key(4), engine).await.unwrap(), engine),
            4
        );
    }

    #[test]
    fn miss_everywhere_is_not_found_even_without_a_runtime() {
        let engine = engine();
        let cache = SharedCache::new().with_fallback(SharedCache::new());
        assert!(
            poll_ready(cache.load(key(5), engine))
                .unwrap_err()
                .is_not_found()
        );
        assert!(!poll_ready(cache.contains(key(5), engine)).unwrap());
    }

    #[tokio::test]
    async fn broken_primary_is_skipped() {
        let engine = engine();
        let cache = Broken::default().with_fallback(SharedCache::new());
        assert!(cache.load(key(6), engine).await.unwrap_err().is_not_found());
        assert!(!cache.contains(key(6), engine).await.unwrap());
        // Saving reports the primary's failure but still reaches the fallback.
        let error = cache.save(key(6), engine, &compiled(6)).await.unwrap_err();
        assert_eq!(error.to_string(), "broken save");
        // Loading falls through to the fallback and survives the failed promotion.
        assert_eq!(
            answer(&cache.load(key(6), engine).await.unwrap(), engine),
            6
        );
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
        assert_eq!(
            answer(&cache.load(key(7), engine).await.unwrap(), engine),
            7
        );
    }
}

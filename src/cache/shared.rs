//! An in-memory cache shared by every thread of the process.
//!
//! Assumptions: loads vastly outnumber saves, so a `RwLock` lets concurrent loads proceed
//! together and only saves take the lock exclusively. A [`Module`] is a cheap handle to a
//! shared artifact, so handing out clones costs a reference count, not a copy.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use wasmer::{Engine, Module};

use super::{CacheError, CacheResult, ModuleCache, ModuleHash};
use crate::EngineIdentity;

type Modules = HashMap<(ModuleHash, EngineIdentity), Module>;

/// A process-wide in-memory cache, safe to use from any thread. Clones share the same
/// modules. Entries are keyed by module hash and [`EngineIdentity`], so engines for different
/// targets never see each other's modules. Nothing is ever evicted except by
/// [`clear`](SharedCache::clear).
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmpak::{ModuleCache, ModuleHash, SharedCache};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let cache = SharedCache::new();
///     let handle = cache.clone();
///     handle.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///     assert_eq!(cache.len(), 1);
///     assert!(cache.contains(key, &engine).await?);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct SharedCache {
    modules: Arc<RwLock<Modules>>,
}

impl SharedCache {
    /// An empty cache.
    pub fn new() -> SharedCache {
        SharedCache::default()
    }

    /// The number of modules held, across all engines.
    pub fn len(&self) -> usize {
        self.read(|modules| modules.len())
    }

    /// Whether no module is held.
    pub fn is_empty(&self) -> bool {
        self.read(|modules| modules.is_empty())
    }

    /// Drops every module held, for this handle and all its clones.
    pub fn clear(&self) {
        self.write(|modules| modules.clear());
    }

    // A panic while holding the lock cannot leave the map half-updated (every update is a
    // single insert or clear), so a poisoned lock is safe to keep using.
    fn read<T>(&self, f: impl FnOnce(&Modules) -> T) -> T {
        f(&self.modules.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut Modules) -> T) -> T {
        f(&mut self.modules.write().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait::async_trait]
impl ModuleCache for SharedCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        let key = (key, EngineIdentity::of(engine));
        self.read(|modules| modules.get(&key).cloned())
            .ok_or(CacheError::NotFound)
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        let key = (key, EngineIdentity::of(engine));
        Ok(self.read(|modules| modules.contains_key(&key)))
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        let key = (key, EngineIdentity::of(engine));
        self.write(|modules| modules.insert(key, module.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::conformance::{self, MemoryOnly};
    use crate::cache::test_support::{
        answer, compiled, engine, engine_without_cpu_features, key, poll_ready,
    };

    #[test]
    fn conforms() {
        let report = conformance::run(&MemoryOnly(SharedCache::new())).unwrap();
        assert_eq!(
            report.skipped,
            ["corruption"],
            "nothing outside memory to damage"
        );
    }

    #[tokio::test]
    async fn round_trip_and_clear() {
        let engine = engine();
        let cache = SharedCache::new();
        assert!(cache.is_empty());
        assert!(cache.load(key(1), engine).await.unwrap_err().is_not_found());
        cache.save(key(1), engine, &compiled(1)).await.unwrap();
        cache.save(key(2), engine, &compiled(2)).await.unwrap();
        cache.save(key(2), engine, &compiled(2)).await.unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            answer(&cache.load(key(2), engine).await.unwrap(), engine),
            2
        );
        cache.clear();
        assert!(cache.is_empty());
        assert!(!cache.contains(key(2), engine).await.unwrap());
    }

    #[test]
    fn clones_share_modules_across_threads() {
        let engine = engine();
        let cache = SharedCache::default();
        let writer = cache.clone();
        std::thread::spawn(move || poll_ready(writer.save(key(3), engine, &compiled(3))))
            .join()
            .unwrap()
            .unwrap();
        let module = poll_ready(cache.load(key(3), engine)).unwrap();
        assert_eq!(answer(&module, engine), 3);
        assert!(poll_ready(SharedCache::new().load(key(3), engine)).is_err());
    }

    #[test]
    fn engines_with_other_cpu_features_do_not_share_entries() {
        let (engine, other) = (engine(), engine_without_cpu_features());
        let cache = SharedCache::new();
        poll_ready(cache.save(key(4), engine, &compiled(4))).unwrap();
        assert_eq!(other.deterministic_id(), engine.deterministic_id());
        assert!(!poll_ready(cache.contains(key(4), other)).unwrap());
        assert!(poll_ready(cache.load(key(4), other)).is_err());
        assert!(poll_ready(cache.contains(key(4), engine)).unwrap());
    }
}

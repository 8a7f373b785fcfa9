//! An in-memory cache private to each thread.
//!
//! Assumptions: the caller runs each module on the thread that loads it (for example a
//! single-threaded executor, or one worker thread per guest), so a thread never needs to see
//! another thread's modules and lookups need no lock at all. On a multi-threaded runtime
//! a task that moves between threads sees a different cache on each: pair this cache with a
//! [`SharedCache`](crate::SharedCache) or [`FileSystemCache`](crate::FileSystemCache) fallback.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmer::{Engine, Module};

use super::{CacheError, CacheResult, ModuleCache, ModuleHash};
use crate::EngineIdentity;

thread_local! {
    // One map per thread for all instances, told apart by the instance id.
    static MODULES: RefCell<HashMap<(u64, ModuleHash, EngineIdentity), Module>> =
        RefCell::new(HashMap::new());
}

/// A cache whose modules are visible only to the thread that saved them. Each cache made by
/// [`new`](ThreadLocalCache::new) or [`default`](ThreadLocalCache::default) is separate from
/// every other; clones share their original's entries.
///
/// Entries live until their thread exits, even after the cache itself is dropped.
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmpak::{ModuleCache, ModuleHash, ThreadLocalCache};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let cache = ThreadLocalCache::new();
///     cache.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///     assert!(cache.contains(key, &engine).await?);
///     assert!(!ThreadLocalCache::new().contains(key, &engine).await?);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThreadLocalCache {
    id: u64,
}

impl ThreadLocalCache {
    /// A new, empty cache, separate from every other.
    pub fn new() -> ThreadLocalCache {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        ThreadLocalCache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn key(&self, key: ModuleHash, engine: &Engine) -> (u64, ModuleHash, EngineIdentity) {
        (self.id, key, EngineIdentity::of(engine))
    }
}

impl Default for ThreadLocalCache {
    fn default() -> Self {
        ThreadLocalCache::new()
    }
}

#[async_trait::async_trait]
impl ModuleCache for ThreadLocalCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        let key = self.key(key, engine);
        MODULES
            .with_borrow(|modules| modules.get(&key).cloned())
            .ok_or(CacheError::NotFound)
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        let key = self.key(key, engine);
        Ok(MODULES.with_borrow(|modules| modules.contains_key(&key)))
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        let key = self.key(key, engine);
        MODULES.with_borrow_mut(|modules| modules.insert(key, module.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::conformance::{self, MemoryOnly};
    use crate::cache::test_support::{answer, compiled, engine, key, poll_ready};

    #[test]
    fn conforms() {
        let report = conformance::run(&MemoryOnly(ThreadLocalCache::new())).unwrap();
        assert_eq!(
            report.skipped,
            ["corruption"],
            "nothing outside memory to damage"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn clones_share_their_original_s_entries() {
        let engine = engine();
        let cache = ThreadLocalCache::default();
        cache.save(key(1), engine, &compiled(1)).await.unwrap();
        let clone = cache.clone();
        assert_eq!(
            answer(&clone.load(key(1), engine).await.unwrap(), engine),
            1
        );
    }

    #[test]
    fn instances_are_separate() {
        let engine = engine();
        let (one, two) = (ThreadLocalCache::new(), ThreadLocalCache::new());
        poll_ready(one.save(key(2), engine, &compiled(2))).unwrap();
        poll_ready(two.save(key(3), engine, &compiled(3))).unwrap();
        assert!(poll_ready(one.contains(key(2), engine)).unwrap());
        assert!(!poll_ready(one.contains(key(3), engine)).unwrap());
        assert!(!poll_ready(two.contains(key(2), engine)).unwrap());
        assert!(poll_ready(two.contains(key(3), engine)).unwrap());
    }

    #[test]
    fn threads_are_separate() {
        let engine = engine();
        let cache = ThreadLocalCache::new();
        poll_ready(cache.save(key(4), engine, &compiled(4))).unwrap();
        let elsewhere = cache.clone();
        let seen = std::thread::spawn(move || poll_ready(elsewhere.contains(key(4), engine)))
            .join()
            .unwrap()
            .unwrap();
        assert!(!seen);
        assert!(poll_ready(cache.contains(key(4), engine)).unwrap());
    }
}

//! Options for an [`ObjectStoreCache`](super::ObjectStoreCache).

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::object_store::ObjectStore;
use ::object_store::path::Path as ObjectPath;

use super::{Counters, Inner, ObjectStoreCache};

/// Options for an [`ObjectStoreCache`].
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use wasmpak::ObjectStoreCache;
/// use wasmpak::object_store::memory::InMemory;
///
/// let cache = ObjectStoreCache::builder(Arc::new(InMemory::new()), "fleet/modules")
///     .timeout(Duration::from_millis(500))
///     .retry_after(Duration::from_secs(30))
///     .background_saves(false)
///     .build();
/// assert_eq!(cache.prefix().as_ref(), "fleet/modules");
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreCacheBuilder {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) prefix: ObjectPath,
    pub(super) timeout: Duration,
    pub(super) retry_after: Duration,
    pub(super) background_saves: bool,
    pub(super) max_pending_uploads: usize,
}

impl ObjectStoreCacheBuilder {
    /// How long one request (a load, a check, an upload) may take before it counts as a
    /// failure (default 2 s). A load that times out is a miss. The limit covers the whole
    /// transfer: raise it where large modules travel over slow links.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a store that failed or timed out is skipped, every load an instant miss and
    /// every upload dropped (default 10 s). Zero asks it every time.
    pub fn retry_after(mut self, pause: Duration) -> Self {
        self.retry_after = pause;
        self
    }

    /// Whether [`save`](ModuleCache::save) returns at once and uploads in the background
    /// (default on; failures are logged and counted). Off, a save waits for its upload and
    /// returns its error, for jobs that seed the store and must know it worked.
    pub fn background_saves(mut self, background: bool) -> Self {
        self.background_saves = background;
        self
    }

    /// How many background uploads may be pending at once (default 64); a save beyond that
    /// is dropped with a warning rather than piling up memory behind a slow store.
    pub fn max_pending_uploads(mut self, uploads: usize) -> Self {
        self.max_pending_uploads = uploads;
        self
    }

    /// Builds the cache. Infallible and lazy: nothing is sent until the first load or save.
    pub fn build(self) -> ObjectStoreCache {
        ObjectStoreCache {
            inner: Arc::new(Inner {
                store: self.store,
                prefix: self.prefix,
                timeout: self.timeout,
                retry_after: self.retry_after,
                background_saves: self.background_saves,
                max_pending_uploads: self.max_pending_uploads,
                unavailable_until: Mutex::new(None),
                damaged: Mutex::new(HashSet::new()),
                pending: AtomicUsize::new(0),
                idle: tokio::sync::Notify::new(),
                counters: Counters::default(),
            }),
        }
    }
}

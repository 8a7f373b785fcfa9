//! The fleet tier: modules in an object store (S3 and compatibles, GCS, Azure, local files,
//! memory), behind any `Arc<dyn ObjectStore>` from Apache Arrow's `object_store`.
//!
//! Assumptions: the store is shared by every node of a fleet, far slower than a local pack
//! (milliseconds per request at best), and sometimes slow or unreachable. So this tier sits
//! behind the local ones ([`ModuleCache::with_fallback`]), every request is bounded by a
//! timeout, a store that failed is left alone for a while, and nothing it does can fail a
//! load: an unreachable store, like a damaged, foreign or stale object, is a miss with a
//! warning. Keys are content hashes, so two nodes saving one key save the same module: the
//! first write wins (`PutMode::Create`) and the others count it as saved.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::object_store::path::Path as ObjectPath;
use ::object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use bytes::Bytes;
use wasmer::{Engine, Module};

pub use builder::ObjectStoreCacheBuilder;
pub use error::{ObjectStoreStats, RemoteError, RemoteErrorKind};
pub use url::StoreUrl;

mod builder;
mod error;
mod module_object;
mod runtime;
mod url;

use crate::cache::artifact::CheckedArtifact;
use crate::cache::blocking::run_blocking;
use crate::cache::{CacheError, CacheResult, ModuleCache, ModuleHash};
use crate::engine::loadable::{self, Known};
use crate::format::object;
use module_object::{key_bytes, object_in};
use runtime::{AbortOnDrop, runtime};

/// The file name extension of module objects.
const EXTENSION: &str = "wpkm";
/// Artifacts at least this large deserialize on a blocking thread when inside a runtime.
const BLOCKING_DESERIALIZE_BYTES: usize = 1 << 20;

/// A [`ModuleCache`] over an object store: one object per module, shared by a fleet.
///
/// - **Layout.** The module saved under `KEY` for an engine is the object
///   `{prefix}/{identity}/{KEY}.wpkm`, where `{identity}` is
///   [`EngineIdentity::file_stem`](crate::EngineIdentity::file_stem), the name a pack of that engine has; the object holds the
///   artifact behind a small header (identity, key, length, CRC-32: see
///   `wasmpak::format::object`), all checked before wasmer sees a byte.
/// - **Never poisoned.** A damaged, foreign or stale object is a miss, logged and counted in
///   [`ObjectStoreStats::stale`]; the next save of that key replaces it.
/// - **First write wins.** Saves are conditional puts (`PutMode::Create`): when many nodes
///   compile a module at once, one object is written and the others count it as saved.
/// - **Failure isolation.** Every request gives up after [`timeout`](ObjectStoreCacheBuilder::timeout)
///   (2 s by default); a store that failed or timed out is skipped (an instant miss) for
///   [`retry_after`](ObjectStoreCacheBuilder::retry_after). Loads never fail because of the
///   store. Saves upload in the background by default, so a compile never waits for one.
/// - **Any executor.** Requests run on a small runtime of the crate's own, so the cache works
///   in any tokio runtime (with or without its time and I/O drivers) and outside one.
///
/// Whoever can write the bucket can run code on every node that loads from it, exactly as
/// with a pack file: give nodes read access, and write access only to those trusted to
/// compile.
///
/// # Example
///
/// The composition a fleet node uses: memory, then the local pack, then the fleet tier. A
/// module another node compiled is loaded without compiling and promoted into the pack.
///
/// ```
/// use std::sync::Arc;
/// use wasmer::{Engine, Module};
/// use wasmpak::object_store::memory::InMemory;
/// use wasmpak::{ModuleCache, ModuleHash, ObjectStoreCache, PackCache, SharedCache};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bucket = Arc::new(InMemory::new()); // in production: an S3, GCS or Azure store
/// let engine = Engine::default();
/// let wasm = wasmer::wat2wasm(br#"(module (func (export "one") (result i32) i32.const 1))"#)?;
/// let key = ModuleHash::new(&wasm);
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     // Node A compiles and saves: its pack and the bucket both get the module.
///     let node_a = tempfile::tempdir()?;
///     let fleet = ObjectStoreCache::new(bucket.clone(), "modules");
///     let cache = PackCache::new(node_a.path()).with_fallback(fleet.clone());
///     cache.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///     fleet.flush().await; // wait for the background upload
///
///     // Node B misses locally and loads from the bucket, without compiling.
///     let node_b = tempfile::tempdir()?;
///     let cache = SharedCache::default().with_fallback(
///         PackCache::new(node_b.path())
///             .with_fallback(ObjectStoreCache::new(bucket.clone(), "modules")),
///     );
///     cache.load(key, &engine).await?;
///     assert!(PackCache::new(node_b.path()).contains(key, &engine).await?, "promoted");
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    timeout: Duration,
    retry_after: Duration,
    background_saves: bool,
    max_pending_uploads: usize,
    unavailable_until: Mutex<Option<Instant>>,
    /// Objects a load found unusable: the next save overwrites them instead of deferring.
    damaged: Mutex<HashSet<ObjectPath>>,
    pending: AtomicUsize,
    idle: tokio::sync::Notify,
    counters: Counters,
}

/// What the objects of one engine are stored under: its identity and its folder.
#[derive(Debug)]
struct Tier {
    engine: Arc<Known>,
    folder: ObjectPath,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    saves: AtomicU64,
    already_saved: AtomicU64,
    uploads_dropped: AtomicU64,
    bytes_downloaded: AtomicU64,
    bytes_uploaded: AtomicU64,
}

/// What a request came back with.
enum Outcome<T> {
    Done(T),
    NotFound,
    AlreadyExists,
}

impl ObjectStoreCache {
    /// A cache of the objects under `prefix` in `store`, with default options.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<ObjectPath>) -> ObjectStoreCache {
        ObjectStoreCache::builder(store, prefix).build()
    }

    /// Options for a cache of the objects under `prefix` in `store`.
    pub fn builder(
        store: Arc<dyn ObjectStore>,
        prefix: impl Into<ObjectPath>,
    ) -> ObjectStoreCacheBuilder {
        ObjectStoreCacheBuilder {
            store,
            prefix: prefix.into(),
            timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(10),
            background_saves: true,
            max_pending_uploads: 64,
        }
    }

    /// The prefix every object of this cache lives under.
    pub fn prefix(&self) -> &ObjectPath {
        &self.inner.prefix
    }

    /// The object that holds the module saved under `key` for `engine`.
    pub fn object_path(&self, key: ModuleHash, engine: &Engine) -> ObjectPath {
        object_in(&self.tier(engine), key)
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> ObjectStoreStats {
        let c = &self.inner.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ObjectStoreStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            stale: get(&c.stale),
            failures: get(&c.failures),
            skipped: get(&c.skipped),
            saves: get(&c.saves),
            already_saved: get(&c.already_saved),
            uploads_dropped: get(&c.uploads_dropped),
            bytes_downloaded: get(&c.bytes_downloaded),
            bytes_uploaded: get(&c.bytes_uploaded),
        }
    }

    /// Waits until every background upload started so far has finished (each is bounded by
    /// the timeout). Call it before a short-lived process exits.
    pub async fn flush(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    fn tier(&self, engine: &Engine) -> Tier {
        let engine = loadable::known(engine);
        let stem = engine.identity.file_stem();
        Tier {
            folder: self.inner.prefix.clone().join(stem.as_str()),
            engine,
        }
    }

    fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        counter(&self.inner.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the store failed recently; counts the request it saves.
    fn skipping(&self) -> bool {
        let mut until = lock(&self.inner.unavailable_until);
        match *until {
            Some(when) if Instant::now() < when => {
                self.count(|c| &c.skipped);
                true
            }
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self, error: &RemoteError) {
        self.count(|c| &c.failures);
        *lock(&self.inner.unavailable_until) = Some(Instant::now() + self.inner.retry_after);
        tracing::warn!(
            error = error as &dyn std::error::Error,
            "the module store failed; skipping it for {:?}",
            self.inner.retry_after
        );
    }

    fn stale(&self, path: &ObjectPath, why: &dyn fmt::Display) {
        self.count(|c| &c.stale);
        lock(&self.inner.damaged).insert(path.clone());
        tracing::warn!(%path, %why, "unusable module object; treating it as a cache miss");
    }

    /// Runs `request` on the cache's runtime, bounded by the timeout.
    async fn request<T, F>(
        &self,
        operation: &'static str,
        path: &ObjectPath,
        request: F,
    ) -> Result<Outcome<T>, RemoteError>
    where
        T: Send + 'static,
        F: Future<Output = ::object_store::Result<T>> + Send + 'static,
    {
        let error = |kind, source: Option<Box<dyn std::error::Error + Send + Sync>>| RemoteError {
            kind,
            operation,
            path: path.clone(),
            url: None,
            source,
        };
        let timeout = self.inner.timeout;
        let bounded = async move { tokio::time::timeout(timeout, request).await };
        let runtime = runtime().map_err(|e| error(RemoteErrorKind::Failed, Some(e.into())))?;
        let task = AbortOnDrop(runtime.spawn(bounded));
        let finished = match task.await {
            Ok(finished) => finished,
            Err(e) => return Err(error(RemoteErrorKind::Failed, Some(Box::new(e)))),
        };
        match finished {
            Err(_) => Err(error(RemoteErrorKind::Timeout, None)),
            Ok(Ok(value)) => Ok(Outcome::Done(value)),
            Ok(Err(::object_store::Error::NotFound { .. })) => Ok(Outcome::NotFound),
            Ok(Err(
                ::object_store::Error::AlreadyExists { .. }
                | ::object_store::Error::Precondition { .. },
            )) => Ok(Outcome::AlreadyExists),
            Ok(Err(e)) => Err(error(RemoteErrorKind::Failed, Some(Box::new(e)))),
        }
    }

    async fn fetch(&self, path: &ObjectPath) -> Option<Bytes> {
        if self.skipping() {
            return None;
        }
        let store = self.inner.store.clone();
        let target = path.clone();
        let request = async move { store.get(&target).await?.bytes().await };
        match self.request("download", path, request).await {
            Ok(Outcome::Done(bytes)) => {
                let len = bytes.len() as u64;
                self.inner
                    .counters
                    .bytes_downloaded
                    .fetch_add(len, Ordering::Relaxed);
                Some(bytes)
            }
            Ok(_) => None,
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    /// Uploads one module object; `Ok(false)` if another writer got there first.
    async fn upload(
        &self,
        path: ObjectPath,
        tier: Tier,
        key: ModuleHash,
        module: Module,
    ) -> Result<bool, CacheError> {
        let artifact = run_blocking(move || module.serialize()).await?;
        let header = object::encode_header(&tier.engine.encoded, &key_bytes(&key), &artifact);
        let len = (header.len() + artifact.len()) as u64;
        let payload = PutPayload::from_iter([Bytes::from(header), artifact]);
        // A damaged object would otherwise block this key forever: replace it.
        let overwrite = lock(&self.inner.damaged).remove(&path);
        let mode = if overwrite {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        let store = self.inner.store.clone();
        let target = path.clone();
        let request = async move { store.put_opts(&target, payload, mode.into()).await };
        match self.request("upload", &path, request).await {
            Ok(Outcome::Done(_)) => {
                self.count(|c| &c.saves);
                let uploaded = &self.inner.counters.bytes_uploaded;
                uploaded.fetch_add(len, Ordering::Relaxed);
                Ok(true)
            }
            Ok(_) => {
                self.count(|c| &c.already_saved);
                Ok(false)
            }
            Err(error) => {
                self.failed(&error);
                if overwrite {
                    lock(&self.inner.damaged).insert(path);
                }
                Err(CacheError::other(error))
            }
        }
    }

    fn unavailable(&self, operation: &'static str, path: ObjectPath) -> CacheError {
        CacheError::other(RemoteError {
            kind: RemoteErrorKind::Unavailable,
            operation,
            path,
            url: None,
            source: None,
        })
    }
}

#[async_trait::async_trait]
impl ModuleCache for ObjectStoreCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        let tier = self.tier(engine);
        let path = object_in(&tier, key);
        let Some(bytes) = self.fetch(&path).await else {
            self.count(|c| &c.misses);
            return Err(CacheError::NotFound);
        };
        let artifact = match CheckedArtifact::from_module_object(&bytes, &key, engine) {
            Ok(artifact) => artifact,
            Err(why) => {
                self.stale(&path, &why);
                self.count(|c| &c.misses);
                return Err(CacheError::NotFound);
            }
        };
        let module = if bytes.len() >= BLOCKING_DESERIALIZE_BYTES {
            run_blocking(move || artifact.deserialize()).await
        } else {
            artifact.deserialize()
        };
        match module {
            Ok(module) => {
                self.count(|c| &c.hits);
                Ok(module)
            }
            Err(error) => {
                self.stale(&path, &error);
                self.count(|c| &c.misses);
                Err(CacheError::NotFound)
            }
        }
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        if self.skipping() {
            return Ok(false);
        }
        let path = self.object_path(key, engine);
        let store = self.inner.store.clone();
        let target = path.clone();
        let request = async move { store.head(&target).await };
        match self.request("look up", &path, request).await {
            Ok(Outcome::Done(_)) => Ok(true),
            Ok(_) => Ok(false),
            Err(error) => {
                self.failed(&error);
                Ok(false)
            }
        }
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        let tier = self.tier(engine);
        let path = object_in(&tier, key);
        if !self.inner.background_saves {
            if self.skipping() {
                return Err(self.unavailable("upload", path));
            }
            return self.upload(path, tier, key, module.clone()).await.map(drop);
        }
        let pending = self.inner.pending.fetch_add(1, Ordering::AcqRel);
        if pending >= self.inner.max_pending_uploads || self.skipping() {
            self.finish_upload();
            self.count(|c| &c.uploads_dropped);
            tracing::warn!(%path, pending, "dropped an upload to the module store");
            return Ok(());
        }
        let cache = self.clone();
        let module = module.clone();
        let upload = async move {
            // Failures are logged and counted where they happen.
            let _ = cache.upload(path, tier, key, module).await;
            cache.finish_upload();
        };
        match runtime() {
            Ok(runtime) => drop(runtime.spawn(upload)),
            Err(error) => {
                self.finish_upload();
                return Err(CacheError::other(std::io::Error::other(error)));
            }
        }
        Ok(())
    }
}

impl ObjectStoreCache {
    fn finish_upload(&self) {
        if self.inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

//! [`PackCache`]: the cache, the state its handles share, and its [`ModuleCache`] impl.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::OnceCell;
use wasmer::{Engine, EngineId, Module};

use crate::EngineIdentity;
use crate::Key;
use crate::cache::blocking::run_blocking;
use crate::cache::memo::Memo;
use crate::cache::{CacheError, CacheResult, ModuleCache, ModuleHash};
use crate::engine::loadable;
use crate::sync::{lock, read, write};

use super::builder::PackCacheBuilder;
use super::compaction::CompactionPolicy;
use super::pack_files::PackFiles;
use super::pack_set::PackSet;
use super::slot::PackSlot;
use super::stats::{CacheStats, Counters};

/// A load in progress, which concurrent loads of the same key wait for.
type InFlight = Arc<OnceCell<Module>>;

/// How many engines' pack sets are remembered by engine id.
const MAX_REMEMBERED_ENGINES: usize = 256;

/// A [`ModuleCache`] that keeps compiled modules in memory-mapped pack files: one pack per
/// engine identity in a directory of its own, optionally behind read-only packs shipped with
/// the application, and the modules loaded in this process in a bounded memo.
///
/// - **Zero-copy loads.** A load hands wasmer a view of the artifact's bytes in the page
///   cache; nothing is read into a private buffer, and processes loading the same modules
///   share the same physical pages.
/// - **Verified.** An artifact's CRC-32 is checked the first time this process loads it,
///   before wasmer sees a byte. Once wasmer has copied what it needs, the process gives back
///   the page-table entries of the artifact's pages (they stay in the page cache), so its
///   proportional set size counts only the pages it reads again.
/// - **Memoized.** A second load of a key in the same process returns the same `Module` (an
///   `Arc` clone): wasmer keeps every deserialized artifact alive for the engine's lifetime,
///   so deserializing twice would also pin a second copy of the code.
/// - **Ship once, load everywhere.** A pack built for a CPU level (`wasmpak build
///   --cpu-features x86-64-v3`) loads on every host whose engine has those features or more
///   (see [`EngineIdentity::can_load`]). Shipped packs are only ever read (see
///   [`PackCacheBuilder::shipped_pack`] and [`PackCacheBuilder::shipped_dir`]); a
///   directory may hold a pack per CPU level, and each host reads the most specific ones it
///   can load.
/// - **Never poisoned.** An entry from another engine, wasmer version or CPU, a corrupt entry,
///   or one wasmer refuses is a miss, logged and counted in [`CacheStats::stale`]; the next
///   `save` replaces it in the cache's own pack. A pack the engine cannot use at all (CPU
///   features it lacks, say) is named in one warning per process when it costs a miss.
/// - **No runtime required.** Works in and out of a tokio runtime. Inside one, loads open
///   packs where they are awaited (a few system calls, cheaper than a trip to the blocking
///   pool), the first load of a large artifact runs in place on a multi-thread runtime
///   (`block_in_place`) and on the blocking pool of a current-thread one, and saves (fsyncs)
///   and directory listings after a miss run on the blocking pool.
/// - **Self-maintaining.** Dead bytes and soft size limits trigger a compaction of the cache's
///   own packs on a background thread, evicting the least recently used modules (see
///   [`PackCacheBuilder`]).
///
/// Loads look in the shipped packs first, then in the directory: the engine's own pack
/// `{dir}/{engine}-{format}-v{abi}-{target}-{cpu level}.v1.wpk` (see
/// [`EngineIdentity::pack_file_name`]), created by the first `save`, then packs of lower CPU
/// levels in the same directory. Saves go to the engine's own pack only.
///
/// # Example
///
/// ```
/// use wasmpak::{ModuleCache, ModuleHash, PackCache};
/// use wasmer::{Engine, Module};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::default();
/// let wasm = wasmer::wat2wasm(br#"(module (func (export "one") (result i32) i32.const 1))"#)?;
/// let key = ModuleHash::new(&wasm);
/// let module = Module::new(&engine, &wasm)?;
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     PackCache::new(dir.path()).save(key, &engine, &module).await?;
///
///     // A fresh cache, as in a new process, loads from the pack.
///     let cache = PackCache::new(dir.path());
///     let loaded = cache.load(key, &engine).await?;
///     assert_eq!(loaded.serialize()?, module.serialize()?);
///     let again = cache.load(key, &engine).await?; // from the memo
///     assert_eq!((cache.stats().hits, cache.stats().memo_hits), (1, 1));
///     Ok::<_, wasmpak::CacheError>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PackCache {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) files: PackFiles,
    pub(super) compaction: CompactionPolicy,
    sets: Mutex<HashMap<EngineIdentity, Arc<PackSet>>>,
    engines: RwLock<HashMap<EngineId, Arc<PackSet>>>,
    pub(super) memo: Memo,
    in_flight: Mutex<HashMap<(EngineId, Key), InFlight>>,
    pub(super) counters: Counters,
}

impl PackCache {
    /// A cache of packs in `dir`, with default options. Infallible and lazy, like wasix's
    /// `FileSystemCache::new`, but needs no task manager.
    pub fn new(dir: impl Into<PathBuf>) -> PackCache {
        PackCache::builder(dir).build()
    }

    /// Options for a cache of packs in `dir`; see [`PackCacheBuilder::new`] for a cache of
    /// shipped packs only.
    pub fn builder(dir: impl Into<PathBuf>) -> PackCacheBuilder {
        PackCacheBuilder::new().dir(dir)
    }

    /// The directory of the cache's own packs, where saves go; `None` for a cache of
    /// shipped packs only.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.files.sources.local_dir.as_deref()
    }

    /// The pack `engine`'s modules are saved to (it may not exist yet); `None` for a cache of
    /// shipped packs only.
    pub fn pack_path(&self, engine: &Engine) -> Option<PathBuf> {
        self.pack_set(engine)
            .own
            .as_ref()
            .map(|slot| slot.path.clone())
    }

    /// The packs a load for `engine` looks in, in order: the shipped packs it can load, its
    /// own pack, then the packs of lower CPU levels in the cache's directory. Lists the
    /// directories again (blocking on the file system), so it also shows packs installed
    /// since the cache last looked.
    pub fn pack_paths(&self, engine: &Engine) -> Vec<PathBuf> {
        self.pack_set(engine)
            .rebuild(&self.inner.files, true)
            .readable
            .iter()
            .map(|slot| slot.path.clone())
            .collect()
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let bytes_mapped = self
            .inner
            .files
            .all()
            .iter()
            .filter_map(|s| s.open_pack())
            .filter_map(|p| p.stats().ok())
            .map(|s| s.mapped_bytes)
            .sum();
        let memo_entries = self.inner.memo.len() as u64;
        self.inner.counters.stats(memo_entries, bytes_mapped)
    }

    /// The pack set for `engine`: one map lookup after the engine's first use.
    fn pack_set(&self, engine: &Engine) -> Arc<PackSet> {
        if let Some(set) = read(&self.inner.engines).get(&engine.id()) {
            return set.clone();
        }
        // The identity `CheckedArtifact::from_pack` checks against, computed once per engine.
        let identity = loadable::known(engine).identity.clone();
        let set = lock(&self.inner.sets)
            .entry(identity.clone())
            .or_insert_with(|| {
                let own = self.inner.files.sources.local_dir.as_ref().map(|dir| {
                    let path = dir.join(identity.pack_file_name());
                    self.inner
                        .files
                        .slot(&path, || PackSlot::local(path.clone(), identity.clone()))
                });
                Arc::new(PackSet::new(identity, own))
            })
            .clone();
        let mut engines = write(&self.inner.engines);
        // Engines are usually few and long-lived; a process that creates one per request
        // must not grow this map without bound (a cleared entry only costs recomputing an
        // identity, a few microseconds).
        if engines.len() >= MAX_REMEMBERED_ENGINES {
            engines.clear();
        }
        engines.insert(engine.id(), set.clone());
        set
    }
}

impl PackCacheBuilder {
    /// Builds the cache. Infallible and lazy: nothing touches the disk until the first load
    /// or save, and a missing shipped pack or directory is not an error.
    pub fn build(self) -> PackCache {
        let b = self;
        PackCache {
            inner: Arc::new(Inner {
                files: PackFiles::new(b.sources, b.pack_options),
                compaction: b.compaction,
                sets: Mutex::new(HashMap::new()),
                engines: RwLock::new(HashMap::new()),
                memo: Memo::new(b.memo),
                in_flight: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }
}

impl Inner {
    /// The engines' own packs: the ones this cache writes and compacts.
    pub(super) fn own_slots(&self) -> Vec<Arc<PackSlot>> {
        lock(&self.sets)
            .values()
            .filter_map(|set| set.own.clone())
            .collect()
    }

    pub(super) fn stale(&self, what: &str, error: &dyn std::fmt::Display) {
        self.counters.stale.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "{what}; treating it as a cache miss");
    }
}

impl Drop for Inner {
    /// Short-lived processes must record what they used too: the last handle of a cache
    /// merges its recency stamps into the sidecars (a few small writes, only if a load or
    /// save happened since the last flush).
    fn drop(&mut self) {
        for slot in self.files.all() {
            if let Err(e) = slot.flush_recency() {
                let pack = slot.path.display();
                tracing::debug!(%pack, error = %e, "could not flush recency stamps");
            }
        }
    }
}

pub(super) fn key_of(hash: &ModuleHash) -> Key {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(hash.as_bytes());
    Key::from_bytes(bytes)
}

#[async_trait::async_trait]
impl ModuleCache for PackCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        let key = key_of(&key);
        let set = self.pack_set(engine);
        if let Some(module) = self.inner.memo.get(engine.id(), &key) {
            self.inner
                .counters
                .memo_hits
                .fetch_add(1, Ordering::Relaxed);
            if let Some(recency) = set.own.as_ref().and_then(|own| own.recency.as_ref()) {
                recency.touch(&key);
            }
            return Ok(module);
        }
        // One deserialization per key at a time: concurrent first loads share its result
        // instead of each pinning another copy of the code in the engine.
        let cell = lock(&self.inner.in_flight)
            .entry((engine.id(), key))
            .or_default()
            .clone();
        let result = cell
            .get_or_try_init(|| async {
                if let Some(module) = self.inner.memo.get(engine.id(), &key) {
                    self.inner
                        .counters
                        .memo_hits
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(module);
                }
                self.load_from_packs(&set, key, engine).await
            })
            .await
            .cloned();
        lock(&self.inner.in_flight).remove(&(engine.id(), key));
        match &result {
            Ok(_) => self.flush_recency_if_due(),
            Err(CacheError::NotFound) => {
                self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        let key = key_of(&key);
        if self.inner.memo.contains(engine.id(), &key) {
            return Ok(true);
        }
        let set = self.pack_set(engine);
        self.contains_in_packs(&set, key).await
    }

    /// Saves `module` to the engine's own pack. An entry already there holding exactly these
    /// bytes is kept (keys are content hashes, so that is this module); any other entry under
    /// the key, such as one wasmer refused to load, is replaced. A cache without a directory
    /// of its own saves nothing.
    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        let key = key_of(&key);
        if self.inner.files.options.checks_signatures() || self.inner.files.options.trust_installed
        {
            // Signed or installed packs only: a module saved here would be unsigned, so no
            // load could use it, and an installed pack is sealed against writers. Memo only.
            let len = module.serialize().map_or(0, |b| b.len() as u64);
            self.inner
                .memo
                .replace(engine.id(), key, module.clone(), len);
            return Ok(());
        }
        let set = self.pack_set(engine);
        let Some(own) = set.own.clone() else {
            tracing::debug!(%key, "no cache directory: the module is not saved");
            return Ok(());
        };
        let cache = self.clone();
        let writer_slot = own.clone();
        let to_save = module.clone();
        let saved_len = run_blocking(move || -> Result<u64, CacheError> {
            let on_stale = |e: &crate::Error| {
                cache
                    .inner
                    .stale("unusable module pack, moving it aside", e)
            };
            let pack = writer_slot.for_write(&cache.inner.files.options, on_stale)?;
            if matches!(pack.lost_commit(), Ok(Some(_))) {
                // Its newest commit was damaged: the pack reads without what that commit wrote
                // and takes writes again once compaction repaired it.
                let report = pack.compact().map_err(CacheError::from_pack_write)?;
                tracing::warn!(
                    pack = %writer_slot.path.display(),
                    recovered = report.recovered(),
                    "repaired a pack whose newest commit was damaged"
                );
            }
            let bytes = to_save.serialize()?;
            let same = matches!(pack.get(&key), Ok(Some(existing)) if existing == bytes);
            if !same {
                pack.insert_with_label(&key, &bytes, to_save.name().unwrap_or(""))
                    .map_err(CacheError::from_pack_write)?;
                cache.inner.counters.saves.fetch_add(1, Ordering::Relaxed);
            }
            Ok(bytes.len() as u64)
        })
        .await?;
        self.inner
            .memo
            .replace(engine.id(), key, module.clone(), saved_len);
        if let Some(recency) = &own.recency {
            recency.touch(&key);
        }
        self.compact_if_due(&own);
        Ok(())
    }
}

//! [`PackCache`]: modules cached in one memory-mapped pack file per engine identity.

mod builder;
mod maintenance;
mod slot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::OnceCell;
use wasmer::{Engine, EngineId, Module};

use crate::cache::blocking::run_blocking;
use crate::cache::memo::Memo;
use crate::cache::{CacheError, EngineIdentity, ModuleCache, ModuleHash};
use crate::{Key, PackOptions, Retention};

pub use builder::PackCacheBuilder;
use slot::{PackSlot, is_stale, read_error, write_error};

/// A load in progress, which concurrent loads of the same key wait for.
type InFlight = Arc<OnceCell<Module>>;

/// How many engines' pack slots are remembered by engine id.
const MAX_REMEMBERED_ENGINES: usize = 256;

/// Artifacts at least this large deserialize on a blocking thread when inside a runtime.
const BLOCKING_DESERIALIZE_BYTES: u64 = 1 << 20;

/// A [`ModuleCache`] that keeps the modules of each engine identity in one memory-mapped
/// pack file in a directory, and the modules loaded in this process in a bounded memo.
///
/// - **Zero-copy loads.** A load hands wasmer a view of the artifact's bytes in the page
///   cache; nothing is read into a private buffer, and processes loading the same modules
///   share the same physical pages.
/// - **Verified.** An artifact's CRC-32 is checked the first time this process loads it,
///   before wasmer sees a byte.
/// - **Memoized.** A second load of a key in the same process returns the same `Module` (an
///   `Arc` clone): wasmer keeps every deserialized artifact alive for the engine's lifetime,
///   so deserializing twice would also pin a second copy of the code.
/// - **Never poisoned.** An entry from another engine, wasmer version or CPU, a corrupt entry,
///   or one wasmer refuses is a miss, logged and counted in [`CacheStats::stale`]; the next
///   `save` replaces it.
/// - **No runtime required.** Works in and out of a tokio runtime; inside one, fsyncs and large
///   deserializations run on the blocking pool.
/// - **Self-maintaining.** Dead bytes and soft size limits trigger a compaction on a
///   background thread, evicting the least recently used modules (see [`PackCacheBuilder`]).
///
/// The pack for an engine is `{dir}/{engine}-{format}-v{abi}-{target}-{cpu}.v1.wpk` (see
/// [`EngineIdentity::file_stem`]), created by the first `save`.
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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    pack_options: PackOptions,
    retention: Retention,
    auto_compact: bool,
    dead_fraction: f64,
    min_dead_bytes: u64,
    slots: Mutex<HashMap<EngineIdentity, Arc<PackSlot>>>,
    engines: RwLock<HashMap<EngineId, Arc<PackSlot>>>,
    memo: Memo,
    in_flight: Mutex<HashMap<(EngineId, Key), InFlight>>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    memo_hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    saves: AtomicU64,
    compactions: AtomicU64,
    untrusted: AtomicU64,
}

/// What a [`PackCache`] has done so far in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads served by deserializing from a pack.
    pub hits: u64,
    /// Loads served from the in-process memo.
    pub memo_hits: u64,
    /// Loads that found nothing usable (stale entries included).
    pub misses: u64,
    /// Packs or entries skipped as unusable: other identity, corrupt, refused by wasmer.
    pub stale: u64,
    /// Modules written to a pack.
    pub saves: u64,
    /// Compactions this process ran.
    pub compactions: u64,
    /// Loads refused because no trusted signature covers the entry or its bytes differ from
    /// what was signed (only with [`PackCacheBuilder::trusted_keys`]); each is also a miss.
    pub untrusted: u64,
    /// Modules held by the memo.
    pub memo_entries: u64,
    /// Bytes of pack files currently mapped by this cache.
    pub bytes_mapped: u64,
}

impl PackCache {
    /// A cache of packs in `dir`, with default options. Infallible and lazy, like wasix's
    /// `FileSystemCache::new`, but needs no task manager.
    pub fn new(dir: impl Into<PathBuf>) -> PackCache {
        PackCache::builder(dir).build()
    }

    /// Options for a cache of packs in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> PackCacheBuilder {
        PackCacheBuilder::new(dir.into())
    }

    fn from_builder(b: PackCacheBuilder) -> PackCache {
        PackCache {
            inner: Arc::new(Inner {
                dir: b.dir,
                pack_options: b.pack_options,
                retention: b.retention,
                auto_compact: b.auto_compact,
                dead_fraction: b.dead_fraction,
                min_dead_bytes: b.min_dead_bytes,
                slots: Mutex::new(HashMap::new()),
                engines: RwLock::new(HashMap::new()),
                memo: Memo::new(b.memo),
                in_flight: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// The directory holding the packs.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of the pack that holds `engine`'s modules.
    pub fn pack_path(&self, engine: &Engine) -> PathBuf {
        self.slot(engine).path.clone()
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let slots: Vec<_> = self.all_slots();
        let bytes_mapped = slots
            .iter()
            .filter_map(|s| s.open_pack())
            .filter_map(|p| p.stats().ok())
            .map(|s| s.mapped_bytes)
            .sum();
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            memo_hits: c.memo_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            saves: c.saves.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            untrusted: c.untrusted.load(Ordering::Relaxed),
            memo_entries: self.inner.memo.len() as u64,
            bytes_mapped,
        }
    }

    fn all_slots(&self) -> Vec<Arc<PackSlot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The pack slot for `engine`: one map lookup after the engine's first use.
    fn slot(&self, engine: &Engine) -> Arc<PackSlot> {
        if let Some(slot) = self
            .inner
            .engines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&engine.id())
        {
            return slot.clone();
        }
        let identity = EngineIdentity::of(engine);
        let slot = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(identity.clone())
            .or_insert_with(|| Arc::new(PackSlot::new(&self.inner.dir, identity)))
            .clone();
        let mut engines = self
            .inner
            .engines
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Engines are usually few and long-lived; a process that creates one per request
        // must not grow this map without bound (a cleared entry only costs recomputing an
        // identity, a few microseconds).
        if engines.len() >= MAX_REMEMBERED_ENGINES {
            engines.clear();
        }
        engines.insert(engine.id(), slot.clone());
        slot
    }

    fn stale(&self, what: &str, error: &dyn std::fmt::Display) {
        self.inner.counters.stale.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "{what}; treating it as a cache miss");
    }

    async fn load_from_pack(
        &self,
        slot: &PackSlot,
        key: &Key,
        engine: &Engine,
    ) -> Result<Module, CacheError> {
        let on_stale = |e: &crate::Error| self.stale("unusable module pack", e);
        let Some(pack) = slot.for_read(&self.inner.pack_options, on_stale)? else {
            return Err(CacheError::NotFound);
        };
        let bytes = match pack.get(key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(CacheError::NotFound),
            Err(e) if e.kind() == crate::ErrorKind::Untrusted => {
                self.inner
                    .counters
                    .untrusted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "refusing an untrusted module; treating it as a cache miss");
                return Err(CacheError::NotFound);
            }
            Err(e) if is_stale(e.kind()) => {
                self.stale("unusable module entry", &e);
                return Err(CacheError::NotFound);
            }
            Err(e) => return Err(read_error(e)),
        };
        let len = bytes.len() as u64;
        let module = if len >= BLOCKING_DESERIALIZE_BYTES {
            let engine = engine.clone();
            run_blocking(move || deserialize(&engine, bytes)).await
        } else {
            deserialize(engine, bytes)
        };
        match module {
            Ok(module) => {
                self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                Ok(self.inner.memo.insert(engine.id(), *key, module, len))
            }
            Err(e) => {
                self.stale("wasmer refused a cached module", &e);
                Err(CacheError::NotFound)
            }
        }
    }
}

/// Deserializes an artifact read from a pack.
fn deserialize(engine: &Engine, bytes: Bytes) -> Result<Module, wasmer::DeserializeError> {
    // SAFETY: `Module::deserialize_unchecked` requires bytes that `Module::serialize`
    // produced for a compatible engine, and that stay valid and unchanged while the module
    // lives. (1) The pack was opened with this engine's full identity (deterministic id,
    // artifact format, artifact ABI version, target triple and CPU features) and only holds
    // artifacts serialized by an engine with that identity. (2) `Pack::get` checked the
    // bytes' CRC-32 against the checksum computed from `serialize`'s output when the entry
    // was written (once per entry per process; committed bytes are never rewritten), so they
    // are exactly those bytes, not a torn write or a flipped bit. (3) Payloads are 64-byte
    // aligned in a page-aligned mapping, as rkyv's archived types need. (4) The `Bytes` owns
    // an `Arc` of the read-only mapping, which wasmer keeps for the artifact's lifetime, and
    // the format never modifies or truncates committed bytes. wasmer still checks the magic,
    // ABI version and CPU features itself. A CRC cannot stop a deliberate forgery by someone
    // who can write the pack; that is why packs writable by other users are refused.
    unsafe { Module::deserialize_unchecked(engine, bytes) }
}

fn key_of(hash: &ModuleHash) -> Key {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(hash.as_bytes());
    Key::from_bytes(bytes)
}

#[async_trait::async_trait]
impl ModuleCache for PackCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> Result<Module, CacheError> {
        let key = key_of(&key);
        let slot = self.slot(engine);
        if let Some(module) = self.inner.memo.get(engine.id(), &key) {
            self.inner
                .counters
                .memo_hits
                .fetch_add(1, Ordering::Relaxed);
            slot.recency.touch(&key);
            return Ok(module);
        }
        // One deserialization per key at a time: concurrent first loads share its result
        // instead of each pinning another copy of the code in the engine.
        let cell = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
                self.load_from_pack(&slot, &key, engine).await
            })
            .await
            .cloned();
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(engine.id(), key));
        match &result {
            Ok(_) => {
                slot.recency.touch(&key);
                self.flush_recency_if_due(&slot);
            }
            Err(CacheError::NotFound) => {
                self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> Result<bool, CacheError> {
        let key = key_of(&key);
        if self.inner.memo.contains(engine.id(), &key) {
            return Ok(true);
        }
        let slot = self.slot(engine);
        let on_stale = |e: &crate::Error| self.stale("unusable module pack", e);
        match slot.for_read(&self.inner.pack_options, on_stale)? {
            Some(pack) => match pack.contains(&key) {
                Ok(found) => Ok(found),
                Err(e) if is_stale(e.kind()) => Ok(false),
                Err(e) => Err(read_error(e)),
            },
            None => Ok(false),
        }
    }

    async fn save(
        &self,
        key: ModuleHash,
        engine: &Engine,
        module: &Module,
    ) -> Result<(), CacheError> {
        let key = key_of(&key);
        let slot = self.slot(engine);
        if self.inner.pack_options.checks_signatures() || self.inner.pack_options.trust_installed {
            // Shipped packs: a module saved here would be unsigned, so no load could use it,
            // and an installed pack is sealed against writers. Memo only.
            let len = module.serialize().map_or(0, |b| b.len() as u64);
            self.inner
                .memo
                .insert(engine.id(), key, module.clone(), len);
            return Ok(());
        }
        let cache = self.clone();
        let writer_slot = slot.clone();
        let to_save = module.clone();
        let saved_len = run_blocking(move || -> Result<u64, CacheError> {
            let on_stale =
                |e: &crate::Error| cache.stale("unusable module pack, moving it aside", e);
            let pack = writer_slot.for_write(&cache.inner.pack_options, on_stale)?;
            // Keys are content hashes: an intact entry already there is this module.
            if let Ok(Some(existing)) = pack.get(&key) {
                return Ok(existing.len() as u64);
            }
            let bytes = to_save.serialize()?;
            pack.insert_with_label(&key, &bytes, to_save.name().unwrap_or(""))
                .map_err(write_error)?;
            cache.inner.counters.saves.fetch_add(1, Ordering::Relaxed);
            Ok(bytes.len() as u64)
        })
        .await?;
        self.inner
            .memo
            .insert(engine.id(), key, module.clone(), saved_len);
        slot.recency.touch(&key);
        self.compact_if_due(&slot);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! [`PackCache`]: modules cached in one memory-mapped pack file per engine identity.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::OnceCell;
use wasmer::{Engine, EngineId, Module};

use crate::cache::blocking::run_blocking;
use crate::cache::memo::{Memo, MemoLimits};
use crate::cache::{CacheError, EngineIdentity, ModuleCache, ModuleHash};
use crate::{Durability, ErrorKind, Key, Pack, PackOptions};

/// Artifacts at least this large deserialize on a blocking thread when inside a runtime.
const BLOCKING_DESERIALIZE_BYTES: u64 = 1 << 20;

/// A [`ModuleCache`] that keeps every module compiled for one engine identity in a single
/// memory-mapped pack file in a directory, and every module loaded in this process in an
/// in-memory memo.
///
/// - **Zero-copy loads.** A load maps the pack (once per process) and hands wasmer a view of
///   the artifact's bytes in the page cache; nothing is read into a private buffer, and
///   processes loading the same modules share the same physical pages.
/// - **Verified.** Each artifact's CRC-32 is checked the first time this process loads it,
///   before wasmer sees a byte.
/// - **Memoized.** A second load of a key in the same process is an `Arc` clone (about 100 ns),
///   bounded by [`PackCacheBuilder::memo_entries`] and [`PackCacheBuilder::memo_bytes`].
/// - **Never poisoned.** An entry from another engine, wasmer version or CPU, a corrupt entry,
///   or one wasmer refuses is a miss, counted in [`CacheStats::stale`] and logged; the next
///   `save` replaces it.
/// - **No runtime required.** Works in and out of a tokio runtime; inside one, fsyncs and large
///   deserializations run on the blocking pool.
///
/// The pack for an engine is `{dir}/{engine}-{format}-v{abi}-{target}-{cpu}.v1.wpk` (see
/// [`EngineIdentity::file_stem`]), created on the first `save`.
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
///     let cache = PackCache::new(dir.path());
///     cache.save(key, &engine, &module).await?;
///
///     // A fresh cache, as in a new process: loads from the pack.
///     let cache = PackCache::new(dir.path());
///     let loaded = cache.load(key, &engine).await?;
///     assert_eq!(loaded.serialize()?, module.serialize()?);
///     assert_eq!(cache.stats().hits, 1);
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
    packs: Mutex<HashMap<EngineIdentity, Pack>>,
    memo: Memo,
    in_flight: Mutex<HashMap<(EngineId, Key), Arc<OnceCell<Module>>>>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    memo_hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    saves: AtomicU64,
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
    /// Entries or packs skipped as unusable: other identity, corrupt, refused by wasmer.
    pub stale: u64,
    /// Modules written to a pack.
    pub saves: u64,
    /// Modules held by the memo.
    pub memo_entries: u64,
    /// Bytes of pack files currently mapped by this cache.
    pub bytes_mapped: u64,
}

/// Options for a [`PackCache`].
///
/// # Example
///
/// ```
/// use wasmpak::{Durability, PackCache};
///
/// let cache = PackCache::builder("/var/cache/my-app/modules")
///     .memo_entries(256)
///     .memo_bytes(512 << 20)
///     .durability(Durability::None)
///     .build();
/// assert_eq!(cache.dir().to_str(), Some("/var/cache/my-app/modules"));
/// ```
#[derive(Debug, Clone)]
pub struct PackCacheBuilder {
    dir: PathBuf,
    pack_options: PackOptions,
    memo: MemoLimits,
}

impl PackCacheBuilder {
    /// Most modules the memo holds (default 1024; 0 disables it).
    pub fn memo_entries(mut self, entries: usize) -> Self {
        self.memo.max_entries = entries;
        self
    }

    /// Most artifact bytes the memo holds (default 1 GiB).
    pub fn memo_bytes(mut self, bytes: u64) -> Self {
        self.memo.max_bytes = bytes;
        self
    }

    /// Durability of saves (default [`Durability::Full`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.pack_options = self.pack_options.durability(durability);
        self
    }

    /// Accept packs other users can write (refused by default: see
    /// [`PackOptions::allow_shared_write`]).
    pub fn allow_shared_write(mut self, allow: bool) -> Self {
        self.pack_options = self.pack_options.allow_shared_write(allow);
        self
    }

    /// Builds the cache. Infallible and lazy: nothing touches the disk until the first load
    /// or save.
    pub fn build(self) -> PackCache {
        PackCache {
            inner: Arc::new(Inner {
                dir: self.dir,
                pack_options: self.pack_options,
                packs: Mutex::new(HashMap::new()),
                memo: Memo::new(self.memo),
                in_flight: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }
}

impl PackCache {
    /// A cache of packs in `dir`, with default options. Infallible and lazy, like wasix's
    /// `FileSystemCache::new`.
    pub fn new(dir: impl Into<PathBuf>) -> PackCache {
        PackCache::builder(dir).build()
    }

    /// Options for a cache of packs in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> PackCacheBuilder {
        PackCacheBuilder {
            dir: dir.into(),
            pack_options: PackOptions::new(),
            memo: MemoLimits {
                max_entries: 1024,
                max_bytes: 1 << 30,
            },
        }
    }

    /// The directory holding the packs.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of the pack for `engine`.
    pub fn pack_path(&self, engine: &Engine) -> PathBuf {
        self.path_for(&EngineIdentity::of(engine))
    }

    fn path_for(&self, identity: &EngineIdentity) -> PathBuf {
        self.inner.dir.join(format!(
            "{}.v{}.wpk",
            identity.file_stem(),
            crate::format::superblock::FORMAT_VERSION
        ))
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let bytes_mapped = self
            .open_packs()
            .iter()
            .filter_map(|p| p.stats().ok())
            .map(|s| s.mapped_bytes)
            .sum();
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            memo_hits: c.memo_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            saves: c.saves.load(Ordering::Relaxed),
            memo_entries: self.inner.memo.len() as u64,
            bytes_mapped,
        }
    }

    fn open_packs(&self) -> Vec<Pack> {
        self.inner
            .packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn stale(&self, what: &str, error: &dyn std::fmt::Display) {
        self.inner.counters.stale.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "{what}; treating it as a cache miss");
    }

    /// The open pack for `identity`, if there is a usable one.
    fn pack_for_read(&self, identity: &EngineIdentity) -> Result<Option<Pack>, CacheError> {
        let mut packs = self.inner.packs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pack) = packs.get(identity) {
            return Ok(Some(pack.clone()));
        }
        let path = self.path_for(identity);
        match self.inner.pack_options.open(&path, &identity.to_pack_identity()) {
            Ok(pack) => {
                packs.insert(identity.clone(), pack.clone());
                Ok(Some(pack))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if is_stale(e.kind()) => {
                self.stale("unusable module pack", &e);
                Ok(None)
            }
            Err(e) => Err(read_error(e)),
        }
    }

    /// The pack for `identity`, created if needed. A file at its path that is not a usable
    /// pack is moved aside (to `*.corrupt`) and replaced.
    fn pack_for_write(&self, identity: &EngineIdentity) -> Result<Pack, CacheError> {
        let mut packs = self.inner.packs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pack) = packs.get(identity) {
            return Ok(pack.clone());
        }
        let path = self.path_for(identity);
        std::fs::create_dir_all(&self.inner.dir).map_err(|error| CacheError::FileWrite {
            path: self.inner.dir.clone(),
            error,
        })?;
        let pack_identity = identity.to_pack_identity();
        let pack = match self.inner.pack_options.open_or_create(&path, &pack_identity) {
            Err(e) if is_stale(e.kind()) => {
                self.stale("unusable module pack, moving it aside", &e);
                let aside = path.with_extension("wpk.corrupt");
                std::fs::rename(&path, &aside)
                    .map_err(|error| CacheError::FileWrite { path: path.clone(), error })?;
                self.inner.pack_options.open_or_create(&path, &pack_identity)
            }
            other => other,
        }
        .map_err(write_error)?;
        packs.insert(identity.clone(), pack.clone());
        Ok(pack)
    }

    async fn load_from_pack(&self, key: &Key, engine: &Engine) -> Result<Module, CacheError> {
        let identity = EngineIdentity::of(engine);
        let Some(pack) = self.pack_for_read(&identity)? else {
            return Err(CacheError::NotFound);
        };
        let bytes = match pack.get(key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(CacheError::NotFound),
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
    // ABI version and CPU features itself. What a CRC cannot stop is a deliberate forgery by
    // someone able to write the pack, which is why packs writable by other users are refused.
    unsafe { Module::deserialize_unchecked(engine, bytes) }
}

fn is_stale(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Corrupt
            | ErrorKind::NotAPack
            | ErrorKind::IdentityMismatch
            | ErrorKind::UnsupportedVersion
    )
}

fn read_error(error: crate::Error) -> CacheError {
    let path = error.path().to_path_buf();
    match error {
        crate::Error::Open { source, .. }
        | crate::Error::Read { source, .. }
        | crate::Error::Lock { source, .. } => CacheError::FileRead {
            path,
            error: source,
        },
        other => CacheError::other(other),
    }
}

fn write_error(error: crate::Error) -> CacheError {
    let path = error.path().to_path_buf();
    match error {
        crate::Error::Open { source, .. }
        | crate::Error::Create { source, .. }
        | crate::Error::Write { source, .. }
        | crate::Error::Lock { source, .. } => CacheError::FileWrite {
            path,
            error: source,
        },
        other => CacheError::other(other),
    }
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
        if let Some(module) = self.inner.memo.get(engine.id(), &key) {
            self.inner.counters.memo_hits.fetch_add(1, Ordering::Relaxed);
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
                    self.inner.counters.memo_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(module);
                }
                self.load_from_pack(&key, engine).await
            })
            .await
            .cloned();
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(engine.id(), key));
        if matches!(result, Err(CacheError::NotFound)) {
            self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> Result<bool, CacheError> {
        let key = key_of(&key);
        if self.inner.memo.contains(engine.id(), &key) {
            return Ok(true);
        }
        match self.pack_for_read(&EngineIdentity::of(engine))? {
            Some(pack) => match pack.contains(&key) {
                Ok(found) => Ok(found),
                Err(e) if is_stale(e.kind()) => Ok(false),
                Err(e) => Err(read_error(e)),
            },
            None => Ok(false),
        }
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> Result<(), CacheError> {
        let key = key_of(&key);
        let identity = EngineIdentity::of(engine);
        let cache = self.clone();
        let to_save = module.clone();
        let saved_len = run_blocking(move || -> Result<u64, CacheError> {
            let pack = cache.pack_for_write(&identity)?;
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
        self.inner.memo.insert(engine.id(), key, module.clone(), saved_len);
        Ok(())
    }
}

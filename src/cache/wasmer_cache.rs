//! Our caches behind the `wasmer-cache` crate's [`Cache`] trait, so a program written against
//! `wasmer_cache::FileSystemCache` switches to a pack by changing the line that makes the cache.
//!
//! Assumptions, from wasmer-cache 7.4 and wasmer 7.4:
//! - `Cache::store(&mut self, key, &Module)` is given no engine, and a `Module` does not say
//!   which engine compiled it. Every cache of ours files modules by engine identity, so
//!   [`WasmerCache`] is made for one engine and stores what it is given under that engine.
//! - `Cache` is synchronous; our caches are async but need no runtime (see
//!   [`ModuleCache`]), so each call blocks on its future in place.
//! - A [`Hash`] is 32 opaque bytes chosen by the caller (`Hash::generate` is BLAKE3), and
//!   shows them only as hex.

use std::fmt;
use std::io;

use wasmer::{AsEngineRef, DeserializeError, Engine, Module, SerializeError};
use wasmer_cache::{Cache, Hash};

use super::{CacheError, ModuleCache, ModuleHash};
use crate::Key;
use crate::engine::EngineIdentity;

/// One of our caches as a `wasmer_cache::Cache` for one engine: the door for programs written
/// against the `wasmer-cache` crate (what `wasmer run` uses).
///
/// Swapping `wasmer_cache::FileSystemCache` for a pack is one line:
///
/// ```text
/// let mut cache = wasmer_cache::FileSystemCache::new(&dir)?;
/// let mut cache = wasmpak::WasmerCache::new(wasmpak::PackCache::new(&dir), &engine);
/// ```
///
/// Any [`ModuleCache`] fits: [`PackCache`](crate::PackCache) is the point of the crate, and a
/// [`SharedCache`](crate::SharedCache) in front of it (`with_fallback`) keeps loaded modules
/// in memory as usual.
///
/// **Keys.** The 32 bytes of a `wasmer_cache::Hash` become the [`ModuleHash`] (and pack
/// [`Key`]) with the same bytes. `Hash::generate` is BLAKE3, while wasmpak's own tools (`wasmpak
/// build`, [`ModuleHash::new`]) key modules by SHA-256; both are 32-byte content hashes, so
/// they share one key space safely, but a module is only found under the hash it was stored
/// with. To load from packs built by `wasmpak build`, make keys with [`WasmerCache::hash`].
///
/// **Errors.** The error types are wasmer's, as `FileSystemCache`'s are, so code that matches
/// on them keeps working:
///
/// | what happened | `load` | `store` |
/// |---|---|---|
/// | no module under the key, or a damaged, stale or foreign one (a miss, never poisoned) | `DeserializeError::Io`, kind `NotFound` | |
/// | wasmer refused the artifact / could not serialize the module | its `DeserializeError` | its `SerializeError` |
/// | a file could not be read or written | `DeserializeError::Io`, the I/O error's kind | `SerializeError::Io`, the I/O error's kind |
/// | `load` given an engine of another identity than the cache's | `DeserializeError::Incompatible` | |
/// | anything else | `DeserializeError::Io`, kind `Other` | `SerializeError::Io`, kind `Other` |
///
/// The `io::Error`s wrap the [`CacheError`], so the message names the file and
/// `get_ref()` gives the [`CacheError`] back.
///
/// **Safety.** `Cache::load` is `unsafe` because a cache file could be tampered with. Ours
/// checks what it can before wasmer sees a byte: the entry was stored for this engine's
/// identity (compiler, wasmer artifact ABI, target, CPU features), its CRC-32 matches, the
/// pack is not writable by other users, and with trusted keys a signature covers it. What no
/// check can rule out is a deliberately crafted artifact written by someone allowed to write
/// the cache (use signatures for that), or a module given to `store` that this engine did not
/// compile: `store` files what it is given under the cache's engine, as `FileSystemCache`
/// stores whatever it is given.
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmer_cache::Cache;
/// use wasmpak::{PackCache, WasmerCache};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::default();
/// let wasm = wasmer::wat2wasm(br#"(module (func (export "one") (result i32) i32.const 1))"#)?;
/// let key = WasmerCache::<PackCache>::hash(&wasm);
///
/// let mut cache = WasmerCache::new(PackCache::new(dir.path()), &engine);
/// // SAFETY (wasmer-cache's contract): only this program writes the directory.
/// let miss = unsafe { cache.load(&engine, key) }.unwrap_err();
/// assert!(matches!(&miss, wasmer::DeserializeError::Io(e) if e.kind() == std::io::ErrorKind::NotFound));
/// cache.store(key, &Module::new(&engine, &wasm)?)?;
///
/// // A new process: the module comes from the pack.
/// let cache = WasmerCache::new(PackCache::new(dir.path()), &engine);
/// // SAFETY (wasmer-cache's contract): only this program writes the directory.
/// let module = unsafe { cache.load(&engine, key) }?;
/// assert!(module.exports().any(|export| export.name() == "one"));
/// assert_eq!(cache.cache().stats().hits, 1);
/// # Ok(())
/// # }
/// ```
pub struct WasmerCache<C> {
    cache: C,
    engine: Engine,
    identity: EngineIdentity,
}

impl<C: ModuleCache> WasmerCache<C> {
    /// `cache` as a `wasmer_cache::Cache` storing modules compiled by `engine`.
    pub fn new(cache: C, engine: &Engine) -> WasmerCache<C> {
        WasmerCache {
            cache,
            engine: engine.clone(),
            identity: EngineIdentity::of(engine),
        }
    }

    /// The `wasmer_cache::Hash` wasmpak's own tools use for `wasm`: its SHA-256, the bytes of
    /// [`ModuleHash::new`]. Use it instead of `Hash::generate` (BLAKE3) to load modules from
    /// packs built by `wasmpak build` or saved through [`ModuleCache`].
    pub fn hash(wasm: &[u8]) -> Hash {
        let mut bytes = [0u8; Key::LEN];
        bytes.copy_from_slice(ModuleHash::new(wasm).as_bytes());
        Hash::new(bytes)
    }

    /// The cache underneath.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The engine whose modules [`store`](Cache::store) files.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether `engine` is this cache's engine, or one with the same identity.
    fn is_ours(&self, engine: &Engine) -> bool {
        engine.id() == self.engine.id() || EngineIdentity::of(engine) == self.identity
    }
}

impl<C: ModuleCache> Cache for WasmerCache<C> {
    type SerializeError = SerializeError;
    type DeserializeError = DeserializeError;

    // The trait declares `load` unsafe; nothing in this body is: it calls the cache's safe
    // `load`, whose one audited deserialization runs after the checks listed on the type.
    #[allow(unsafe_code)]
    unsafe fn load(
        &self,
        engine: &impl AsEngineRef,
        key: Hash,
    ) -> Result<Module, DeserializeError> {
        let engine = engine.as_engine_ref().engine().clone();
        if !self.is_ours(&engine) {
            return Err(DeserializeError::Incompatible(format!(
                "this cache stores modules of engine {}, not of engine {}: make one \
                 WasmerCache per engine",
                self.identity.file_stem(),
                EngineIdentity::of(&engine).file_stem()
            )));
        }
        futures::executor::block_on(self.cache.load(module_hash(key), &engine))
            .map_err(deserialize_error)
    }

    fn store(&mut self, key: Hash, module: &Module) -> Result<(), SerializeError> {
        futures::executor::block_on(self.cache.save(module_hash(key), &self.engine, module))
            .map_err(serialize_error)
    }
}

impl<C: fmt::Debug> fmt::Debug for WasmerCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmerCache")
            .field("cache", &self.cache)
            .field("engine", &self.identity.file_stem())
            .finish()
    }
}

/// The [`ModuleHash`] with the same 32 bytes.
fn module_hash(hash: Hash) -> ModuleHash {
    ModuleHash::from_bytes(*key_of(hash).as_bytes())
}

/// The pack [`Key`] with the same 32 bytes. `Hash` shows its bytes only as hex.
fn key_of(hash: Hash) -> Key {
    hash.to_string()
        .parse()
        .expect("a wasmer_cache::Hash prints as 64 hex digits")
}

fn deserialize_error(error: CacheError) -> DeserializeError {
    match error {
        CacheError::Deserialize(error) => error,
        other => DeserializeError::Io(as_io_error(other)),
    }
}

fn serialize_error(error: CacheError) -> SerializeError {
    match error {
        CacheError::Serialize(error) => error,
        other => SerializeError::Io(as_io_error(other)),
    }
}

/// `error` as an `io::Error` of the kind callers of `FileSystemCache` test for: `NotFound`
/// for a miss, the underlying kind for file errors.
fn as_io_error(error: CacheError) -> io::Error {
    let kind = match &error {
        CacheError::NotFound => io::ErrorKind::NotFound,
        CacheError::FileRead { error, .. } | CacheError::FileWrite { error, .. } => error.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

// The tests call `Cache::load`, which the trait makes unsafe to call.
#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use std::error::Error;
    use std::path::Path;

    use wasmer::Engine;
    use wasmer_cache::FileSystemCache;

    use super::*;
    use crate::cache::test_support::{
        answer, compiled, engine, engine_without_cpu_features, key, wat_module,
    };
    use crate::{Pack, PackCache};

    /// A program written against wasmer-cache, as its documentation shows: load, else compile
    /// and store. Says whether it compiled.
    fn program<C: Cache<SerializeError: 'static>>(
        cache: &mut C,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Module, bool), Box<dyn Error>> {
        let key = Hash::generate(wasm);
        // SAFETY (wasmer-cache's contract): only this test writes the cache directory.
        match unsafe { cache.load(engine, key) } {
            Ok(module) => Ok((module, false)),
            Err(_) => {
                let module = Module::new(engine, wasm)?;
                cache.store(key, &module)?;
                Ok((module, true))
            }
        }
    }

    fn io_kind(error: &DeserializeError) -> Option<io::ErrorKind> {
        match error {
            DeserializeError::Io(error) => Some(error.kind()),
            _ => None,
        }
    }

    #[test]
    fn the_same_program_runs_on_wasmer_s_cache_and_on_a_pack() {
        let engine = engine();
        let wasm = wat_module(21);
        let dir = tempfile::tempdir().unwrap();
        let wasmer_dir = dir.path().join("wasmer-cache");
        let pack_dir = dir.path().join("packs");

        let with_wasmer = |dir: &Path| FileSystemCache::new(dir).unwrap();
        let with_pack = |dir: &Path| WasmerCache::new(PackCache::new(dir), engine);

        let (first, compiled_it) = program(&mut with_wasmer(&wasmer_dir), engine, &wasm).unwrap();
        assert!(compiled_it);
        let (again, compiled_it) = program(&mut with_wasmer(&wasmer_dir), engine, &wasm).unwrap();
        assert!(!compiled_it, "the second run loads from wasmer's cache");

        let (_, compiled_it) = program(&mut with_pack(&pack_dir), engine, &wasm).unwrap();
        assert!(compiled_it);
        let mut fresh = with_pack(&pack_dir);
        let (loaded, compiled_it) = program(&mut fresh, engine, &wasm).unwrap();
        assert!(!compiled_it, "the second run loads from the pack");
        assert_eq!(fresh.cache().stats().hits, 1);

        for module in [&first, &again, &loaded] {
            assert_eq!(answer(module, engine), 21);
        }
        // The same module either way: the same artifact bytes.
        assert_eq!(loaded.serialize().unwrap(), again.serialize().unwrap());
    }

    #[test]
    fn a_miss_is_not_found_as_with_wasmer_s_cache() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let wasmer = FileSystemCache::new(dir.path().join("w")).unwrap();
        let pack = WasmerCache::new(PackCache::new(dir.path().join("p")), engine);
        let hash = Hash::generate(b"nothing stored");
        // SAFETY: both directories are empty and private to this test.
        let theirs = unsafe { wasmer.load(engine, hash) }.unwrap_err();
        let ours = unsafe { pack.load(engine, hash) }.unwrap_err();
        assert_eq!(io_kind(&theirs), Some(io::ErrorKind::NotFound));
        assert_eq!(io_kind(&ours), Some(io::ErrorKind::NotFound));
        assert_eq!(ours.to_string(), "module not found in the cache");
    }

    #[test]
    fn a_damaged_entry_is_a_miss_and_store_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let hash = Hash::generate(b"damaged");
        let cache = PackCache::new(dir.path());
        let identity = EngineIdentity::of(engine).to_pack_identity();
        // Checksum intact, artifact refused by wasmer: what a broken build would leave.
        Pack::create(cache.pack_path(engine).unwrap(), &identity)
            .unwrap()
            .insert(&key_of(hash), b"junk")
            .unwrap();
        let mut cache = WasmerCache::new(cache, engine);
        // SAFETY: the pack is private to this test; its junk entry must never reach wasmer.
        let miss = unsafe { cache.load(engine, hash) }.unwrap_err();
        assert_eq!(io_kind(&miss), Some(io::ErrorKind::NotFound));
        assert_eq!(cache.cache().stats().stale, 1);
        cache.store(hash, &compiled(22)).unwrap();
        let fresh = WasmerCache::new(PackCache::new(dir.path()), engine);
        // SAFETY: the pack is private to this test; `store` just wrote the module.
        let loaded = unsafe { fresh.load(engine, hash) }.unwrap();
        assert_eq!(answer(&loaded, engine), 22);
    }

    #[test]
    fn keys_keep_their_bytes_and_hash_matches_wasmpak_s_keys() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(module_hash(Hash::new(bytes)).as_bytes(), &bytes);
        let wasm = wat_module(23);
        assert_eq!(
            module_hash(WasmerCache::<PackCache>::hash(&wasm)),
            ModuleHash::new(&wasm)
        );

        // A module saved through `ModuleCache` (as `wasmpak build` keys it) loads through
        // the door under `WasmerCache::hash`.
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        futures::executor::block_on(PackCache::new(dir.path()).save(
            key(23),
            engine,
            &compiled(23),
        ))
        .unwrap();
        let cache = WasmerCache::new(PackCache::new(dir.path()), engine);
        // SAFETY: the pack is private to this test.
        let loaded = unsafe { cache.load(engine, WasmerCache::<PackCache>::hash(&wasm)) }.unwrap();
        assert_eq!(answer(&loaded, engine), 23);
    }

    #[test]
    fn an_engine_of_another_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WasmerCache::new(PackCache::new(dir.path()), engine());
        let other = engine_without_cpu_features();
        // SAFETY: the cache is empty; the load is refused before it looks.
        let refused = unsafe { cache.load(other, Hash::generate(b"x")) }.unwrap_err();
        assert!(
            matches!(refused, DeserializeError::Incompatible(_)),
            "{refused}"
        );
        assert!(refused.to_string().contains("one WasmerCache per engine"));
        // Another engine of the same identity is this cache's engine.
        let twin = Engine::default();
        // SAFETY: the cache is empty; nothing can come out of it.
        let miss = unsafe { cache.load(&twin, Hash::generate(b"x")) }.unwrap_err();
        assert_eq!(io_kind(&miss), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn file_errors_keep_their_kind_and_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("not-a-directory");
        std::fs::write(&not_a_dir, b"").unwrap();
        let mut cache = WasmerCache::new(PackCache::new(&not_a_dir), engine());
        let error = cache
            .store(Hash::generate(b"y"), &compiled(24))
            .unwrap_err();
        let SerializeError::Io(io_error) = &error else {
            panic!("an I/O error, got {error}");
        };
        assert!(error.to_string().contains("not-a-directory"), "{error}");
        let inner = io_error
            .get_ref()
            .and_then(|e| e.downcast_ref::<CacheError>());
        assert!(
            matches!(
                inner,
                Some(CacheError::FileWrite { .. } | CacheError::FileRead { .. })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn any_module_cache_fits() {
        let engine = engine();
        let mut cache = WasmerCache::new(crate::SharedCache::new(), engine);
        let hash = Hash::generate(b"shared");
        cache.store(hash, &compiled(25)).unwrap();
        // SAFETY: an in-memory cache holds only modules this test stored.
        let loaded = unsafe { cache.load(engine, hash) }.unwrap();
        assert_eq!(answer(&loaded, engine), 25);
    }
}

//! Turning an artifact back into a wasmer `Module`, through the library's one audited
//! deserialization (`wasmpak::load_module` for pack entries, `FileSystemCache::load_file` for
//! a runtime's cache files): the tool has no `unsafe` deserialize of its own.
//!
//! `run` and `verify --deep` load entries of a pack named on the command line, `import` the
//! artifact files of a runtime's cache, `demo` drives the `wasmer-cache` it compares the pack
//! with, through that crate's own (unsafe) API.

use std::path::Path;

use wasmer::{DeserializeError, Engine, Module};
use wasmpak::{CacheError, FileSystemCache, Key, Pack};

/// Why an entry could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The pack had no value under the key.
    Missing,
    /// The pack refused the value, e.g. a checksum mismatch or no trusted signature.
    Pack(wasmpak::Error),
    /// wasmer refused the bytes.
    Wasmer(DeserializeError),
    /// Anything else: the file could not be read, or the engine cannot load the pack.
    Other(CacheError),
}

/// Loads the value under `key` from `pack` with `engine`, after the library's identity,
/// integrity and signature checks (`engine` may be a headless engine of this host, which
/// loads any compiler's artifacts for its target: `verify --deep`).
pub fn load(pack: &Pack, key: &Key, engine: &Engine) -> Result<Module, LoadError> {
    wasmpak::load_module(pack, key, engine).map_err(|error| match error {
        CacheError::NotFound => LoadError::Missing,
        CacheError::Deserialize(e) => LoadError::Wasmer(e),
        CacheError::Other(source) => match source.downcast::<wasmpak::Error>() {
            Ok(pack_error) => LoadError::Pack(*pack_error),
            Err(source) => LoadError::Other(CacheError::Other(source)),
        },
        other => LoadError::Other(other),
    })
}

/// Loads an artifact file that a runtime's module cache wrote (`import`), with wasmer's
/// validation of its layout. The caller must only pass files the user named as such: the
/// library trusts them as the runtime that wrote them does.
pub fn load_cached_file(engine: &Engine, path: &Path) -> Result<Module, CacheError> {
    FileSystemCache::load_file(path, engine)
}

/// `wasmer_cache::Cache::load`, whose contract is unsafe: for `demo`'s comparison, which
/// drives that cache the way its users do (the peer's own API, not our deserialization).
#[allow(unsafe_code)]
pub fn load_from_wasmer_cache(
    cache: &wasmer_cache::FileSystemCache,
    engine: &Engine,
    key: wasmer_cache::Hash,
) -> Result<Module, String> {
    use wasmer_cache::Cache;
    // SAFETY: the demo's temporary directory holds only what `save` stored moments ago with
    // this engine: `Module::serialize` output of an engine of this configuration, which is
    // what `Cache::load` requires (it hands the file to `Module::deserialize_from_file`).
    unsafe { cache.load(engine, key) }.map_err(|e| e.to_string())
}

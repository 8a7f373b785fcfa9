//! Turning an artifact back into a wasmer `Module`: every `unsafe` deserialization of the tool,
//! in one module.
//!
//! `run` and `verify --deep` need it for a pack named on the command line, `import` for the
//! artifact files of a runtime's cache, `demo` for the `wasmer-cache` it compares the pack
//! with. The library's one audited deserialize replaces these calls.

use bytes::Bytes;
use wasmer::{DeserializeError, Engine, Module};
use wasmpak::{Key, Pack};

/// Why an entry could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The pack had no value under the key.
    Missing,
    /// The pack failed to read the value, e.g. a checksum mismatch.
    Pack(wasmpak::Error),
    /// wasmer refused the bytes.
    Wasmer(DeserializeError),
}

/// Reads the value under `key` from `pack` and deserializes it with `engine`.
///
/// The caller must have checked that `engine` can run code built for `pack`'s identity:
/// either the pack was opened with `engine`'s own identity (`run`), or
/// [`host_can_load`](crate::engine::host_can_load) accepted the pack's identity and `engine`
/// is a headless engine of this host (`verify --deep`).
pub fn load(pack: &Pack, key: &Key, engine: &Engine) -> Result<Module, LoadError> {
    let bytes: Bytes = match pack.get(key) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(LoadError::Missing),
        Err(e) => return Err(LoadError::Pack(e)),
    };
    deserialize(engine, bytes).map_err(LoadError::Wasmer)
}

/// Deserializes an artifact file that a runtime's module cache wrote (`import`). The caller
/// must only pass files the user named as such.
#[allow(unsafe_code)]
pub fn load_cached_file(engine: &Engine, bytes: Bytes) -> Result<Module, DeserializeError> {
    // SAFETY: `Module::deserialize` requires bytes that `Module::serialize` produced for an
    // engine compatible with `engine`. (1) Compatible: wasmer checks the artifact's magic,
    // ABI version and that `engine`'s target has every CPU feature the code needs, and
    // refuses the bytes otherwise; `import` only keeps what it accepts. (2) Produced by
    // `serialize`: the user names these files as the artifacts their runtime's cache wrote
    // (wasix's `FileSystemCache` writes them with `Module::serialize` and loads them with
    // this very call, unchecked too); `import` extends exactly the trust that runtime
    // already places in them, and its documentation says to import nothing else. (3) The
    // `Bytes` owns its buffer, which wasmer keeps with the module.
    // SAFETY: (1)–(3) above: wasmer checks compatibility, the user vouches for the files.
    unsafe { Module::deserialize(engine, bytes) }
}

/// The `unsafe` call for artifacts read from packs, kept in a function of its own so that
/// its contract is stated once.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: Bytes) -> Result<Module, DeserializeError> {
    // SAFETY: `Module::deserialize` requires bytes that `Module::serialize` produced for an
    // engine compatible with `engine`, unchanged for as long as the module lives.
    // (1) Compatible: see `load`'s contract; wasmer also checks the artifact's magic, ABI
    //     version and that the engine's target has the CPU features the code needs.
    // (2) Produced by `serialize`: `bytes` comes from `Pack::get` on a pack opened in this
    //     process with the default `Verify::Once` policy, so its CRC-32 was checked against
    //     the one computed when the value was written; a torn write or flipped bit is an
    //     error before wasmer sees a byte. The pack is refused if users other than its owner
    //     or root can write it, so only someone who could already run code as its owner can
    //     forge one. (In wasmer 7.4.2 `Module::deserialize` does not validate the layout
    //     either, so this is all that stands between a forged pack and undefined behaviour:
    //     the same trust a runtime places in its cache.)
    // (3) Unchanged and alive: `bytes` owns a reference to the pack's read-only mapping,
    //     which wasmer keeps with the artifact; the format never rewrites or truncates
    //     committed bytes. Payloads are 64-byte aligned in a page-aligned mapping.
    // SAFETY: (1)–(3) above: a compatible engine, checked bytes, alive and unchanged.
    unsafe { Module::deserialize(engine, bytes) }
}

/// `wasmer_cache::Cache::load`, whose contract is unsafe: for `demo`'s comparison, which
/// drives that cache the way its users do.
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

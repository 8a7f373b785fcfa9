//! The one place stored bytes become a wasmer [`Module`]: the crate's only `unsafe`
//! deserialization, and the checks that make it sound.
//!
//! # The contract
//!
//! `Module::deserialize_unchecked` and `Module::deserialize_from_file` load machine code and
//! run it later, so wasmer requires their input to be an artifact that `Module::serialize`
//! produced for an engine compatible with the one loading it, unchanged for as long as the
//! module lives (`deserialize_unchecked` also trusts the archive's layout; the file variant
//! validates it). Nothing reaches that call but a [`CheckedArtifact`], which only the
//! constructors below can make, each after the checks for its source:
//!
//! 1. **A pack value** ([`CheckedArtifact::from_pack`]).
//!    - *Compatible engine:* the pack's identity passed [`Known::can_load`] for this engine
//!      (same compiler unless the engine has none, artifact format, ABI version and target,
//!      and a subset of its CPU features), and a pack only holds artifacts that an engine of
//!      its identity serialized (every writer stores `serialize`'s output under its own
//!      identity).
//!    - *The bytes `serialize` produced:* `Pack::get` checked them before handing them out:
//!      against the CRC-32 computed from `serialize`'s output when the value was written
//!      (once per value and process, as committed bytes are never rewritten); with trusted
//!      keys, against the BLAKE3 hash a trusted key signed, which also stops forgeries; or,
//!      on the `unsafe` `trust_installed` path, by the install that verified the sealed,
//!      read-only file, which that option's contract keeps unchanged since. A pack whose
//!      `get` checks no bytes (opened with `Verify::Never` and without `trust_installed`) is
//!      refused before any read: see `Pack::verifies_values`.
//!    - *Unchanged and alive:* the `Bytes` holds the read-only mapping (or the `&'static`
//!      or `Bytes` of an embedded pack) alive, and the format never modifies or truncates
//!      committed bytes.
//! 2. **A module object** of the object store tier ([`CheckedArtifact::from_module_object`]):
//!    its header and the artifact's CRC-32 were checked by `format::object::decode`, its
//!    identity is exactly this engine's (uploads store `serialize`'s output under the
//!    uploader's identity), its key the one asked for; the artifact is an owned buffer.
//! 3. **A file of the file-per-module cache** ([`CheckedArtifact::from_cache_file`]): files
//!    carry no checksum, so this source rests on how they are written and on wasmer's own
//!    checks. The cache only creates a file by renaming a complete, synced temporary file
//!    into place, so a mapped file is never written to or truncated (a later save replaces
//!    the directory entry, not the inode), and `deserialize_from_file` validates the archive
//!    layout, so a torn, truncated, stale or foreign file fails cleanly. It cannot catch a
//!    change that keeps the layout valid: that is what the checksums of the other sources add.
//!
//! For every source the bytes are 64-byte aligned, as rkyv's archived types need (copied
//! into an aligned buffer where they are not), and wasmer still checks the magic, the ABI
//! version and the CPU features itself. No check stops a forgery by someone who can write
//! the storage: packs and files writable by other users are refused by the pack layer, the
//! object store is an access-control matter, and signatures narrow "whoever can write it" to
//! "whoever holds the key".

use std::path::{Path, PathBuf};

use bytes::Bytes;
use wasmer::{DeserializeError, Engine, Module};

use super::CacheError;
use crate::engine::loadable;
use crate::{Key, Pack};

/// An artifact that passed the checks of its source for one engine: the precondition of the
/// `unsafe` deserialization, carried by a type only this module's constructors make.
pub(crate) struct CheckedArtifact {
    engine: Engine,
    source: Source,
}

enum Source {
    /// Exactly the bytes `serialize` produced, checked, aligned, immutable and owned.
    Bytes(Bytes),
    /// A file of the file-per-module cache, only ever written whole by rename.
    CacheFile(PathBuf),
}

impl CheckedArtifact {
    /// The value under `key` in `pack`, for `engine`; `None` if the pack has no value there.
    /// Fails if the pack does not check its values' bytes (`Verify::Never`), if `engine`
    /// cannot load the pack's artifacts ([`CacheErrorKind::Incompatible`]) or the pack
    /// refuses the value (corrupt, untrusted, unreadable).
    ///
    /// [`CacheErrorKind::Incompatible`]: super::CacheErrorKind::Incompatible
    pub(crate) fn from_pack(
        pack: &Pack,
        key: &Key,
        engine: &Engine,
    ) -> Result<Option<CheckedArtifact>, CacheError> {
        if !pack.verifies_values() {
            return Err(CacheError::other(std::io::Error::other(format!(
                "refusing to load a module from pack {}: it was opened with Verify::Never, so \
                 nothing checks its bytes before wasmer's unchecked deserialization; open it \
                 with Verify::Once or Verify::Always",
                pack.path().display()
            ))));
        }
        loadable::known(engine)
            .can_load(pack.identity())
            .map_err(CacheError::other)?;
        let bytes = pack.get(key).map_err(CacheError::from_pack_read)?;
        Ok(bytes.map(|bytes| CheckedArtifact::bytes(engine, bytes)))
    }

    /// The artifact of a downloaded module object, if the object is intact, for `engine`'s
    /// identity exactly, and holds `key`; otherwise why not, in a phrase for a warning.
    #[cfg(feature = "object-store")]
    pub(crate) fn from_module_object(
        object: &Bytes,
        key: &super::ModuleHash,
        engine: &Engine,
    ) -> Result<CheckedArtifact, String> {
        let decoded =
            crate::format::object::decode(object).map_err(|e| format!("damaged object: {e}"))?;
        let known = loadable::known(engine);
        if decoded.identity != known.encoded.as_slice() {
            let theirs = crate::PackIdentity::decode(decoded.identity).map_or_else(
                |e| format!("an undecodable identity ({e})"),
                |i| i.to_string(),
            );
            return Err(format!("object for another engine identity: {theirs}"));
        }
        if decoded.key.as_slice() != key.as_bytes() {
            return Err("object holds another key".to_string());
        }
        let artifact = object.slice(decoded.value_offset..);
        Ok(CheckedArtifact::bytes(engine, artifact))
    }

    /// The file at `path` of a file-per-module cache (ours or wasix's, which write files the
    /// same way), for `engine`. Nothing is checked here: this source rests on how such files
    /// are written and on wasmer's validation of the file (see the module documentation).
    pub(crate) fn from_cache_file(path: &Path, engine: &Engine) -> CheckedArtifact {
        CheckedArtifact {
            engine: engine.clone(),
            source: Source::CacheFile(path.to_path_buf()),
        }
    }

    fn bytes(engine: &Engine, bytes: Bytes) -> CheckedArtifact {
        CheckedArtifact {
            engine: engine.clone(),
            source: Source::Bytes(aligned(bytes)),
        }
    }

    /// The artifact's length in bytes; `None` for a file, which is not read here.
    pub(crate) fn len(&self) -> Option<u64> {
        match &self.source {
            Source::Bytes(bytes) => Some(bytes.len() as u64),
            Source::CacheFile(_) => None,
        }
    }

    /// The artifact's bytes (a cheap clone, sharing them); `None` for a file, which is not
    /// read here.
    pub(crate) fn bytes_shared(&self) -> Option<Bytes> {
        match &self.source {
            Source::Bytes(bytes) => Some(bytes.clone()),
            Source::CacheFile(_) => None,
        }
    }

    /// The module, or wasmer's reason for refusing the artifact.
    #[allow(unsafe_code)] // The crate's one `unsafe` deserialization; its contract is the module's.
    pub(crate) fn deserialize(self) -> Result<Module, DeserializeError> {
        let CheckedArtifact { engine, source } = self;
        // SAFETY: a `CheckedArtifact` exists only once the checks of its source, listed in
        // this module's documentation, have passed for `engine`: a compatible engine, exactly
        // the bytes `serialize` produced (checksummed or signed, or a file written whole by
        // rename whose layout wasmer validates), 64-byte aligned, alive and unchanged for as
        // long as wasmer keeps them.
        unsafe {
            match source {
                Source::Bytes(bytes) => Module::deserialize_unchecked(&engine, bytes),
                Source::CacheFile(path) => Module::deserialize_from_file(&engine, path),
            }
        }
    }
}

/// `bytes` at an address aligned for wasmer's archived artifact (copied only if needed).
pub(crate) fn aligned(bytes: Bytes) -> Bytes {
    const ALIGN: usize = crate::format::ALIGN as usize;
    if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        return bytes;
    }
    let mut buffer = vec![0u8; bytes.len() + ALIGN];
    let start = buffer.as_ptr().align_offset(ALIGN);
    buffer[start..start + bytes.len()].copy_from_slice(&bytes);
    // `Bytes::from(Vec)` keeps the allocation, so the slice stays aligned.
    Bytes::from(buffer).slice(start..start + bytes.len())
}

/// Loads the module under `key` in `pack` for `engine`: the safe way to turn a pack entry
/// into a [`Module`] outside a [`PackCache`](crate::PackCache) (a tool verifying or running
/// a pack it was handed).
///
/// Checks that `engine` can load the pack's artifacts (its identity, as
/// [`EngineIdentity::can_load`](crate::EngineIdentity::can_load) decides; an engine without
/// a compiler, such as `Engine::headless()`, loads any compiler's), reads the value through
/// [`Pack::get`] with the pack's integrity and signature checks, and deserializes it.
///
/// # Errors
///
/// [`CacheErrorKind`](crate::CacheErrorKind) `NotFound` if the pack has no value under `key`;
/// `Incompatible` if `engine` cannot load the pack's artifacts; `Corrupt` or `Untrusted` if
/// the pack refuses the value; `Deserialize` if wasmer refuses it; `Read` if the file cannot
/// be read; `Other` if the pack was opened with [`Verify::Never`](crate::Verify::Never)
/// (without `trust_installed`), since nothing would check the bytes wasmer is handed.
///
/// # Example
///
/// ```
/// use wasmer::sys::NativeEngineExt;
/// use wasmer::{Engine, Module};
/// use wasmpak::{CacheErrorKind, EngineIdentity, Key, Pack, load_module};
///
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::default();
/// let wasm = wasmer::wat2wasm(br#"(module (func (export "one") (result i32) i32.const 1))"#)?;
/// let identity = EngineIdentity::of(&engine).to_pack_identity();
/// let pack = Pack::create(dir.path().join("modules.wpk"), &identity)?;
/// let key = Key::from_bytes([1; 32]);
/// pack.insert(&key, &Module::new(&engine, &wasm)?.serialize()?)?;
///
/// let module = load_module(&pack, &key, &engine)?;
/// assert!(module.exports().any(|export| export.name() == "one"));
/// // A headless engine of this host loads it too; a missing key is a miss.
/// assert!(load_module(&pack, &key, &Engine::headless()).is_ok());
/// let missing = load_module(&pack, &Key::from_bytes([2; 32]), &engine).unwrap_err();
/// assert_eq!(missing.kind(), CacheErrorKind::NotFound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_module(pack: &Pack, key: &Key, engine: &Engine) -> Result<Module, CacheError> {
    let artifact = CheckedArtifact::from_pack(pack, key, engine)?.ok_or(CacheError::NotFound)?;
    Ok(artifact.deserialize()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheErrorKind;
    use crate::cache::test_support::{answer, compiled, engine, engine_without_cpu_features};
    use crate::{EngineIdentity, PackIdentity};

    fn pack_of(identity: &PackIdentity, dir: &Path, value: &[u8]) -> (Pack, Key) {
        let pack = Pack::create(dir.join("p.wpk"), identity).unwrap();
        let key = Key::from_bytes([9; 32]);
        pack.insert(&key, value).unwrap();
        (pack, key)
    }

    /// A pack of [`engine`]'s identity in `dir` holding `value`, with that identity.
    fn engine_pack(dir: &Path, value: &[u8]) -> (Pack, Key, PackIdentity) {
        let identity = EngineIdentity::of(engine()).to_pack_identity();
        let (pack, key) = pack_of(&identity, dir, value);
        (pack, key, identity)
    }

    #[test]
    fn loads_an_entry_and_refuses_what_the_engine_cannot_load() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (pack, key, _) = engine_pack(dir.path(), &compiled(5).serialize().unwrap());
        let module = load_module(&pack, &key, engine).unwrap();
        assert_eq!(answer(&module, engine), 5);
        assert_eq!(
            module.serialize().unwrap(),
            compiled(5).serialize().unwrap()
        );

        let lower = engine_without_cpu_features();
        if EngineIdentity::of(lower) != EngineIdentity::of(engine) {
            let refused = load_module(&pack, &key, lower).unwrap_err();
            assert_eq!(refused.kind(), CacheErrorKind::Incompatible, "{refused}");
        }
    }

    #[test]
    fn refuses_a_pack_that_is_not_an_engine_s() {
        let dir = tempfile::tempdir().unwrap();
        let identity = PackIdentity::new().with("engine", "demo");
        let (pack, key) = pack_of(&identity, dir.path(), b"not an artifact");
        let refused = load_module(&pack, &key, engine()).unwrap_err();
        assert_eq!(refused.kind(), CacheErrorKind::Incompatible, "{refused}");
        assert!(refused.to_string().contains("engine=demo"), "{refused}");
    }

    #[test]
    fn a_damaged_value_never_reaches_wasmer() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (pack, key, identity) = engine_pack(dir.path(), &compiled(6).serialize().unwrap());
        let offset = pack.iter().unwrap().next().unwrap().offset();
        drop(pack);
        let path = dir.path().join("p.wpk");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"\xde\xad", offset + 100).unwrap();
        let pack = Pack::open(&path, &identity).unwrap();
        let refused = load_module(&pack, &key, engine).unwrap_err();
        assert_eq!(refused.kind(), CacheErrorKind::Corrupt, "{refused}");
    }

    #[test]
    fn checksummed_bytes_that_are_no_artifact_are_refused_by_wasmer() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (pack, key, _) = engine_pack(dir.path(), b"checksummed, but not an artifact");
        let refused = load_module(&pack, &key, engine).unwrap_err();
        assert_eq!(refused.kind(), CacheErrorKind::Deserialize, "{refused}");
    }

    #[test]
    fn a_pack_that_checks_no_bytes_is_refused_before_any_read() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (pack, key, identity) = engine_pack(dir.path(), &compiled(7).serialize().unwrap());
        drop(pack);
        let path = dir.path().join("p.wpk");
        let never = crate::PackOptions::new().verify(crate::Verify::Never);
        let unchecked = never.open(&path, &identity).unwrap();
        let refused = load_module(&unchecked, &key, engine).unwrap_err();
        assert_eq!(refused.kind(), CacheErrorKind::Other, "{refused}");
        let message = refused.to_string();
        assert!(
            message.contains("Verify::Never") && message.contains("p.wpk"),
            "{message}"
        );
        // Trusted keys would check lengths and labels under `Verify::Never`, not the bytes:
        // such a pack does not even open.
        let vendor = crate::SecretKey::generate().unwrap();
        let signer = Pack::open(&path, &identity).unwrap();
        signer.sign(&vendor).unwrap();
        drop(signer);
        let keyed = never.trusted_keys([vendor.public_key()]);
        let refused = keyed.open(&path, &identity).unwrap_err();
        assert_eq!(refused.kind(), crate::ErrorKind::InvalidInput, "{refused}");
        // Either check on its own lets the same entry through.
        for verify in [crate::Verify::Once, crate::Verify::Always] {
            let checked = crate::PackOptions::new().verify(verify);
            let module = load_module(&checked.open(&path, &identity).unwrap(), &key, engine);
            assert_eq!(answer(&module.unwrap(), engine), 7);
        }
        let signed = crate::PackOptions::new().trusted_keys([vendor.public_key()]);
        let module = load_module(&signed.open(&path, &identity).unwrap(), &key, engine);
        assert_eq!(answer(&module.unwrap(), engine), 7);
    }

    #[test]
    fn unaligned_bytes_are_realigned() {
        let bytes = Bytes::from(vec![7u8; 200]);
        let odd = bytes.slice(3..133);
        let fixed = aligned(odd.clone());
        assert_eq!(fixed, odd);
        assert!((fixed.as_ptr() as usize).is_multiple_of(64));
    }
}

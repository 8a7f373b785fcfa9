//! One module as one object: where it lives, what is checked before wasmer sees it, and the
//! `unsafe` deserialization those checks make sound.

use ::object_store::path::Path as ObjectPath;
use bytes::Bytes;
use wasmer::{Engine, Module};

use super::{EXTENSION, Tier};
use crate::cache::ModuleHash;
use crate::format::object;

/// The object of `key` in an engine's folder.
pub(super) fn object_in(tier: &Tier, key: ModuleHash) -> ObjectPath {
    tier.folder
        .clone()
        .join(format!("{key}.{EXTENSION}").as_str())
}

pub(super) fn key_bytes(key: &ModuleHash) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.as_bytes());
    bytes
}

/// Checks a downloaded object against what the load expects; returns where the artifact
/// starts.
pub(super) fn check(bytes: &[u8], identity: &[u8], key: &ModuleHash) -> Result<usize, String> {
    let decoded = object::decode(bytes).map_err(|e| format!("damaged object: {e}"))?;
    if decoded.identity != identity {
        let theirs = crate::PackIdentity::decode(decoded.identity).map_or_else(
            |e| format!("an undecodable identity ({e})"),
            |i| i.to_string(),
        );
        return Err(format!("object for another engine identity: {theirs}"));
    }
    if decoded.key != key_bytes(key) {
        return Err("object holds another key".to_string());
    }
    Ok(decoded.value_offset)
}

/// `bytes` at an address aligned for wasmer's archived artifact (copied only if needed).
pub(super) fn aligned(bytes: Bytes) -> Bytes {
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

/// Deserializes an artifact downloaded from the store.
#[allow(unsafe_code)] // The one `unsafe` call of this tier; its contract is below.
pub(super) fn deserialize(
    engine: &Engine,
    artifact: Bytes,
) -> Result<Module, wasmer::DeserializeError> {
    if !(artifact.as_ptr() as usize).is_multiple_of(crate::format::ALIGN as usize) {
        return Err(wasmer::DeserializeError::Generic(
            "the artifact is not aligned".to_string(),
        ));
    }
    // Why this is sound: `Module::deserialize_unchecked` requires bytes that `Module::serialize`
    // produced for a compatible engine, which stay valid while the module lives. (1) The
    // object's identity (deterministic id, artifact format, ABI version, target triple, CPU
    // features) equals this engine's, checked by `check`, and uploads only ever store
    // `serialize`'s output under the uploading engine's identity. (2) The object's CRC-32 of
    // the artifact, computed from `serialize`'s output at upload, matched the bytes, so they
    // are not torn, truncated or flipped. (3) The bytes are 64-byte aligned (checked just
    // above), as rkyv's archived types need. (4) The `Bytes` owns its buffer, which wasmer
    // keeps for the artifact's lifetime, and nothing else writes to it. wasmer still checks
    // the magic, ABI version and CPU features itself. A CRC cannot stop a forgery by someone
    // who can write the bucket: that is an access-control matter, as documented above.
    // SAFETY: (1)–(4) above: this engine's identity, checked bytes, aligned, owned.
    unsafe { Module::deserialize_unchecked(engine, artifact) }
}

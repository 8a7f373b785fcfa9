//! One module as one object: where it lives. What is checked before wasmer sees it is
//! `CheckedArtifact::from_module_object`'s (`cache/artifact.rs`).

use ::object_store::path::Path as ObjectPath;

use super::{EXTENSION, Tier};
use crate::cache::ModuleHash;

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

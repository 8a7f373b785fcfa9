//! One module as one object: where it lives. What is checked before wasmer sees it is
//! `CheckedArtifact::from_module_object`'s (`cache/artifact.rs`).

use std::sync::Arc;

use ::object_store::path::Path as ObjectPath;

use crate::cache::ModuleHash;
use crate::engine::loadable::Known;

/// The file name extension of module objects.
pub(super) const EXTENSION: &str = "wpkm";

/// What the objects of one engine are stored under: its identity and its folder.
#[derive(Debug)]
pub(super) struct Tier {
    pub(super) engine: Arc<Known>,
    pub(super) folder: ObjectPath,
}

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

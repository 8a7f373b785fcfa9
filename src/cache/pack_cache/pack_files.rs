//! The pack files a [`PackCache`](super::PackCache) knows: where they are, how they are
//! opened, and one handle (a [`PackSlot`]) per file, shared by every engine that reads it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::PackOptions;
use crate::sync::lock;

use super::slot::PackSlot;

/// Where a cache's packs are.
#[derive(Debug, Clone, Default)]
pub(super) struct Sources {
    /// The directory of the cache's own packs (written), if any.
    pub(super) local_dir: Option<PathBuf>,
    /// Pack files shipped with the application (only read), in the order given.
    pub(super) shipped_packs: Vec<PathBuf>,
    /// Directories of shipped packs named by identity (only read).
    pub(super) shipped_dirs: Vec<PathBuf>,
    /// Packs held in memory (embedded in the binary), read first, with the names errors and
    /// warnings give them.
    pub(super) embedded_packs: Vec<(PathBuf, bytes::Bytes)>,
}

/// The cache's pack files: its sources, the options every pack is opened with, and the slot
/// of each file opened so far.
#[derive(Debug)]
pub(super) struct PackFiles {
    pub(super) sources: Sources,
    pub(super) options: PackOptions,
    /// Every pack file this cache reads or writes, by path: one handle per file.
    slots: Mutex<HashMap<PathBuf, Arc<PackSlot>>>,
}

impl PackFiles {
    pub(super) fn new(sources: Sources, options: PackOptions) -> PackFiles {
        PackFiles {
            sources,
            options,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of the pack file at `path`, made by `make` on first use.
    pub(super) fn slot(&self, path: &Path, make: impl FnOnce() -> PackSlot) -> Arc<PackSlot> {
        lock(&self.slots)
            .entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// The slots of every pack file opened so far.
    pub(super) fn all(&self) -> Vec<Arc<PackSlot>> {
        lock(&self.slots).values().cloned().collect()
    }
}

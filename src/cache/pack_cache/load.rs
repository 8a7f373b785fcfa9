//! Loading: the packs already open are looked at inline; anything that needs the file system
//! (opening a pack, listing a directory) or a large artifact's checksum and deserialization
//! goes to the blocking pool, so that an async caller's executor stays free.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmer::{Engine, Module};

use crate::cache::artifact::CheckedArtifact;
use crate::cache::blocking::run_blocking;
use crate::cache::{CacheError, CacheErrorKind};
use crate::{Key, Pack};

use super::PackCache;
use super::pack_set::{Layers, PackSet};
use super::slot::{PackSlot, is_stale};

/// Inside a tokio runtime, the first load of an artifact this large (checksum, page faults,
/// deserialization) runs on the blocking pool, so that the executor stays free for other
/// tasks; smaller ones run inline. Measured with `benches/load_async.rs`: the trip to the pool
/// costs about 20 µs, and an inline first load of 107 KB about 40 µs (3.7 MB: 1 ms), so below
/// this size offloading would slow the load by half while sparing other tasks little.
pub(super) const INLINE_LOAD_BYTES: u64 = 128 << 10;

/// What a look at the packs already open found, without touching the file system.
enum Probe {
    /// A small entry in this open pack: load it here.
    Small(Arc<PackSlot>, Pack),
    /// No open pack has the key, and every pack is open.
    Missing(Arc<Layers>),
    /// Something needs the file system or is large: load on the blocking pool.
    Blocking,
}

impl PackCache {
    /// The loaded module under `key` from the first pack of `set` that has a usable one.
    pub(super) async fn load_from_packs(
        &self,
        set: &Arc<PackSet>,
        key: Key,
        engine: &Engine,
    ) -> Result<Module, CacheError> {
        let mut skip = None;
        match self.probe(set, &key) {
            Probe::Small(slot, pack) => match self.read_from(&slot, &pack, &key, engine)? {
                Some(module) => return Ok(module),
                None => skip = Some(slot.path.clone()),
            },
            Probe::Missing(layers) if !set.rescan_due() => {
                self.report_unusable(set, &layers);
                return Err(CacheError::NotFound);
            }
            Probe::Missing(_) | Probe::Blocking => {}
        }
        let (cache, set, engine) = (self.clone(), set.clone(), engine.clone());
        run_blocking(move || cache.load_blocking(&set, &key, &engine, skip)).await
    }

    /// Looks for `key` in the packs already open, touching nothing but mapped memory.
    fn probe(&self, set: &PackSet, key: &Key) -> Probe {
        let Some(layers) = set.layers() else {
            return Probe::Blocking;
        };
        let mut passed_over_own = false;
        for slot in &layers.readable {
            let Some(pack) = slot.open_pack() else {
                if slot.recently_absent() {
                    passed_over_own |= slot.may_appear();
                    continue;
                }
                return Probe::Blocking;
            };
            match pack.value_len(key) {
                Ok(Some(len)) if len < INLINE_LOAD_BYTES => {
                    return Probe::Small(slot.clone(), pack);
                }
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return Probe::Blocking,
            }
        }
        if passed_over_own {
            return Probe::Blocking;
        }
        Probe::Missing(layers)
    }

    /// The whole load, opening packs and listing directories as needed. Blocks.
    fn load_blocking(
        &self,
        set: &PackSet,
        key: &Key,
        engine: &Engine,
        skip: Option<PathBuf>,
    ) -> Result<Module, CacheError> {
        let mut layers = set.layers_or_build(&self.inner);
        let mut tried: HashSet<PathBuf> = skip.into_iter().collect();
        let mut first_error = None;
        loop {
            for slot in &layers.readable {
                if !tried.insert(slot.path.clone()) {
                    continue;
                }
                let on_stale = |e: &crate::Error| self.inner.stale("unusable module pack", e);
                let found = slot
                    .for_read(&self.inner.pack_options, on_stale)
                    .and_then(|pack| match pack {
                        Some(pack) => self.read_from(slot, &pack, key, engine),
                        None => Ok(None),
                    });
                match found {
                    Ok(Some(module)) => return Ok(module),
                    Ok(None) => {}
                    // One unreadable pack must not hide the others.
                    Err(error) => {
                        tracing::warn!(%error, "cannot read a module pack");
                        first_error.get_or_insert(error);
                    }
                }
            }
            if !set.rescan_due() {
                break;
            }
            layers = set.rebuild(&self.inner, true);
        }
        self.report_unusable(set, &layers);
        Err(first_error.unwrap_or(CacheError::NotFound))
    }

    /// The module under `key` in `pack`, deserialized and memoized; `None` if the pack has no
    /// usable entry for it.
    fn read_from(
        &self,
        slot: &PackSlot,
        pack: &Pack,
        key: &Key,
        engine: &Engine,
    ) -> Result<Option<Module>, CacheError> {
        let artifact = match CheckedArtifact::from_pack(pack, key, engine) {
            Ok(Some(artifact)) => artifact,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == CacheErrorKind::Untrusted => {
                self.inner
                    .counters
                    .untrusted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "refusing an untrusted module; treating it as a cache miss");
                return Ok(None);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    CacheErrorKind::Corrupt | CacheErrorKind::Incompatible
                ) =>
            {
                self.inner.stale("unusable module entry", &e);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let len = artifact.len().unwrap_or(0);
        match artifact.deserialize() {
            Ok(module) => {
                self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                if let Some(recency) = &slot.recency {
                    recency.touch(key);
                }
                Ok(Some(self.inner.memo.insert(engine.id(), *key, module, len)))
            }
            Err(e) => {
                self.inner.stale("wasmer refused a cached module", &e);
                Ok(None)
            }
        }
    }

    fn report_unusable(&self, set: &PackSet, layers: &Layers) {
        let new = set.report_unusable(layers);
        self.inner
            .counters
            .unusable_packs
            .fetch_add(new, Ordering::Relaxed);
    }

    /// Whether an open pack has `key`, if every pack `set` reads is open and was listed.
    pub(super) fn contains_inline(&self, set: &PackSet, key: &Key) -> Option<bool> {
        let layers = set.layers()?;
        for slot in &layers.readable {
            let Some(pack) = slot.open_pack() else {
                if slot.recently_absent() && !slot.may_appear() {
                    continue;
                }
                return None;
            };
            match pack.contains(key) {
                Ok(true) => return Some(true),
                Ok(false) => {}
                Err(_) => return None,
            }
        }
        (!set.rescan_due()).then_some(false)
    }

    pub(super) fn contains_blocking(&self, set: &PackSet, key: &Key) -> Result<bool, CacheError> {
        let mut layers = set.layers_or_build(&self.inner);
        let mut first_error = None;
        loop {
            for slot in &layers.readable {
                let on_stale = |e: &crate::Error| self.inner.stale("unusable module pack", e);
                match slot.for_read(&self.inner.pack_options, on_stale) {
                    Ok(Some(pack)) => match pack.contains(key) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) if is_stale(e.kind()) => {}
                        Err(e) => {
                            first_error.get_or_insert(CacheError::from_pack_read(e));
                        }
                    },
                    Ok(None) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !set.rescan_due() {
                break;
            }
            layers = set.rebuild(&self.inner, true);
        }
        first_error.map_or(Ok(false), Err)
    }
}

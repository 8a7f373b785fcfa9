//! Loading: packs are opened and looked up where the load is awaited (opening a pack is a few
//! system calls, about 25 µs, less than a trip to tokio's blocking pool, whose first thread a
//! fresh process would have to start); a large artifact's checksum and deserialization run
//! where they stall no other task (see [`run_in_place`]); only listing directories again after
//! a miss, which is followed by a compile anyway, goes to the blocking pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmer::{Engine, Module};

use crate::cache::artifact::CheckedArtifact;
use crate::cache::blocking::{run_blocking, run_in_place};
use crate::cache::{CacheError, CacheErrorKind};
use crate::{Key, Pack};

use super::PackCache;
use super::pack_set::{Layers, PackSet};
use super::slot::{PackSlot, is_stale};

/// Inside a tokio runtime, the first load of an artifact this large (checksum, page faults,
/// deserialization) runs through [`run_in_place`], so that the executor stays free for other
/// tasks; smaller ones run inline. Measured with `benches/load_async.rs`: a trip to the pool
/// costs about 20 µs, and an inline first load of 107 KB about 40 µs (3.7 MB: 1 ms), so below
/// this size offloading would slow the load by half while sparing other tasks little.
pub(super) const INLINE_LOAD_BYTES: u64 = 128 << 10;

/// The packs a load or lookup offers the key to, in order, opened as needed. After the last,
/// if the directories are due for another look, it lists them on the blocking pool and goes on
/// with the packs not offered yet. One unreadable pack does not hide the others: the first
/// error is kept for the caller in case nothing is found.
struct Search<'a> {
    cache: &'a PackCache,
    set: &'a Arc<PackSet>,
    layers: Arc<Layers>,
    offered: Vec<Arc<PackSlot>>,
    first_error: Option<CacheError>,
}

impl<'a> Search<'a> {
    fn new(cache: &'a PackCache, set: &'a Arc<PackSet>) -> Search<'a> {
        Search {
            layers: set.layers_or_build(&cache.inner.files),
            cache,
            set,
            offered: Vec::new(),
            first_error: None,
        }
    }

    /// The next pack to look in, or `None` when every pack was offered.
    async fn next(&mut self) -> Option<(Arc<PackSlot>, Pack)> {
        let inner = &self.cache.inner;
        loop {
            let unoffered = self
                .layers
                .readable
                .iter()
                .find(|slot| !self.offered.iter().any(|seen| Arc::ptr_eq(seen, slot)))
                .cloned();
            if let Some(slot) = unoffered {
                self.offered.push(slot.clone());
                let on_stale = |e: &crate::Error| inner.stale("unusable module pack", e);
                match slot.for_read(&inner.files.options, on_stale) {
                    Ok(Some(pack)) => return Some((slot, pack)),
                    Ok(None) => {}
                    Err(error) => self.failed(error),
                }
                continue;
            }
            if !self.set.rescan_due() {
                return None;
            }
            let (cache, set) = (self.cache.clone(), self.set.clone());
            self.layers = run_blocking(move || set.rebuild(&cache.inner.files, true)).await;
        }
    }

    /// Notes that a pack could not be read.
    fn failed(&mut self, error: CacheError) {
        tracing::warn!(%error, "cannot read a module pack");
        self.first_error.get_or_insert(error);
    }
}

impl PackCache {
    /// The loaded module under `key` from the first pack of `set` that has a usable one.
    pub(super) async fn load_from_packs(
        &self,
        set: &Arc<PackSet>,
        key: Key,
        engine: &Engine,
    ) -> Result<Module, CacheError> {
        let mut search = Search::new(self, set);
        while let Some((slot, pack)) = search.next().await {
            match self.load_from(&slot, pack, &key, engine).await {
                Ok(Some(module)) => return Ok(module),
                Ok(None) => {}
                Err(error) => search.failed(error),
            }
        }
        self.report_unusable(set, &search.layers);
        Err(search.first_error.unwrap_or(CacheError::NotFound))
    }

    /// Whether a pack of `set` has `key` (no checksum is computed).
    pub(super) async fn contains_in_packs(
        &self,
        set: &Arc<PackSet>,
        key: Key,
    ) -> Result<bool, CacheError> {
        let mut search = Search::new(self, set);
        while let Some((_, pack)) = search.next().await {
            match pack.contains(&key) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) if is_stale(e.kind()) => {}
                Err(e) => search.failed(CacheError::from_pack_read(e)),
            }
        }
        search.first_error.map_or(Ok(false), Err)
    }

    /// The module under `key` in `pack`, loaded in place when small, else where it stalls no
    /// other task; `None` if the pack has no usable entry for it.
    async fn load_from(
        &self,
        slot: &Arc<PackSlot>,
        pack: Pack,
        key: &Key,
        engine: &Engine,
    ) -> Result<Option<Module>, CacheError> {
        let len = match pack.value_len(key) {
            Ok(None) => return Ok(None),
            Ok(Some(len)) => len,
            // `read_from` meets the same error and says what it means for the cache.
            Err(_) => 0,
        };
        if len < INLINE_LOAD_BYTES {
            return self.read_from(slot, &pack, key, engine);
        }
        let (cache, slot, key, engine) = (self.clone(), slot.clone(), *key, engine.clone());
        run_in_place(move || cache.read_from(&slot, &pack, &key, &engine)).await
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
        // Held until wasmer is done with the pages it copies from (the module keeps its own
        // reference to the artifact): then the pages the checksum and wasmer touched are given
        // back, and reading the artifact again (instantiating reads its data segments) maps
        // the pages it needs again.
        let value = artifact.bytes_shared();
        let deserialized = artifact.deserialize();
        if let Some(value) = value {
            pack.release(&value);
        }
        match deserialized {
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
}

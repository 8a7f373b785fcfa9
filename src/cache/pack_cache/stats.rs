//! What a [`PackCache`](super::PackCache) has done: the counters it keeps and the
//! [`CacheStats`] it reports.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) memo_hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) unusable_packs: AtomicU64,
    pub(super) saves: AtomicU64,
    pub(super) compactions: AtomicU64,
    pub(super) untrusted: AtomicU64,
}

/// What a [`PackCache`](super::PackCache) has done so far in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads served by deserializing from a pack.
    pub hits: u64,
    /// Loads served from the in-process memo.
    pub memo_hits: u64,
    /// Loads that found nothing usable (stale entries included).
    pub misses: u64,
    /// Packs or entries skipped as unusable: other identity, corrupt, refused by wasmer.
    pub stale: u64,
    /// Packs an engine could not use at all (CPU features it lacks, another wasmer or target,
    /// a shipped pack missing or damaged), counted once per pack and engine identity when a
    /// load first missed because of them; each is also named in a warning.
    pub unusable_packs: u64,
    /// Modules written to a pack.
    pub saves: u64,
    /// Compactions this process ran.
    pub compactions: u64,
    /// Loads refused because no trusted signature covers the entry or its bytes differ from
    /// what was signed (only with [`PackCacheBuilder::trusted_keys`](super::PackCacheBuilder::trusted_keys)); each is also a miss.
    pub untrusted: u64,
    /// Modules held by the memo.
    pub memo_entries: u64,
    /// Bytes of pack files currently mapped by this cache.
    pub bytes_mapped: u64,
}

impl Counters {
    /// The counters as stats, with what the counters do not hold.
    pub(super) fn stats(&self, memo_entries: u64, bytes_mapped: u64) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            memo_hits: self.memo_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            unusable_packs: self.unusable_packs.load(Ordering::Relaxed),
            saves: self.saves.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
            untrusted: self.untrusted.load(Ordering::Relaxed),
            memo_entries,
            bytes_mapped,
        }
    }
}

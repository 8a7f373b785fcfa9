//! Keeping packs small: background compaction, retention, and the recency sidecar.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cache::CacheError;
use crate::format::superblock::DATA_START;
use crate::{CompactReport, Pack, Retention};

use super::PackCache;
use super::slot::PackSlot;

/// How often a process merges its recency stamps into a pack's sidecar.
const RECENCY_FLUSH_SECS: u64 = 60;

impl PackCache {
    /// Compacts every pack of the cache's own directory this cache has opened for its engines,
    /// evicting least recently used modules beyond the soft limits (shipped packs are never
    /// compacted). Blocks (call it from a blocking thread in async code); waits for other
    /// writers. Returns what each compaction did.
    pub fn compact(&self) -> Result<Vec<CompactReport>, CacheError> {
        let mut reports = Vec::new();
        for slot in self.inner.own_slots() {
            let Some(pack) = slot.open_pack() else {
                continue;
            };
            let retention = self.retention_for(&slot);
            let report = pack
                .compact_with(&retention)
                .map_err(CacheError::from_pack_write)?;
            self.after_compaction(&slot, &pack);
            reports.push(report);
        }
        Ok(reports)
    }

    /// The configured limits with every process's recency stamps for `slot`'s pack.
    fn retention_for(&self, slot: &PackSlot) -> Retention {
        let mut retention = self.inner.retention.clone();
        let Some(recency) = &slot.recency else {
            retention.touch_from_sidecar(&slot.path);
            return retention;
        };
        match recency.flush(&slot.path, None) {
            Ok(stamps) => {
                for (key, stamp) in stamps {
                    retention.touch(key, stamp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the recency sidecar"),
        }
        retention
    }

    fn after_compaction(&self, slot: &PackSlot, pack: &Pack) {
        self.inner
            .counters
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        // Drop stamps of evicted keys from the sidecar.
        let keep = |key: &crate::Key| pack.contains(key).unwrap_or(true);
        if let Some(recency) = &slot.recency
            && let Err(e) = recency.flush(&slot.path, Some(&keep))
        {
            tracing::warn!(error = %e, "could not prune the recency sidecar");
        }
    }

    /// Whether `pack` is worth compacting: enough dead bytes, or over a soft limit.
    fn compaction_due(&self, pack: &Pack) -> bool {
        let Ok(stats) = pack.stats() else {
            return false;
        };
        let data = stats.committed_len.saturating_sub(DATA_START) as f64;
        let dead_enough = stats.dead_bytes >= self.inner.min_dead_bytes
            && stats.dead_bytes as f64 >= self.inner.dead_fraction * data;
        dead_enough
            || self
                .inner
                .retention
                .exceeded(stats.entries, stats.live_bytes)
    }

    /// After a save: compacts on a background thread if due and nobody else is at it.
    pub(super) fn compact_if_due(&self, slot: &Arc<PackSlot>) {
        if !self.inner.auto_compact {
            return;
        }
        let Some(pack) = slot.open_pack() else {
            return;
        };
        if !self.compaction_due(&pack) || !slot.start_compacting() {
            return;
        }
        let cache = self.clone();
        let worker_slot = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("wasmpak-compact".to_string())
            .spawn(move || {
                let slot = worker_slot;
                let retention = cache.retention_for(&slot);
                // Another process compacting, or a writer busy: skip, the next save retries.
                match pack.try_compact_with(&retention) {
                    Ok(Some(report)) => {
                        tracing::info!(
                            pack = %slot.path.display(),
                            before = report.size_before(),
                            after = report.size_after(),
                            evicted = report.evicted().len(),
                            "compacted"
                        );
                        cache.after_compaction(&slot, &pack);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "background compaction failed"),
                }
                slot.done_compacting();
            });
        if spawned.is_err() {
            slot.done_compacting();
        }
    }

    /// After a load: merges recency stamps into the sidecars on a background thread, at most
    /// once a minute, so loads never write to disk themselves.
    pub(super) fn flush_recency_if_due(&self) {
        let due: Vec<Arc<PackSlot>> = self
            .inner
            .all_slots()
            .into_iter()
            .filter(|slot| {
                slot.recency
                    .as_ref()
                    .is_some_and(|r| r.is_dirty() && r.flush_due(RECENCY_FLUSH_SECS))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("wasmpak-recency".to_string())
            .spawn(move || {
                for slot in due {
                    if let Err(e) = slot.flush_recency() {
                        tracing::debug!(error = %e, "could not flush recency stamps");
                    }
                }
            });
    }

    /// Writes this process's record of which modules it used (the recency stamps that
    /// eviction goes by) to the sidecars of the packs in the cache's directory. The last
    /// handle of a cache does this when it is dropped, and a long-running process does it in
    /// the background once a minute; call it before a process exits without dropping its
    /// cache (one kept in a `static`, say). Blocks on the file system.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::PackCache;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cache = PackCache::new(dir.path());
    /// cache.flush()?; // nothing used yet: nothing written
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<(), CacheError> {
        for slot in self.inner.all_slots() {
            slot.flush_recency()
                .map_err(|error| CacheError::FileWrite {
                    path: crate::pack::recency::sidecar_path(&slot.path),
                    error,
                })?;
        }
        Ok(())
    }
}

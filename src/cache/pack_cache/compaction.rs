//! When a [`PackCache`](super::PackCache) compacts its own packs: the settings its builder
//! collects and the cache keeps whole, and the one rule that reads them.

use crate::format::superblock::DATA_START;
use crate::{Retention, Stats};

/// The compaction settings of a cache (see the builder's `max_live_bytes`, `max_entries`,
/// `auto_compact`, `compact_dead_fraction` and `compact_min_dead_bytes`).
#[derive(Debug, Clone)]
pub(super) struct CompactionPolicy {
    /// Soft limits, and what to evict beyond them.
    pub(super) retention: Retention,
    /// Whether saves may start a background compaction.
    pub(super) auto: bool,
    /// The share of a pack's data that may be dead before it is compacted.
    pub(super) dead_fraction: f64,
    /// Dead bytes below which compaction is not worth it.
    pub(super) min_dead_bytes: u64,
}

impl Default for CompactionPolicy {
    fn default() -> CompactionPolicy {
        CompactionPolicy {
            retention: Retention::new(),
            auto: true,
            dead_fraction: 0.5,
            min_dead_bytes: 8 << 20,
        }
    }
}

impl CompactionPolicy {
    /// Whether a pack with `stats` is worth compacting: enough dead bytes, or over a soft
    /// limit.
    pub(super) fn due(&self, stats: &Stats) -> bool {
        let data = stats.committed_len.saturating_sub(DATA_START) as f64;
        let dead_enough = stats.dead_bytes >= self.min_dead_bytes
            && stats.dead_bytes as f64 >= self.dead_fraction * data;
        dead_enough || self.retention.exceeded(stats.entries, stats.live_bytes)
    }
}

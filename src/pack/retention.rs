//! Which live entries compaction keeps when a pack has outgrown its soft limits: least
//! recently used first out.

use std::collections::HashMap;
use std::path::Path;

use crate::Key;
use crate::format::index::IndexEntry;

/// Which live entries compaction keeps when a pack has grown past its soft limits.
///
/// When the live values exceed either limit, compaction drops the least recently used entries
/// until both hold. Recency comes from the caller (`last_used`: any increasing stamp, such as
/// milliseconds since the epoch); entries without a stamp count as older than every stamped one,
/// and ties go to the entry written first.
///
/// # Example
///
/// ```
/// use wasmpak::{Key, Pack, PackIdentity, Retention};
///
/// let dir = tempfile::tempdir()?;
/// let pack = Pack::create(dir.path().join("r.wpk"), &PackIdentity::new().with("a", "b"))?;
/// for i in 0..10u8 {
///     pack.insert(&Key::from_bytes([i; 32]), &[i; 100])?;
/// }
/// let mut retention = Retention::new().max_entries(4);
/// retention.touch(Key::from_bytes([0; 32]), 1); // recently used: survives
/// let report = pack.compact_with(&retention)?;
/// assert_eq!(report.evicted().len(), 6);
/// assert!(pack.contains(&Key::from_bytes([0; 32]))?);
/// assert!(pack.contains(&Key::from_bytes([9; 32]))?);
/// assert_eq!(pack.len()?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Retention {
    max_live_bytes: Option<u64>,
    max_entries: Option<u64>,
    last_used: HashMap<Key, u64>,
}

impl Retention {
    /// No limits: compaction keeps every live entry.
    pub fn new() -> Retention {
        Retention::default()
    }

    /// Soft limit on the sum of the live values' lengths.
    pub fn max_live_bytes(mut self, bytes: u64) -> Self {
        self.max_live_bytes = Some(bytes);
        self
    }

    /// Soft limit on the number of live entries.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = Some(entries);
        self
    }

    /// Records that `key` was used at `stamp` (keeps the largest stamp seen).
    pub fn touch(&mut self, key: Key, stamp: u64) {
        let slot = self.last_used.entry(key).or_insert(stamp);
        *slot = (*slot).max(stamp);
    }

    /// Adds the stamps that processes using the pack merged into its recency sidecar
    /// (`{pack}.recency`, written by [`PackCache`](crate::PackCache)); returns how many.
    /// A missing, torn or foreign sidecar adds nothing.
    pub fn touch_from_sidecar(&mut self, pack_path: &Path) -> usize {
        let stamps = super::recency::read_sidecar(pack_path);
        let count = stamps.len();
        for (key, stamp) in stamps {
            self.touch(key, stamp);
        }
        count
    }

    /// Whether any limit is set.
    pub fn has_limits(&self) -> bool {
        self.max_entries.is_some() || self.max_live_bytes.is_some()
    }

    /// Whether a pack with these totals is over a limit.
    pub fn exceeded(&self, entries: u64, live_bytes: u64) -> bool {
        self.max_entries.is_some_and(|max| entries > max)
            || self.max_live_bytes.is_some_and(|max| live_bytes > max)
    }
}

/// Removes entries until `retention`'s limits hold; returns them. Entries larger than the
/// byte limit go first, whatever their recency: they can never fit, and evicting the ones that
/// do in their place would not help. Then the least recently used.
pub(super) fn evict(live: &mut Vec<IndexEntry>, retention: &Retention) -> Vec<Key> {
    let mut entries = live.len() as u64;
    let mut bytes = live
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.payload_len));
    if !retention.exceeded(entries, bytes) {
        return Vec::new();
    }
    let never_fits = |e: &IndexEntry| {
        retention
            .max_live_bytes
            .is_some_and(|max| e.payload_len > max)
    };
    let mut order: Vec<usize> = (0..live.len()).collect();
    // `live` is in record order, so the stable sort breaks ties by age.
    order.sort_by_key(|&i| {
        let stamp = retention.last_used.get(&live[i].key);
        (
            !never_fits(&live[i]),
            stamp.map_or(0, |s| s.saturating_add(1)),
        )
    });
    let mut evicted = Vec::new();
    let mut drop = vec![false; live.len()];
    for i in order {
        if !retention.exceeded(entries, bytes) {
            break;
        }
        drop[i] = true;
        entries -= 1;
        bytes = bytes.saturating_sub(live[i].payload_len);
        evicted.push(live[i].key);
    }
    let mut i = 0;
    live.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    evicted
}

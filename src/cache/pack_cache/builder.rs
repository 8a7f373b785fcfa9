//! Options for a [`PackCache`](super::PackCache).

use std::path::PathBuf;

use crate::cache::memo::MemoLimits;
use crate::{Durability, PackOptions, PublicKey, Retention, Verify};

/// Options for a [`PackCache`](super::PackCache).
///
/// # Example
///
/// ```
/// use wasmpak::{Durability, PackCache};
///
/// let cache = PackCache::builder("/var/cache/my-app/modules")
///     .memo_entries(256)
///     .memo_bytes(512 << 20)
///     .max_live_bytes(2 << 30)
///     .durability(Durability::None)
///     .build();
/// assert_eq!(cache.dir().to_str(), Some("/var/cache/my-app/modules"));
/// ```
#[derive(Debug, Clone)]
pub struct PackCacheBuilder {
    pub(super) dir: PathBuf,
    pub(super) pack_options: PackOptions,
    pub(super) memo: MemoLimits,
    pub(super) retention: Retention,
    pub(super) auto_compact: bool,
    pub(super) dead_fraction: f64,
    pub(super) min_dead_bytes: u64,
}

impl PackCacheBuilder {
    pub(super) fn new(dir: PathBuf) -> PackCacheBuilder {
        PackCacheBuilder {
            dir,
            pack_options: PackOptions::new(),
            memo: MemoLimits {
                max_entries: 1024,
                max_bytes: 1 << 30,
            },
            retention: Retention::new(),
            auto_compact: true,
            dead_fraction: 0.5,
            min_dead_bytes: 8 << 20,
        }
    }

    /// Most modules the in-process memo holds (default 1024; 0 disables it).
    pub fn memo_entries(mut self, entries: usize) -> Self {
        self.memo.max_entries = entries;
        self
    }

    /// Most artifact bytes the in-process memo holds (default 1 GiB).
    pub fn memo_bytes(mut self, bytes: u64) -> Self {
        self.memo.max_bytes = bytes;
        self
    }

    /// Soft limit on the bytes of modules a pack keeps: beyond it, the next compaction evicts
    /// the least recently used (like wasmtime's `files-total-size-soft-limit`).
    pub fn max_live_bytes(mut self, bytes: u64) -> Self {
        self.retention = self.retention.max_live_bytes(bytes);
        self
    }

    /// Soft limit on the number of modules a pack keeps (like wasmtime's
    /// `file-count-soft-limit`).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.retention = self.retention.max_entries(entries);
        self
    }

    /// Whether saves may start a background compaction (default on) when dead bytes pass
    /// [`compact_dead_fraction`](Self::compact_dead_fraction) of the pack, or a soft limit is
    /// exceeded.
    pub fn auto_compact(mut self, enabled: bool) -> Self {
        self.auto_compact = enabled;
        self
    }

    /// The share of a pack's data that may be dead before it is compacted (default 0.5). A
    /// pack is never compacted for fewer than [`compact_min_dead_bytes`](Self::compact_min_dead_bytes).
    pub fn compact_dead_fraction(mut self, fraction: f64) -> Self {
        self.dead_fraction = fraction.clamp(0.0, 1.0);
        self
    }

    /// Dead bytes below which compaction is not worth it (default 8 MiB). Each compaction
    /// leaves the replaced file pinned by the engines that loaded from it, so compacting
    /// rarely keeps that bounded.
    pub fn compact_min_dead_bytes(mut self, bytes: u64) -> Self {
        self.min_dead_bytes = bytes;
        self
    }

    /// Check an artifact's checksum on every load from the pack rather than the first time
    /// this process loads it (the default). There is deliberately no way to skip the check:
    /// it is what makes handing the bytes to wasmer's unchecked deserializer sound.
    pub fn verify_every_load(mut self, every: bool) -> Self {
        let verify = if every { Verify::Always } else { Verify::Once };
        self.pack_options = self.pack_options.verify(verify);
        self
    }

    /// Durability of saves (default [`Durability::Full`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.pack_options = self.pack_options.durability(durability);
        self
    }

    /// Accept packs other users can write (refused by default: see
    /// [`PackOptions::allow_shared_write`]).
    pub fn allow_shared_write(mut self, allow: bool) -> Self {
        self.pack_options = self.pack_options.allow_shared_write(allow);
        self
    }

    /// Load only modules signed by one of `keys` (see [`PackOptions::trusted_keys`]). An
    /// entry no trusted signature covers, or whose bytes differ from what was signed, is a
    /// miss, logged as a warning and counted in
    /// [`CacheStats::untrusted`](super::CacheStats::untrusted). Such a cache does not write to
    /// its packs: a module saved locally would carry no signature, so `save` only memoizes it.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{PackCache, SecretKey};
    ///
    /// let vendor = SecretKey::generate()?.public_key();
    /// let cache = PackCache::builder("/opt/my-app/modules").trusted_keys([vendor]).build();
    /// # let _ = cache;
    /// # Ok::<(), wasmpak::KeyError>(())
    /// ```
    pub fn trusted_keys(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        self.pack_options = self.pack_options.trusted_keys(keys);
        self
    }

    /// Load from installed packs without hashing each module in every process (see
    /// [`PackOptions::trust_installed`], whose contract this carries): packs that are not
    /// sealed, read-only and private are refused, which for a load is a miss counted in
    /// [`CacheStats::stale`](super::CacheStats::stale).
    ///
    /// # Safety
    ///
    /// As for [`PackOptions::trust_installed`]: the installed files are never modified while
    /// any process loads from them, only replaced by another install.
    pub unsafe fn trust_installed(mut self) -> Self {
        // SAFETY: the caller takes on the same contract.
        self.pack_options = unsafe { self.pack_options.trust_installed() };
        self
    }

    /// Builds the cache. Infallible and lazy: nothing touches the disk until the first load
    /// or save.
    pub fn build(self) -> super::PackCache {
        super::PackCache::from_builder(self)
    }
}

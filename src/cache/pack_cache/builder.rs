//! Options for a [`PackCache`](crate::PackCache).

use std::path::{Path, PathBuf};

use crate::cache::memo::MemoLimits;
use crate::{Durability, PackOptions, PublicKey, Verify};

use super::compaction::CompactionPolicy;
use super::pack_files::Sources;

/// Options for a [`PackCache`](crate::PackCache): where its packs are, and how it keeps them.
///
/// A cache reads packs from up to four kinds of places, in this order:
///
/// 0. **Embedded packs** ([`embedded_pack`](Self::embedded_pack)): packs compiled into the
///    binary with [`include_pack!`](crate::include_pack), or handed over as bytes. Read like
///    shipped packs (and ordered with them), never written.
/// 1. **Shipped packs** ([`shipped_pack`](Self::shipped_pack)): files that come with the
///    application, such as `/opt/my-app/modules.wpk` built by `wasmpak build` in CI. Only
///    ever read: never written, never compacted, and they may sit on a read-only file
///    system. A shipped pack an engine cannot load (built for CPU features it lacks, or by
///    another wasmer) is skipped, with one warning per process naming why.
/// 2. **Shipped directories** ([`shipped_dir`](Self::shipped_dir)): directories of read-only
///    packs named by identity (`wasmpak build --cpu-features x86-64-v3 DIR ...` names them), so
///    that one directory serves a fleet: every host reads the packs of the highest CPU levels
///    it can load.
/// 3. **The cache's own directory** ([`dir`](Self::dir), or
///    [`PackCache::new`](crate::PackCache::new)): the engine's own pack, where every save goes,
///    then packs of lower CPU levels found there.
///
/// # Example
///
/// ```
/// use wasmpak::{Durability, PackCache};
///
/// let cache = PackCache::builder("/var/cache/my-app/modules")
///     .shipped_pack("/opt/my-app/modules.wpk")
///     .memo_entries(256)
///     .memo_bytes(512 << 20)
///     .max_live_bytes(2 << 30)
///     .durability(Durability::None)
///     .build();
/// assert_eq!(cache.dir().and_then(|d| d.to_str()), Some("/var/cache/my-app/modules"));
/// ```
#[derive(Debug, Clone)]
pub struct PackCacheBuilder {
    pub(super) sources: Sources,
    pub(super) pack_options: PackOptions,
    pub(super) memo: MemoLimits,
    pub(super) compaction: CompactionPolicy,
}

impl PackCacheBuilder {
    /// Options for a cache with no packs yet: add shipped packs, shipped directories and a
    /// directory of its own. Without a directory of its own the cache saves nothing: pair it
    /// with a [`SharedCache`](crate::SharedCache) so a process compiles each module once.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::PackCacheBuilder;
    ///
    /// // Loads only what the application shipped, for every CPU level it shipped.
    /// let cache = PackCacheBuilder::new()
    ///     .shipped_dir("/opt/my-app/packs")
    ///     .build();
    /// assert!(cache.dir().is_none());
    /// ```
    pub fn new() -> PackCacheBuilder {
        PackCacheBuilder {
            sources: Sources::default(),
            pack_options: PackOptions::new(),
            memo: MemoLimits {
                max_entries: 1024,
                max_bytes: 1 << 30,
            },
            compaction: CompactionPolicy::default(),
        }
    }

    /// The directory of the cache's own packs (created on the first save): one pack per engine
    /// identity, where saves go, read after the shipped packs.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sources.local_dir = Some(dir.into());
        self
    }

    /// Adds a pack file shipped with the application, to be read before the cache's own
    /// directory and never written. Shipped packs an engine can load are read most specific
    /// CPU level first, then in the order they were added. The file may be missing or of
    /// another identity: it is then skipped, and named in a warning when a load misses.
    pub fn shipped_pack(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.shipped_packs.push(path.as_ref().to_path_buf());
        self
    }

    /// Adds a pack the program holds in memory, typically embedded in the binary with
    /// [`include_pack!`](crate::include_pack): read before the shipped packs and the cache's
    /// own directory, never written; saves go to the cache's own directory. Like a shipped
    /// pack, one this engine cannot load (another identity, or misaligned, truncated or
    /// corrupt bytes) is skipped with one warning per process and counted in
    /// [`CacheStats::unusable_packs`](crate::CacheStats::unusable_packs); errors and warnings
    /// name it `<embedded pack N>`, N counting from 1 in the order added.
    ///
    /// Without a [`dir`](Self::dir), a save returns `Ok` and stores nothing, as for any cache
    /// without a directory of its own: a runtime keeps working, compiling what the embedded
    /// packs lack (pair it with a [`SharedCache`](crate::SharedCache) to compile each module
    /// once per process).
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::PackCacheBuilder;
    ///
    /// static MODULES: &[u8] = wasmpak::include_pack!("../../../examples/demo.wpk");
    ///
    /// let cache = PackCacheBuilder::new()
    ///     .embedded_pack(MODULES)
    ///     .dir("/var/cache/my-app/modules")
    ///     .build();
    /// assert!(cache.dir().is_some());
    /// ```
    pub fn embedded_pack(mut self, bytes: impl Into<bytes::Bytes>) -> Self {
        let name = format!("<embedded pack {}>", self.sources.embedded_packs.len() + 1);
        self.sources
            .embedded_packs
            .push((PathBuf::from(name), bytes.into()));
        self
    }

    /// Adds a directory of shipped packs named by identity (as `wasmpak build` names a pack
    /// when given a directory, and as [`EngineIdentity::pack_file_name`] says): an engine reads
    /// the ones it can load, most specific CPU level first, and never writes them. Other files
    /// in the directory are ignored.
    ///
    /// [`EngineIdentity::pack_file_name`]: crate::EngineIdentity::pack_file_name
    pub fn shipped_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.sources.shipped_dirs.push(dir.as_ref().to_path_buf());
        self
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
        self.compaction.retention = self.compaction.retention.max_live_bytes(bytes);
        self
    }

    /// Soft limit on the number of modules a pack keeps (like wasmtime's
    /// `file-count-soft-limit`).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.compaction.retention = self.compaction.retention.max_entries(entries);
        self
    }

    /// Whether saves may start a background compaction (default on) when dead bytes pass
    /// [`compact_dead_fraction`](Self::compact_dead_fraction) of the pack, or a soft limit is
    /// exceeded.
    pub fn auto_compact(mut self, enabled: bool) -> Self {
        self.compaction.auto = enabled;
        self
    }

    /// The share of a pack's data that may be dead before it is compacted (default 0.5). A
    /// pack is never compacted for fewer than [`compact_min_dead_bytes`](Self::compact_min_dead_bytes).
    pub fn compact_dead_fraction(mut self, fraction: f64) -> Self {
        self.compaction.dead_fraction = fraction.clamp(0.0, 1.0);
        self
    }

    /// Dead bytes below which compaction is not worth it (default 8 MiB). Each compaction
    /// leaves the replaced file pinned by the engines that loaded from it, so compacting
    /// rarely keeps that bounded.
    pub fn compact_min_dead_bytes(mut self, bytes: u64) -> Self {
        self.compaction.min_dead_bytes = bytes;
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
    /// [`CacheStats::untrusted`](crate::CacheStats::untrusted). Such a cache does not write to
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

    /// Load only what signatures naming release `release` or a later one vouch for (see
    /// [`PackOptions::min_release`]): a module that only older signatures list is a miss,
    /// counted in [`CacheStats::untrusted`](super::CacheStats::untrusted), so a node that has
    /// seen release `release` never rolls back to an older genuine pack. Needs
    /// [`PackCacheBuilder::trusted_keys`] (in either order); without them every pack is
    /// refused.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{PackCache, SecretKey};
    ///
    /// let vendor = SecretKey::generate()?.public_key();
    /// let cache = PackCache::builder("/opt/my-app/modules")
    ///     .trusted_keys([vendor])
    ///     .min_release(42)
    ///     .build();
    /// # let _ = cache;
    /// # Ok::<(), wasmpak::KeyError>(())
    /// ```
    pub fn min_release(mut self, release: u64) -> Self {
        self.pack_options = self.pack_options.min_release(release);
        self
    }

    /// Load from installed packs without hashing each module in every process (see
    /// [`PackOptions::trust_installed`], whose contract this carries): packs that are not
    /// sealed, read-only and private are refused, which for a load is a miss counted in
    /// [`CacheStats::stale`](crate::CacheStats::stale).
    ///
    /// # Safety
    ///
    /// As for [`PackOptions::trust_installed`]: the installed files are never modified while
    /// any process loads from them, only replaced by another install.
    #[allow(unsafe_code)] // Carries the contract of `PackOptions::trust_installed`.
    // SAFETY: an `unsafe fn`: the caller takes on the contract in "# Safety" above.
    pub unsafe fn trust_installed(mut self) -> Self {
        // SAFETY: the caller takes on the same contract.
        self.pack_options = unsafe { self.pack_options.trust_installed() };
        self
    }
}

impl Default for PackCacheBuilder {
    fn default() -> Self {
        PackCacheBuilder::new()
    }
}

//! One pack file of a [`PackCache`](super::PackCache), opened lazily: the pack an engine
//! saves to, a sibling pack in the same directory, or a shipped pack that is only read.
//!
//! Opening a file may block on the disk, so it happens outside the lock that guards the open
//! handle: a thread that only wants the handle already open never waits for another's open.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use crate::EngineIdentity;
use crate::cache::CacheError;
use crate::pack::embedded::open_memory;
use crate::pack::recency::Recency;
use crate::sync::{lock, read, write};
use crate::{Error, ErrorKind, Pack, PackIdentity, PackOptions};

/// How many times creating a pack moves an unusable file aside before giving up.
const MAX_SET_ASIDE_ATTEMPTS: usize = 4;

#[derive(Debug)]
pub(super) struct PackSlot {
    pub(super) path: PathBuf,
    /// The identity the file must have; `None` for a shipped pack named by the application,
    /// whose identity is whatever it says (the cache checks it can load it).
    expected: Option<EngineIdentity>,
    pack: RwLock<Option<Pack>>,
    /// Why a shipped pack cannot be used (corrupt, another identity than its name says):
    /// shipped packs are not expected to change, so the verdict stands and it is reported
    /// once, not on every lookup.
    stale: Mutex<Option<String>>,
    /// This process's uses of the pack's entries, for packs in the cache's own directory
    /// (shipped packs are never compacted, and their directory may be read-only).
    pub(super) recency: Option<Recency>,
    pub(super) compacting: AtomicBool,
    /// The bytes of an embedded pack, opened from memory rather than from `path` (then only a
    /// name).
    embedded: Option<bytes::Bytes>,
}

/// Errors that make a pack or an entry unusable rather than unreachable: a cache miss.
pub(super) fn is_stale(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Corrupt
            | ErrorKind::NotAPack
            | ErrorKind::IdentityMismatch
            | ErrorKind::UnsupportedVersion
    )
}

impl PackSlot {
    /// A pack of the cache's own directory: written if it is the engine's own pack, and with
    /// recency stamps either way.
    pub(super) fn local(path: PathBuf, identity: EngineIdentity) -> PackSlot {
        PackSlot::new(path, Some(identity), Some(Recency::default()))
    }

    /// A shipped pack, only ever read. `expected` is the identity its name promises, if it
    /// was found by name in a directory.
    pub(super) fn shipped(path: PathBuf, expected: Option<EngineIdentity>) -> PackSlot {
        PackSlot::new(path, expected, None)
    }

    /// A pack held in memory, named `name`, only ever read.
    pub(super) fn embedded(name: PathBuf, bytes: bytes::Bytes) -> PackSlot {
        PackSlot {
            embedded: Some(bytes),
            ..PackSlot::new(name, None, None)
        }
    }

    fn new(path: PathBuf, expected: Option<EngineIdentity>, recency: Option<Recency>) -> PackSlot {
        PackSlot {
            path,
            expected,
            pack: RwLock::new(None),
            stale: Mutex::new(None),
            recency,
            compacting: AtomicBool::new(false),
            embedded: None,
        }
    }

    /// The pack if it is open already.
    pub(super) fn open_pack(&self) -> Option<Pack> {
        read(&self.pack).clone()
    }

    /// Why this shipped pack was found unusable, if it was.
    pub(super) fn stale_reason(&self) -> Option<String> {
        lock(&self.stale).clone()
    }

    /// Keeps `pack` as the open handle unless another thread opened one meanwhile; returns
    /// the one kept.
    fn install(&self, pack: Pack) -> Pack {
        let mut slot = write(&self.pack);
        slot.get_or_insert(pack).clone()
    }

    /// The pack, opened if it exists; `Ok(None)` if there is none. A stale pack (another
    /// identity than expected, corrupt) is reported through `on_stale` and is also `Ok(None)`.
    /// Blocks on the file system when the pack is not open yet.
    pub(super) fn for_read(
        &self,
        options: &PackOptions,
        on_stale: impl FnOnce(&Error),
    ) -> Result<Option<Pack>, CacheError> {
        if let Some(pack) = self.open_pack() {
            return Ok(Some(pack));
        }
        if self.stale_reason().is_some() {
            return Ok(None);
        }
        let opened = match (&self.embedded, &self.expected) {
            (Some(bytes), _) => open_memory(&self.path, bytes.clone(), None, options.clone()),
            (None, Some(identity)) => options.open(&self.path, &identity.to_pack_identity()),
            (None, None) => options.open_any(&self.path),
        };
        match opened {
            Ok(pack) => Ok(Some(self.install(pack))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            // A pack refused for the trusted load path is a miss, never set aside.
            Err(e) if is_stale(e.kind()) || e.kind() == ErrorKind::NotSealed => {
                if self.recency.is_none() {
                    *lock(&self.stale) = Some(e.to_string());
                }
                on_stale(&e);
                Ok(None)
            }
            Err(e) => Err(CacheError::from_pack_read(e)),
        }
    }

    /// The pack, created if needed. A file at its path that is not a usable pack is moved
    /// aside to `*.wpk.corrupt` (replacing an earlier one) and a new pack is created. Blocks
    /// on the file system (and on another process's writer lock while setting a file aside),
    /// but never while holding the lock that readers of the open handle take.
    pub(super) fn for_write(
        &self,
        options: &PackOptions,
        on_stale: impl FnOnce(&Error),
    ) -> Result<Pack, CacheError> {
        if let Some(pack) = self.open_pack() {
            return Ok(pack);
        }
        let Some(identity) = &self.expected else {
            return Err(CacheError::FileWrite {
                path: self.path.clone(),
                error: io::Error::other("a shipped pack is never written"),
            });
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| CacheError::FileWrite {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let identity = identity.to_pack_identity();
        let mut on_stale = Some(on_stale);
        for _ in 0..MAX_SET_ASIDE_ATTEMPTS {
            match options.open_or_create(&self.path, &identity) {
                Err(e) if is_stale(e.kind()) => {
                    if let Some(report) = on_stale.take() {
                        report(&e);
                    }
                    self.set_aside(options, &identity)?;
                }
                other => return Ok(self.install(other.map_err(CacheError::from_pack_write)?)),
            }
        }
        Err(CacheError::FileWrite {
            path: self.path.clone(),
            error: io::Error::other("the pack keeps being replaced while we try to create it"),
        })
    }

    /// Moves an unusable file at `self.path` to `*.wpk.corrupt`, but only after confirming the
    /// verdict under the file's exclusive lock (a writer of another process holds it while it
    /// appends and commits) and only if the path still names the file we locked. A file that
    /// turns out to be fine, or was replaced meanwhile, stays where it is.
    fn set_aside(&self, options: &PackOptions, identity: &PackIdentity) -> Result<(), CacheError> {
        let file_err = |error| CacheError::FileWrite {
            path: self.path.clone(),
            error,
        };
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(file_err(e)),
        };
        file.lock().map_err(file_err)?;
        let locked = file.metadata().map_err(file_err)?;
        let still_stale = match options.open(&self.path, identity) {
            Ok(_) => false,
            Err(e) => is_stale(e.kind()),
        };
        let same_file = std::fs::metadata(&self.path)
            .is_ok_and(|now| (now.dev(), now.ino()) == (locked.dev(), locked.ino()));
        if still_stale && same_file {
            let aside = self.path.with_extension("wpk.corrupt");
            crate::fs::rename(&self.path, &aside).map_err(file_err)?;
        }
        Ok(())
    }

    /// Claims the right to run the background compaction; false if one is running.
    pub(super) fn start_compacting(&self) -> bool {
        !self.compacting.swap(true, Ordering::AcqRel)
    }

    pub(super) fn done_compacting(&self) {
        self.compacting.store(false, Ordering::Release);
    }

    /// Merges this process's recency stamps into the pack's sidecar if there are new ones.
    pub(super) fn flush_recency(&self) -> io::Result<()> {
        match &self.recency {
            Some(recency) if recency.is_dirty() => recency.flush(&self.path, None).map(drop),
            _ => Ok(()),
        }
    }
}

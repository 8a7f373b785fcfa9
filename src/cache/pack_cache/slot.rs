//! One pack of a [`PackCache`](super::PackCache): the file for one engine identity, opened
//! lazily, with this process's recency stamps for it.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::cache::{CacheError, EngineIdentity};
use crate::pack::recency::Recency;
use crate::{Error, ErrorKind, Pack, PackIdentity, PackOptions};

/// How many times creating a pack moves an unusable file aside before giving up.
const MAX_SET_ASIDE_ATTEMPTS: usize = 4;

#[derive(Debug)]
pub(super) struct PackSlot {
    pub(super) path: PathBuf,
    identity: EngineIdentity,
    pack: RwLock<Option<Pack>>,
    pub(super) recency: Recency,
    pub(super) compacting: AtomicBool,
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
    pub(super) fn new(dir: &Path, identity: EngineIdentity) -> PackSlot {
        let path = dir.join(format!(
            "{}.v{}.wpk",
            identity.file_stem(),
            crate::format::superblock::FORMAT_VERSION
        ));
        PackSlot {
            path,
            identity,
            pack: RwLock::new(None),
            recency: Recency::default(),
            compacting: AtomicBool::new(false),
        }
    }

    /// The pack if it is open already.
    pub(super) fn open_pack(&self) -> Option<Pack> {
        self.pack
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The pack, opened if it exists; `Ok(None)` if there is none. A stale pack (other
    /// identity, corrupt) is reported through `on_stale` and is also `Ok(None)`.
    pub(super) fn for_read(
        &self,
        options: &PackOptions,
        on_stale: impl FnOnce(&Error),
    ) -> Result<Option<Pack>, CacheError> {
        if let Some(pack) = self.open_pack() {
            return Ok(Some(pack));
        }
        let mut slot = self.pack.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(pack) = slot.as_ref() {
            return Ok(Some(pack.clone()));
        }
        match options.open(&self.path, &self.identity.to_pack_identity()) {
            Ok(pack) => {
                *slot = Some(pack.clone());
                Ok(Some(pack))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            // A pack refused for the trusted load path is a miss, never set aside.
            Err(e) if is_stale(e.kind()) || e.kind() == ErrorKind::NotSealed => {
                on_stale(&e);
                Ok(None)
            }
            Err(e) => Err(read_error(e)),
        }
    }

    /// The pack, created if needed. A file at its path that is not a usable pack is moved
    /// aside to `*.wpk.corrupt` (replacing an earlier one) and a new pack is created.
    pub(super) fn for_write(
        &self,
        options: &PackOptions,
        on_stale: impl FnOnce(&Error),
    ) -> Result<Pack, CacheError> {
        if let Some(pack) = self.open_pack() {
            return Ok(pack);
        }
        let mut slot = self.pack.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(pack) = slot.as_ref() {
            return Ok(pack.clone());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| CacheError::FileWrite {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let identity = self.identity.to_pack_identity();
        let mut on_stale = Some(on_stale);
        for _ in 0..MAX_SET_ASIDE_ATTEMPTS {
            match options.open_or_create(&self.path, &identity) {
                Err(e) if is_stale(e.kind()) => {
                    if let Some(report) = on_stale.take() {
                        report(&e);
                    }
                    self.set_aside(options, &identity)?;
                }
                other => {
                    let pack = other.map_err(write_error)?;
                    *slot = Some(pack.clone());
                    return Ok(pack);
                }
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
            std::fs::rename(&self.path, &aside).map_err(file_err)?;
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
}

/// A pack error met while loading, as a [`CacheError`].
pub(super) fn read_error(error: Error) -> CacheError {
    let path = error.path().to_path_buf();
    match error {
        Error::Open { source, .. } | Error::Read { source, .. } | Error::Lock { source, .. } => {
            CacheError::FileRead {
                path,
                error: source,
            }
        }
        other => CacheError::other(other),
    }
}

/// A pack error met while saving, as a [`CacheError`].
pub(super) fn write_error(error: Error) -> CacheError {
    let path = error.path().to_path_buf();
    match error {
        Error::Open { source, .. }
        | Error::Create { source, .. }
        | Error::Write { source, .. }
        | Error::Lock { source, .. } => CacheError::FileWrite {
            path,
            error: source,
        },
        other => CacheError::other(other),
    }
}

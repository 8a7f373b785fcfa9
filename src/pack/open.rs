//! Opening and creating packs: the public constructors, all on the one open path of
//! [`PackFile::open`] (header, permissions, identity).

use std::path::Path;

use crate::error::Repr;
use crate::{Error, ErrorKind, Pack, PackIdentity, PackOptions, Result};

use super::file::{self, Origin, PackFile};

impl Pack {
    /// Opens an existing pack, which must have `identity`, with default options.
    pub fn open(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open(path, identity)
    }

    /// Creates a new, empty pack with default options; fails if `path` exists.
    pub fn create(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().create(path, identity)
    }

    /// Opens the pack at `path`, creating it if missing, with default options.
    pub fn open_or_create(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open_or_create(path, identity)
    }

    /// Opens a pack of any identity, with default options.
    pub fn open_any(path: impl AsRef<Path>) -> Result<Pack> {
        PackOptions::new().open_any(path)
    }

    /// Opens the pack at `path` (of `identity`, if given) with `options`.
    pub(crate) fn open_with(
        path: &Path,
        identity: Option<&PackIdentity>,
        options: PackOptions,
    ) -> Result<Pack> {
        let file = PackFile::open(Origin::Path(path), identity, &options)?;
        Pack::from_file(path, file, options)
    }

    fn create_with(path: &Path, identity: &PackIdentity, options: PackOptions) -> Result<Pack> {
        if !file::create(path, identity)? {
            return Err(Error::from(Repr::AlreadyExists {
                path: path.to_path_buf(),
            }));
        }
        Pack::open_with(path, Some(identity), options)
    }

    fn open_or_create_with(
        path: &Path,
        identity: &PackIdentity,
        options: PackOptions,
    ) -> Result<Pack> {
        match Pack::open_with(path, Some(identity), options.clone()) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Losing a creation race is fine: the winner's pack is the one we open.
                file::create(path, identity)?;
                Pack::open_with(path, Some(identity), options)
            }
            other => other,
        }
    }
}

impl PackOptions {
    /// Opens an existing pack, which must have `identity`.
    pub fn open(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::open_with(path.as_ref(), Some(identity), self.clone())
    }

    /// Opens an existing pack of any identity (for tools that inspect packs).
    pub fn open_any(&self, path: impl AsRef<Path>) -> Result<Pack> {
        Pack::open_with(path.as_ref(), None, self.clone())
    }

    /// Creates a new, empty pack; fails with
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) if the path exists.
    pub fn create(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::create_with(path.as_ref(), identity, self.clone())
    }

    /// Opens the pack at `path`, creating it if there is none. Safe against other processes
    /// doing the same at the same time: all of them end up with the same file.
    pub fn open_or_create(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::open_or_create_with(path.as_ref(), identity, self.clone())
    }
}

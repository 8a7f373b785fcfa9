//! Who may have written a pack: the permission rules an open applies before trusting a file.
//!
//! Whoever can write a pack can run code in every process that loads from it, and so can
//! whoever can replace it, by writing a directory on its path. The reader and root can change
//! the reader's code anyway; everyone else is kept out (docs/FORMAT.md, section 15):
//!
//! - Every open (unless [`crate::PackOptions::allow_shared_write`]): the file belongs to this
//!   user or root and has no group or other write bit, and no directory on its path (symlinks
//!   resolved) is writable by every user unless it is sticky.
//! - With trusted keys, and for installed packs read without hashing
//!   ([`crate::PackOptions::trust_installed`]), the path is held to the rule ssh's
//!   `StrictModes` holds key files to: moreover every directory on it belongs to this user or
//!   root and is writable by its owner alone, unless it is sticky. An installed pack must also
//!   be read-only and sealed.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Repr;
use crate::{Error, Result};

/// How much of a pack's path an open holds to the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// No directory on the path is writable by every user (unless sticky).
    Lenient,
    /// Every directory on the path belongs to this user or root and is writable by its owner
    /// alone (unless sticky).
    Strict,
}

/// Refuses a pack that users other than its owner (this user or root) could have written or
/// could replace. `meta` is the open file's, `canonical` its path as [`resolve`] gave it.
pub(crate) fn check_not_shared(
    path: &Path,
    canonical: &Path,
    meta: &Metadata,
    strictness: Strictness,
) -> Result<()> {
    let insecure = |detail: String| {
        Error::from(Repr::Insecure {
            path: path.to_path_buf(),
            detail,
        })
    };
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "the file is writable by {} (mode {:o})",
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777
        )));
    }
    if let Some(detail) = foreign_owner("the file", meta) {
        return Err(insecure(detail));
    }
    check_directories(canonical, strictness).map_err(|why| match why {
        Refusal::Unsafe(detail) => insecure(detail),
        Refusal::Unreadable(e) => e,
    })
}

/// Refuses the trusted load path for a pack that is not sealed, has any write permission
/// bit, is owned by another user than this one or root, or lies on a path that others can
/// write (and could replace it through). `meta` is the open file's, `canonical` its path as
/// [`resolve`] gave it.
pub(crate) fn check_installed(
    path: &Path,
    canonical: &Path,
    sealed: bool,
    meta: &Metadata,
) -> Result<()> {
    match not_installed_because(canonical, sealed, meta)? {
        Some(detail) => Err(Error::from(Repr::NotSealed {
            path: path.to_path_buf(),
            detail,
        })),
        None => Ok(()),
    }
}

/// Why the pack at `canonical` is not fit for the trusted load path, if it is not.
fn not_installed_because(
    canonical: &Path,
    sealed: bool,
    meta: &Metadata,
) -> Result<Option<String>> {
    if !sealed {
        let install = "install it first (wasmpak install, or Pack::install_into)";
        return Ok(Some(format!("it is not sealed; {install}")));
    }
    if meta.mode() & 0o222 != 0 {
        return Ok(Some(format!(
            "the file is writable (mode {:o}); an installed pack is read-only (0444)",
            meta.mode() & 0o7777
        )));
    }
    if let Some(detail) = foreign_owner("the file", meta) {
        return Ok(Some(detail));
    }
    match check_directories(canonical, Strictness::Strict) {
        Ok(()) => Ok(None),
        Err(Refusal::Unsafe(detail)) => Ok(Some(detail)),
        Err(Refusal::Unreadable(e)) => Err(e),
    }
}

/// Why a path fails the rule.
enum Refusal {
    /// Someone else could write or replace the pack: the detail.
    Unsafe(String),
    /// The path could not be examined.
    Unreadable(Error),
}

/// `path` with symlinks resolved, if it still leads to the open file `meta` describes;
/// `None` if it now names another file (the pack was replaced, by a compaction or an install,
/// while it was being opened: open it again).
pub(crate) fn resolve(path: &Path, meta: &Metadata) -> Result<Option<PathBuf>> {
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::read(path, e))?;
    let now = std::fs::metadata(&canonical).map_err(|e| Error::read(path, e))?;
    Ok(((now.dev(), now.ino()) == (meta.dev(), meta.ino())).then_some(canonical))
}

/// Checks every directory of `canonical` (the pack's path as [`resolve`] gave it), from its
/// parent up to the root.
fn check_directories(canonical: &Path, strictness: Strictness) -> std::result::Result<(), Refusal> {
    let unreadable = |e| Refusal::Unreadable(Error::read(canonical, e));
    for dir in canonical.ancestors().skip(1) {
        let dir_meta = std::fs::metadata(dir).map_err(unreadable)?;
        let mode = dir_meta.mode();
        let sticky = mode & 0o1000 != 0;
        let others = match strictness {
            Strictness::Lenient => 0o002,
            Strictness::Strict => 0o022,
        };
        if mode & others != 0 && !sticky {
            return Err(Refusal::Unsafe(format!(
                "its directory {} is writable by {} and not sticky (mode {:o}), so they could \
                 replace the pack",
                dir.display(),
                if mode & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                mode & 0o7777
            )));
        }
        if strictness == Strictness::Strict
            && let Some(detail) =
                foreign_owner(&format!("its directory {}", dir.display()), &dir_meta)
        {
            return Err(Refusal::Unsafe(detail));
        }
    }
    Ok(())
}

/// Why `what` (described by `meta`) is owned by someone other than this user or root.
fn foreign_owner(what: &str, meta: &Metadata) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    (meta.uid() != me && meta.uid() != 0).then(|| {
        format!(
            "{what} is owned by user {}, not by this user ({me}) or root",
            meta.uid()
        )
    })
}

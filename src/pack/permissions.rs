//! Who may have written a pack: the permission rules an open applies before trusting a file.
//!
//! Whoever can write a pack can run code in every process that loads from it. A pack is
//! refused if users other than its owner (or root) could have written it or could replace
//! it; an installed pack read without hashing ([`crate::PackOptions::trust_installed`]) must
//! moreover be read-only and sealed.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Repr;
use crate::fs::parent_dir;
use crate::{Error, Result};

/// Refuses packs that users other than the owner (or root) could have written.
pub(crate) fn check_not_shared(path: &Path, meta: &Metadata) -> Result<()> {
    let detail = if meta.mode() & 0o002 != 0 {
        Some(format!(
            "the file is writable by every user (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        foreign_owner("the file", meta).or_else(|| replaceable_by_anyone(parent_dir(path)))
    };
    detail.map_or(Ok(()), |detail| {
        Err(Error::from(Repr::Insecure {
            path: path.to_path_buf(),
            detail,
        }))
    })
}

/// Why anyone could replace a file in `dir`: writable by every user and not sticky. An
/// unreadable directory says nothing here: opening the file would have failed first.
fn replaceable_by_anyone(dir: &Path) -> Option<String> {
    let mode = std::fs::metadata(dir).ok()?.mode();
    (mode & 0o002 != 0 && mode & 0o1000 == 0).then(|| {
        format!(
            "its directory {} is writable by every user and not sticky, so anyone can \
             replace the pack",
            dir.display()
        )
    })
}

/// Refuses the trusted load path for a pack that is not sealed, has any write permission
/// bit, is owned by another user than this one or root, or lies in a directory that others
/// can write (and could replace it in). `meta` is the open file's.
pub(crate) fn check_installed(path: &Path, sealed: bool, meta: &Metadata) -> Result<()> {
    match not_installed_because(path, sealed, meta)? {
        Some(detail) => Err(Error::from(Repr::NotSealed {
            path: path.to_path_buf(),
            detail,
        })),
        None => Ok(()),
    }
}

/// Why the pack at `path` is not fit for the trusted load path, if it is not.
fn not_installed_because(path: &Path, sealed: bool, meta: &Metadata) -> Result<Option<String>> {
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
    let dir = parent_dir(path);
    let dir_meta = std::fs::metadata(dir).map_err(|e| Error::read(path, e))?;
    let sticky = dir_meta.mode() & 0o1000 != 0;
    if dir_meta.mode() & 0o022 != 0 && !sticky {
        return Ok(Some(format!(
            "its directory {} is writable by other users (mode {:o})",
            dir.display(),
            dir_meta.mode() & 0o7777
        )));
    }
    Ok(foreign_owner(
        &format!("its directory {}", dir.display()),
        &dir_meta,
    ))
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

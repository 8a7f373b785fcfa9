//! Who may have written a pack: the permission rules an open applies before trusting a file.
//!
//! Whoever can write a pack can run code in every process that loads from it. A pack is
//! refused if users other than its owner (or root) could have written it or could replace
//! it; an installed pack read without hashing ([`crate::PackOptions::trust_installed`]) must
//! moreover be read-only and sealed.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::fs::parent_dir;
use crate::{Error, Result};

/// Refuses packs that users other than the owner (or root) could have written.
pub(crate) fn check_not_shared(path: &Path, meta: &Metadata) -> Result<()> {
    let insecure = |detail: String| Error::Insecure {
        path: path.to_path_buf(),
        detail,
    };
    if meta.mode() & 0o002 != 0 {
        return Err(insecure(format!(
            "the file is writable by every user (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    if let Some(detail) = foreign_owner("the file", meta) {
        return Err(insecure(detail));
    }
    let dir = parent_dir(path);
    if let Ok(dir_meta) = std::fs::metadata(dir) {
        let mode = dir_meta.mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(insecure(format!(
                "its directory {} is writable by every user and not sticky, so anyone can \
                 replace the pack",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses the trusted load path for a pack that is not sealed, has any write permission
/// bit, is owned by another user than this one or root, or lies in a directory that others
/// can write (and could replace it in). `meta` is the open file's.
pub(crate) fn check_installed(path: &Path, sealed: bool, meta: &Metadata) -> Result<()> {
    let refuse = |detail: String| Error::NotSealed {
        path: path.to_path_buf(),
        detail,
    };
    if !sealed {
        return Err(refuse(
            "it is not sealed; install it first (wasmpak install, or Pack::install_into)"
                .to_string(),
        ));
    }
    if meta.mode() & 0o222 != 0 {
        return Err(refuse(format!(
            "the file is writable (mode {:o}); an installed pack is read-only (0444)",
            meta.mode() & 0o7777
        )));
    }
    if let Some(detail) = foreign_owner("the file", meta) {
        return Err(refuse(detail));
    }
    let dir = parent_dir(path);
    let dir_meta = std::fs::metadata(dir).map_err(|e| Error::read(path, e))?;
    let sticky = dir_meta.mode() & 0o1000 != 0;
    if dir_meta.mode() & 0o022 != 0 && !sticky {
        return Err(refuse(format!(
            "its directory {} is writable by other users (mode {:o})",
            dir.display(),
            dir_meta.mode() & 0o7777
        )));
    }
    if let Some(detail) = foreign_owner(&format!("its directory {}", dir.display()), &dir_meta) {
        return Err(refuse(detail));
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

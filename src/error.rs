//! The one error type of the pack store.

use std::io;
use std::path::{Path, PathBuf};

use crate::{Key, PackIdentity};

/// A specialized `Result` for pack operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a pack. Every message names the pack's path.
///
/// Match on [`Error::kind`] rather than on the variants: the kind is stable, the variants
/// may grow.
///
/// # Example
///
/// ```
/// use wasmpak::{ErrorKind, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("modules.wpk");
/// std::fs::write(&path, b"hello, not a pack")?;
/// let err = Pack::open(&path, &PackIdentity::new().with("engine", "demo")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotAPack);
/// assert!(err.to_string().contains("modules.wpk"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pack file could not be opened.
    #[error("failed to open pack {}: {source}", path.display())]
    Open {
        /// The pack's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A new pack file could not be created.
    #[error("failed to create pack {}: {source}", path.display())]
    Create {
        /// The pack's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Reading or mapping the pack failed.
    #[error("failed to read pack {}: {source}", path.display())]
    Read {
        /// The pack's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing or syncing the pack failed. Nothing that was committed before is lost.
    #[error("failed to write pack {}: {source}", path.display())]
    Write {
        /// The pack's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The commit landed (readers see it, and retrying would write it again), but syncing it
    /// failed, so it may not survive a power loss.
    #[error(
        "commit to pack {} landed, but syncing it failed, so it may not survive a power loss: \
         {source}",
        path.display()
    )]
    NotDurable {
        /// The pack's path.
        path: PathBuf,
        /// The error of the failed sync.
        #[source]
        source: io::Error,
    },
    /// Taking or releasing the writer lock failed.
    #[error("failed to lock pack {}: {source}", path.display())]
    Lock {
        /// The pack's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not a pack at all (wrong magic, too short, a directory).
    #[error("{} is not a wasmpak pack: {reason}", path.display())]
    NotAPack {
        /// The file's path.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The pack was written by a newer format version.
    #[error(
        "pack {} uses format version {found}, this build of wasmpak reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        /// The pack's path.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The pack belongs to another engine identity.
    #[error("pack {} was built for {found}, expected {expected}", path.display())]
    IdentityMismatch {
        /// The pack's path.
        path: PathBuf,
        /// The identity the caller asked for.
        expected: PackIdentity,
        /// The identity stored in the pack.
        found: PackIdentity,
    },
    /// A checksum or structural check failed.
    #[error("pack {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The pack's path.
        path: PathBuf,
        /// Which structure failed and where.
        detail: String,
    },
    /// A write was attempted on a pack opened without write access.
    #[error("pack {} is read-only: {reason}", path.display())]
    ReadOnly {
        /// The pack's path.
        path: PathBuf,
        /// Why it could not be opened for writing.
        reason: String,
    },
    /// `Pack::create` found a file already there.
    #[error("pack {} already exists", path.display())]
    AlreadyExists {
        /// The pack's path.
        path: PathBuf,
    },
    /// The caller passed something the format cannot store.
    #[error("invalid input for pack {}: {detail}", path.display())]
    InvalidInput {
        /// The pack's path.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// The pack could be modified by other users, so its contents cannot be trusted.
    #[error(
        "refusing to open pack {}: {detail} (whoever can write a pack can run code in every \
         process that loads from it; fix the permissions or allow shared writes explicitly)",
        path.display()
    )]
    Insecure {
        /// The pack's path.
        path: PathBuf,
        /// Which permission is too open.
        detail: String,
    },
    /// With trusted keys set: an entry no trusted signature covers, or whose bytes are not the
    /// ones signed.
    #[error("entry {key} of pack {} is not trusted: {reason}", path.display())]
    Untrusted {
        /// The pack's path.
        path: PathBuf,
        /// The entry refused.
        key: Key,
        /// Why: unsigned, signed by another key, altered after signing, ...
        reason: String,
    },
    /// The trusted load path of installed packs was asked for a pack that does not qualify.
    #[error("refusing to trust pack {} without re-hashing: {detail}", path.display())]
    NotSealed {
        /// The pack's path.
        path: PathBuf,
        /// What disqualifies it: not sealed, writable, owned by another user.
        detail: String,
    },
}

/// The category of an [`Error`], for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file or a directory on its path does not exist.
    NotFound,
    /// The operating system denied access.
    PermissionDenied,
    /// The disk or a file size limit is full.
    StorageFull,
    /// The pack cannot be written (read-only file, file system or handle).
    ReadOnly,
    /// Any other I/O failure.
    Io,
    /// A commit (or compaction) landed and is visible, but could not be made durable: it may
    /// be lost on power loss. Do not retry the writes.
    NotDurable,
    /// The file is not a pack.
    NotAPack,
    /// The pack is from a newer format version.
    UnsupportedVersion,
    /// The pack belongs to another engine identity.
    IdentityMismatch,
    /// A checksum or structural check failed.
    Corrupt,
    /// `create` found an existing file.
    AlreadyExists,
    /// Input the format cannot store (label too long, identity too large).
    InvalidInput,
    /// The pack is writable by other users.
    Insecure,
    /// An entry is not covered by a trusted signature, or its bytes do not match it.
    Untrusted,
    /// A pack asked to be trusted as installed is not sealed, read-only and private.
    NotSealed,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Open { source, .. }
            | Error::Create { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::Lock { source, .. } => io_kind(source),
            Error::NotDurable { .. } => ErrorKind::NotDurable,
            Error::NotAPack { .. } => ErrorKind::NotAPack,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::IdentityMismatch { .. } => ErrorKind::IdentityMismatch,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::ReadOnly { .. } => ErrorKind::ReadOnly,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Insecure { .. } => ErrorKind::Insecure,
            Error::Untrusted { .. } => ErrorKind::Untrusted,
            Error::NotSealed { .. } => ErrorKind::NotSealed,
        }
    }

    /// The path of the pack the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Open { path, .. }
            | Error::Create { path, .. }
            | Error::Read { path, .. }
            | Error::Write { path, .. }
            | Error::NotDurable { path, .. }
            | Error::Lock { path, .. }
            | Error::NotAPack { path, .. }
            | Error::UnsupportedVersion { path, .. }
            | Error::IdentityMismatch { path, .. }
            | Error::Corrupt { path, .. }
            | Error::ReadOnly { path, .. }
            | Error::AlreadyExists { path }
            | Error::InvalidInput { path, .. }
            | Error::Insecure { path, .. }
            | Error::Untrusted { path, .. }
            | Error::NotSealed { path, .. } => path,
        }
    }

    /// The underlying I/O error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Open { source, .. }
            | Error::Create { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::NotDurable { source, .. }
            | Error::Lock { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The detail of a corruption without the "pack ... is corrupt" around it, or the whole
    /// message of any other error: for reports that list the problems of one pack.
    pub(crate) fn detail(&self) -> String {
        match self {
            Error::Corrupt { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    pub(crate) fn not_a_pack(path: &Path, reason: impl Into<String>) -> Error {
        Error::NotAPack {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_input(path: &Path, detail: impl Into<String>) -> Error {
        Error::InvalidInput {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    pub(crate) fn read(path: &Path, source: io::Error) -> Error {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> Error {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn not_durable(path: &Path, source: io::Error) -> Error {
        Error::NotDurable {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn io_kind(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded => {
            ErrorKind::StorageFull
        }
        io::ErrorKind::ReadOnlyFilesystem => ErrorKind::ReadOnly,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let path = Path::new("p.wpk");
        let full = Error::write(path, io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.kind(), ErrorKind::StorageFull);
        let efbig = Error::write(path, io::Error::from_raw_os_error(27));
        assert_eq!(efbig.kind(), ErrorKind::StorageFull);
        let denied = Error::read(path, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        assert_eq!(denied.path(), path);
        assert!(denied.io_error().is_some());
        let landed = Error::not_durable(path, io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(landed.kind(), ErrorKind::NotDurable);
        assert!(landed.io_error().is_some());
        assert!(!landed.to_string().contains('\n'));
    }

    #[test]
    fn messages_name_the_path_in_one_line() {
        let err = Error::corrupt(Path::new("dir/x.wpk"), "index entry 3 checksum mismatch");
        let text = err.to_string();
        assert!(text.starts_with("pack dir/x.wpk is corrupt"), "{text}");
        assert!(!text.contains('\n'));
    }
}

//! [`ErrorKind`]: what a caller of the store matches on.

use std::io;

/// The category of an [`Error`](crate::Error), for matching.
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

impl ErrorKind {
    /// The kind of a failed I/O operation on a pack.
    pub(crate) fn of_io(error: &io::Error) -> ErrorKind {
        match error.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::StorageFull
            | io::ErrorKind::FileTooLarge
            | io::ErrorKind::QuotaExceeded => ErrorKind::StorageFull,
            io::ErrorKind::ReadOnlyFilesystem => ErrorKind::ReadOnly,
            _ => ErrorKind::Io,
        }
    }
}

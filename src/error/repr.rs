//! What an [`Error`](crate::Error) holds: one variant per failure, each with its message and
//! the values it names. Crate-private, like `std::io::Error`'s: callers match on the kind and
//! read values through the accessors, so variants can change without breaking them.

use std::io;
use std::path::{Path, PathBuf};

use super::kind::ErrorKind;
use crate::{Key, PackIdentity};

/// The variants of an [`Error`](crate::Error); every message names the pack's path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Repr {
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

impl Repr {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Repr::Open { source, .. }
            | Repr::Create { source, .. }
            | Repr::Read { source, .. }
            | Repr::Write { source, .. }
            | Repr::Lock { source, .. } => ErrorKind::of_io(source),
            Repr::NotDurable { .. } => ErrorKind::NotDurable,
            Repr::NotAPack { .. } => ErrorKind::NotAPack,
            Repr::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Repr::IdentityMismatch { .. } => ErrorKind::IdentityMismatch,
            Repr::Corrupt { .. } => ErrorKind::Corrupt,
            Repr::ReadOnly { .. } => ErrorKind::ReadOnly,
            Repr::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Repr::InvalidInput { .. } => ErrorKind::InvalidInput,
            Repr::Insecure { .. } => ErrorKind::Insecure,
            Repr::Untrusted { .. } => ErrorKind::Untrusted,
            Repr::NotSealed { .. } => ErrorKind::NotSealed,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Repr::Open { path, .. }
            | Repr::Create { path, .. }
            | Repr::Read { path, .. }
            | Repr::Write { path, .. }
            | Repr::NotDurable { path, .. }
            | Repr::Lock { path, .. }
            | Repr::NotAPack { path, .. }
            | Repr::UnsupportedVersion { path, .. }
            | Repr::IdentityMismatch { path, .. }
            | Repr::Corrupt { path, .. }
            | Repr::ReadOnly { path, .. }
            | Repr::AlreadyExists { path }
            | Repr::InvalidInput { path, .. }
            | Repr::Insecure { path, .. }
            | Repr::Untrusted { path, .. }
            | Repr::NotSealed { path, .. } => path,
        }
    }

    pub(crate) fn io_error(&self) -> Option<&io::Error> {
        match self {
            Repr::Open { source, .. }
            | Repr::Create { source, .. }
            | Repr::Read { source, .. }
            | Repr::Write { source, .. }
            | Repr::NotDurable { source, .. }
            | Repr::Lock { source, .. } => Some(source),
            _ => None,
        }
    }
}

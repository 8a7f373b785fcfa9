//! [`CacheError`], the one error of the cache layer, and its [`kind`](CacheError::kind).
//!
//! Assumptions: callers decide by kind (compile on a miss, report damage, retry a failed
//! write) and read the message for the rest; the errors of the layers beneath (a pack's
//! [`Error`](crate::Error), an object store's `RemoteError`, an engine's
//! [`Incompatibility`](crate::Incompatibility)) stay reachable as the source, and
//! [`kind`](CacheError::kind) looks through to them so that one match covers every cache.

use std::path::PathBuf;

use crate::{Error, ErrorKind};

/// What went wrong in a [`ModuleCache`](crate::ModuleCache) operation.
///
/// Match on [`kind`](CacheError::kind); the variants say where the detail lives.
///
/// # Example
///
/// ```
/// use std::path::PathBuf;
/// use wasmpak::{CacheError, CacheErrorKind};
///
/// let err = CacheError::FileRead {
///     path: PathBuf::from("cache/module.bin"),
///     error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
/// };
/// assert!(err.to_string().starts_with("failed to read cache/module.bin: "));
/// assert_eq!(err.kind(), CacheErrorKind::Read);
/// assert!(!err.is_not_found());
/// assert!(CacheError::NotFound.is_not_found());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache has no usable module under the key: a plain miss.
    #[error("module not found in the cache")]
    NotFound,
    /// The module could not be serialized.
    #[error("failed to serialize the module: {0}")]
    Serialize(#[from] wasmer::SerializeError),
    /// The module could not be deserialized.
    #[error("failed to deserialize the module: {0}")]
    Deserialize(#[from] wasmer::DeserializeError),
    /// A cache file could not be read.
    #[error("failed to read {}: {error}", path.display())]
    FileRead {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// A cache file could not be written.
    #[error("failed to write {}: {error}", path.display())]
    FileWrite {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// Any other failure: a pack's, an object store's, an engine that cannot load a pack, or
    /// one from a custom cache. [`kind`](CacheError::kind) tells them apart.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The category of a [`CacheError`], for callers that decide what to do by it.
///
/// # Example
///
/// ```
/// use wasmpak::{CacheError, CacheErrorKind, ModuleCache, ModuleHash, SharedCache};
///
/// let engine = wasmer::Engine::default();
/// let key = ModuleHash::new(b"not saved");
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// match runtime.block_on(SharedCache::new().load(key, &engine)) {
///     Err(e) if e.kind() == CacheErrorKind::NotFound => {} // compile it
///     Err(e) if e.kind() == CacheErrorKind::Corrupt => {}  // report, then compile it
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheErrorKind {
    /// The cache has no usable module under the key: a plain miss.
    NotFound,
    /// The engine cannot load what is stored: another compiler, wasmer version or target, CPU
    /// features it lacks, or not a wasmer pack at all.
    Incompatible,
    /// Stored bytes failed an integrity check: a checksum, or the structure of a pack.
    Corrupt,
    /// No trusted signature covers the module, or its bytes differ from what was signed.
    Untrusted,
    /// wasmer refused to deserialize the stored artifact.
    Deserialize,
    /// The module could not be serialized.
    Serialize,
    /// Reading the cache's storage failed.
    Read,
    /// Writing the cache's storage failed.
    Write,
    /// An object store failed, timed out or is being skipped (the source is a `RemoteError`).
    Remote,
    /// Anything else, such as a custom cache's own error.
    Other,
}

impl CacheError {
    /// Wraps any error as [`CacheError::Other`].
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> CacheError {
        CacheError::Other(Box::new(error))
    }

    /// Whether this is a plain miss rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CacheError::NotFound)
    }

    /// The category of this error, looking through [`CacheError::Other`] at the errors of
    /// this crate's other layers.
    pub fn kind(&self) -> CacheErrorKind {
        match self {
            CacheError::NotFound => CacheErrorKind::NotFound,
            CacheError::Serialize(_) => CacheErrorKind::Serialize,
            CacheError::Deserialize(_) => CacheErrorKind::Deserialize,
            CacheError::FileRead { .. } => CacheErrorKind::Read,
            CacheError::FileWrite { .. } => CacheErrorKind::Write,
            CacheError::Other(error) => other_kind(error.as_ref()),
        }
    }

    /// A pack error met while loading.
    pub(crate) fn from_pack_read(error: Error) -> CacheError {
        let path = error.path().to_path_buf();
        match error {
            Error::Open { source, .. }
            | Error::Read { source, .. }
            | Error::Lock { source, .. } => CacheError::FileRead {
                path,
                error: source,
            },
            other => CacheError::other(other),
        }
    }

    /// A pack error met while saving or compacting.
    pub(crate) fn from_pack_write(error: Error) -> CacheError {
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
}

/// The kind of an error wrapped in [`CacheError::Other`].
fn other_kind(error: &(dyn std::error::Error + 'static)) -> CacheErrorKind {
    if let Some(pack) = error.downcast_ref::<Error>() {
        return match pack.kind() {
            ErrorKind::Corrupt | ErrorKind::NotAPack => CacheErrorKind::Corrupt,
            ErrorKind::IdentityMismatch | ErrorKind::UnsupportedVersion => {
                CacheErrorKind::Incompatible
            }
            ErrorKind::Untrusted => CacheErrorKind::Untrusted,
            ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::Io => {
                CacheErrorKind::Read
            }
            ErrorKind::StorageFull | ErrorKind::ReadOnly | ErrorKind::NotDurable => {
                CacheErrorKind::Write
            }
            _ => CacheErrorKind::Other,
        };
    }
    if error.is::<crate::Incompatibility>() {
        return CacheErrorKind::Incompatible;
    }
    #[cfg(feature = "object-store")]
    if error.is::<crate::RemoteError>() {
        return CacheErrorKind::Remote;
    }
    CacheErrorKind::Other
}

/// What cache operations return.
pub(crate) type CacheResult<T> = Result<T, CacheError>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn errors_name_what_failed() {
        let err = CacheError::FileWrite {
            path: PathBuf::from("dir/x.bin"),
            error: std::io::Error::other("disk full"),
        };
        assert_eq!(err.to_string(), "failed to write dir/x.bin: disk full");
        assert!(err.source().is_some());
        assert_eq!(err.kind(), CacheErrorKind::Write);
        let other = CacheError::other(std::io::Error::other("boom"));
        assert_eq!(other.to_string(), "boom");
        assert!(!other.is_not_found());
        assert_eq!(other.kind(), CacheErrorKind::Other);
        let de = CacheError::from(wasmer::DeserializeError::Generic("bad".into()));
        assert_eq!(de.to_string(), "failed to deserialize the module: bad");
        assert_eq!(de.kind(), CacheErrorKind::Deserialize);
    }

    #[test]
    fn kind_looks_through_to_the_layer_beneath() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.wpk");
        std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
        let error = CacheError::from_pack_read(crate::Pack::open_any(&garbage).unwrap_err());
        assert_eq!(error.kind(), CacheErrorKind::Corrupt, "{error}");
        assert!(error.to_string().contains("garbage.wpk"), "{error}");
        let missing = dir.path().join("missing.wpk");
        let error = CacheError::from_pack_read(crate::Pack::open_any(&missing).unwrap_err());
        assert!(matches!(error, CacheError::FileRead { .. }), "{error}");
        let incompatible = crate::Incompatibility::CpuFeatures {
            missing: vec!["avx2".to_string()],
        };
        assert_eq!(
            CacheError::other(incompatible).kind(),
            CacheErrorKind::Incompatible
        );
    }
}

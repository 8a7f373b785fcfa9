//! The error of a request to the store, and what the cache counts.

use std::fmt;

use ::object_store::path::Path as ObjectPath;

/// What an [`ObjectStoreCache`] has done so far in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ObjectStoreStats {
    /// Loads served from the store.
    pub hits: u64,
    /// Loads that found nothing usable, for whatever reason.
    pub misses: u64,
    /// Objects skipped as unusable: damaged, foreign, or refused by wasmer.
    pub stale: u64,
    /// Requests that failed or timed out.
    pub failures: u64,
    /// Requests not sent because the store had failed recently.
    pub skipped: u64,
    /// Modules uploaded.
    pub saves: u64,
    /// Saves that found the module already there (another node was first).
    pub already_saved: u64,
    /// Background uploads dropped: too many pending, or the store had failed recently.
    pub uploads_dropped: u64,
    /// Bytes of module objects downloaded.
    pub bytes_downloaded: u64,
    /// Bytes of module objects uploaded.
    pub bytes_uploaded: u64,
}

/// A failed request to the store, as [`ObjectStoreCache`] reports it from a save that waits
/// for its upload (loads turn failures into misses).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use wasmer::{Engine, Module};
/// use wasmpak::object_store::{ObjectStore, local::LocalFileSystem};
/// use wasmpak::{CacheError, ModuleCache, ModuleHash, ObjectStoreCache, RemoteErrorKind};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("modules"), "a file where a folder should be")?;
/// let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path())?);
/// let cache = ObjectStoreCache::builder(store, "modules").background_saves(false).build();
/// let engine = Engine::default();
/// let wasm = wasmer::wat2wasm(b"(module)")?;
/// let module = Module::new(&engine, &wasm)?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let error = runtime.block_on(cache.save(ModuleHash::new(&wasm), &engine, &module)).unwrap_err();
/// let CacheError::Other(error) = error else { panic!("{error}") };
/// let remote = error.downcast_ref::<wasmpak::RemoteError>().expect("a remote error");
/// assert_eq!(remote.kind(), RemoteErrorKind::Failed);
/// assert!(remote.to_string().starts_with("failed to upload modules/"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RemoteError {
    pub(super) kind: RemoteErrorKind,
    pub(super) operation: &'static str,
    pub(super) path: ObjectPath,
    /// The URL the error is about, for errors of [`StoreUrl::open`](super::StoreUrl::open).
    pub(super) url: Option<String>,
    pub(super) source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The category of a [`RemoteError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The request did not finish within the timeout.
    Timeout,
    /// The store failed recently and is being left alone for a while.
    Unavailable,
    /// The store answered with an error, or could not be reached.
    Failed,
    /// A URL is malformed or names a scheme no supported store has.
    InvalidUrl,
    /// The store's client could not be built from a URL and the environment.
    Config,
}

impl RemoteError {
    /// An error about `url`, explained by `why`.
    pub(super) fn for_url(kind: RemoteErrorKind, url: &str, why: String) -> RemoteError {
        RemoteError {
            kind,
            operation: "open",
            path: ObjectPath::default(),
            url: Some(url.to_string()),
            source: Some(why.into()),
        }
    }

    /// The category of the failure.
    pub fn kind(&self) -> RemoteErrorKind {
        self.kind
    }

    /// The object concerned (empty for an error about a URL).
    pub fn path(&self) -> &ObjectPath {
        &self.path
    }

    /// The URL concerned, for an error of [`StoreUrl::open`](super::StoreUrl::open).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            Some(url) => write!(f, "failed to {} {url}: ", self.operation)?,
            None => write!(f, "failed to {} {}: ", self.operation, self.path)?,
        }
        match (&self.kind, &self.source) {
            (RemoteErrorKind::Timeout, _) => f.write_str("the store did not answer in time"),
            (RemoteErrorKind::Unavailable, _) => {
                f.write_str("the store failed recently and is being skipped")
            }
            (_, Some(source)) => write!(f, "{source}"),
            (_, None) => f.write_str("unknown error"),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

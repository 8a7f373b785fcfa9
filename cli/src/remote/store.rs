//! The object a `push` or `pull` URL names: the library's [`StoreUrl`] (scheme, credentials
//! and endpoints from the environment, connect timeout, retries), with what the tool adds
//! around it: a folder URL completed by the pack's file name, the `--timeout` every step is
//! bounded by, and its messages.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmpak::object_store::ObjectStore;
use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::{RemoteErrorKind, StoreUrl};

use crate::error::CliError;

/// An object in a store, as a URL named it.
#[derive(Debug, Clone)]
pub struct Remote {
    location: StoreUrl,
    /// How long the store may make no progress.
    timeout: Duration,
}

impl Remote {
    /// Opens the store `url` names. A URL that ends with `/` (or names a bucket alone) is a
    /// folder: `file_name`, if given, completes it; otherwise it is a usage error.
    pub fn open(url: &str, file_name: Option<&str>, timeout: Duration) -> Result<Remote, CliError> {
        let location = StoreUrl::open(url, timeout).map_err(|e| match e.kind() {
            RemoteErrorKind::InvalidUrl => CliError::usage(e),
            _ => CliError::failed(e),
        })?;
        let location = match (location.is_folder(), file_name) {
            (false, _) => location,
            (true, Some(name)) => location.join(name),
            (true, None) => {
                return Err(CliError::usage(format!(
                    "URL {url} names a folder, not a pack: add the pack's file name"
                )));
            }
        };
        Ok(Remote { location, timeout })
    }

    /// The URL, for messages.
    pub fn url(&self) -> &str {
        self.location.url()
    }

    /// The store the URL's scheme and bucket name.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.location.store()
    }

    /// The object's path in the store.
    pub fn path(&self) -> &ObjectPath {
        self.location.path()
    }

    /// `step` (a request, a chunk of a download, a part of an upload), or an error naming the
    /// URL if the store makes no progress for the timeout.
    pub async fn within<T>(
        &self,
        doing: &str,
        step: impl Future<Output = T>,
    ) -> Result<T, CliError> {
        tokio::time::timeout(self.timeout, step).await.map_err(|_| {
            CliError::failed(format!(
                "cannot {doing} {}: the store made no progress for {} s (--timeout)",
                self.url(),
                self.timeout.as_secs()
            ))
        })
    }

    /// A failed request, as one line naming the URL.
    pub fn error(&self, doing: &str, error: &wasmpak::object_store::Error) -> CliError {
        CliError::failed(format!(
            "cannot {doing} {}: {}",
            self.url(),
            self.location.describe(error)
        ))
    }
}

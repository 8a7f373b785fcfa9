//! An object store built from a URL, the way the cloud's own tools build theirs.
//!
//! Assumptions: the URL names a store and a path in it (`s3://BUCKET/PATH`,
//! `gs://BUCKET/PATH`, `az://CONTAINER/PATH`, `file:///PATH`), and everything else comes from
//! the environment, as the AWS, Google Cloud and Azure command-line tools read it: credentials
//! and endpoints (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...). A store
//! may be slow or far away, so connecting is bounded by a timeout and failed requests are
//! retried a few times; a whole request is not bounded, which would cut a large transfer
//! short: callers bound each step (an answer, a chunk, a part) themselves.

use std::sync::Arc;
use std::time::Duration;

use ::object_store::aws::AmazonS3Builder;
use ::object_store::azure::MicrosoftAzureBuilder;
use ::object_store::gcp::GoogleCloudStorageBuilder;
use ::object_store::local::LocalFileSystem;
use ::object_store::path::Path as ObjectPath;
use ::object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};

use super::{RemoteError, RemoteErrorKind};

/// The URL forms [`StoreUrl::open`] accepts, for messages.
const FORMS: &str = "s3://BUCKET/PATH, gs://BUCKET/PATH, az://CONTAINER/PATH or file:///PATH";

/// An object store and a path in it, as a URL names them: what a tool that pushes or pulls
/// packs, or a fleet node that builds an [`ObjectStoreCache`](super::ObjectStoreCache) from
/// its configuration, starts from.
///
/// A URL that ends with `/`, or names a bucket alone, is a folder
/// ([`is_folder`](StoreUrl::is_folder)); [`join`](StoreUrl::join) names a file in it.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wasmpak::StoreUrl;
/// use wasmpak::object_store::ObjectStoreExt;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let folder = StoreUrl::open(&format!("file://{}/", dir.path().display()), Duration::from_secs(5))?;
/// assert!(folder.is_folder());
/// let pack = folder.join("modules.wpk");
/// assert!(pack.url().ends_with("/modules.wpk"));
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// runtime.block_on(pack.store().put(pack.path(), "pack bytes".into()))?;
/// assert_eq!(std::fs::read(dir.path().join("modules.wpk"))?, b"pack bytes");
///
/// // The fleet tier over the same store (in production an s3:// or gs:// URL).
/// let fleet = wasmpak::ObjectStoreCache::new(folder.store().clone(), folder.path().clone());
/// # let _ = fleet;
/// let error = StoreUrl::open("ftp://example.com/x", Duration::from_secs(5)).unwrap_err();
/// assert_eq!(error.kind(), wasmpak::RemoteErrorKind::InvalidUrl);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreUrl {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    folder: bool,
    /// Said after a failure when the environment holds no credentials for the store.
    credentials_hint: Option<&'static str>,
}

impl StoreUrl {
    /// The store `url` names, with credentials and endpoints from the environment, connecting
    /// within `timeout` (at most 5 s) and retrying a failed request up to 3 times within
    /// `timeout`. Sends nothing: a store that does not exist fails the first request.
    ///
    /// # Errors
    ///
    /// [`RemoteErrorKind::InvalidUrl`] for a malformed URL or one of another scheme;
    /// [`RemoteErrorKind::Config`] if the store's client cannot be built from the URL and the
    /// environment.
    pub fn open(url: &str, timeout: Duration) -> Result<StoreUrl, RemoteError> {
        let invalid = |why: String| RemoteError::for_url(RemoteErrorKind::InvalidUrl, url, why);
        let parsed = ::url::Url::parse(url)
            .map_err(|e| invalid(format!("invalid URL: {e}; expected {FORMS}")))?;
        let unsupported = || invalid(format!("unsupported URL: expected {FORMS}"));
        let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|_| unsupported())?;
        let folder = path.as_ref().is_empty() || parsed.path().ends_with('/');
        let options = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(timeout.min(Duration::from_secs(5)));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: timeout,
        };
        let built = match scheme {
            ObjectStoreScheme::Local => {
                Ok(Arc::new(LocalFileSystem::new()) as Arc<dyn ObjectStore>)
            }
            ObjectStoreScheme::AmazonS3 => s3(url, options, retry),
            ObjectStoreScheme::GoogleCloudStorage => GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            ObjectStoreScheme::MicrosoftAzure => MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            _ => return Err(unsupported()),
        };
        let store =
            built.map_err(|e| RemoteError::for_url(RemoteErrorKind::Config, url, explain(&e)))?;
        Ok(StoreUrl {
            url: url.to_string(),
            store,
            path,
            folder,
            credentials_hint: credentials_hint(scheme),
        })
    }

    /// The URL as given (or as [`join`](StoreUrl::join) completed it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store the URL's scheme and bucket name.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The path in the store.
    pub fn path(&self) -> &ObjectPath {
        &self.path
    }

    /// Whether the URL names a folder (it ends with `/`, or names a bucket alone) rather than
    /// an object.
    pub fn is_folder(&self) -> bool {
        self.folder
    }

    /// The object `name` in this folder (or next to this object's path, as a path segment).
    pub fn join(&self, name: &str) -> StoreUrl {
        let separator = if self.url.ends_with('/') { "" } else { "/" };
        StoreUrl {
            url: format!("{}{separator}{name}", self.url),
            path: self.path.clone().join(name),
            folder: false,
            ..self.clone()
        }
    }

    /// A failed request to this store in one line: the store's own words where they name a
    /// well-known cause (the raw reply of an S3 server is a page of XML), and a hint when the
    /// environment holds no credentials for the store.
    pub fn describe(&self, error: &::object_store::Error) -> String {
        match self.credentials_hint {
            Some(hint) => format!("{} ({hint})", explain(error)),
            None => explain(error),
        }
    }
}

/// An S3 (or compatible) store.
fn s3(
    url: &str,
    options: ClientOptions,
    retry: RetryConfig,
) -> ::object_store::Result<Arc<dyn ObjectStore>> {
    // An endpoint spelled with http:// (a local MinIO or test server) is meant to be used as
    // it is, as the AWS CLI does.
    let endpoints: Vec<String> = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .collect();
    let plain_http = endpoints.iter().any(|e| e.starts_with("http://"));
    // Loading the system's root certificates is most of a short transfer's start-up, and only
    // TLS needs them: not when every request goes to a plain http:// endpoint, signed with
    // keys from the environment (no token service to ask over https).
    let no_tls = plain_http
        && endpoints.iter().all(|e| e.starts_with("http://"))
        && (has_all(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
            || has_any(&["AWS_SKIP_SIGNATURE"]));
    AmazonS3Builder::from_env()
        .with_url(url)
        .with_client_options(
            options
                .with_allow_http(plain_http)
                .with_no_system_certificates(no_tls),
        )
        .with_retry(retry)
        .build()
        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
}

/// What to say after a failure when the environment holds no credentials for `scheme`.
fn credentials_hint(scheme: ObjectStoreScheme) -> Option<&'static str> {
    match scheme {
        ObjectStoreScheme::AmazonS3 if !has_any(AWS_CREDENTIALS) => Some(
            "no credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) \
             and none from the instance metadata service",
        ),
        ObjectStoreScheme::GoogleCloudStorage if !has_any(GCP_CREDENTIALS) => Some(
            "no credentials in the environment (GOOGLE_SERVICE_ACCOUNT or \
             GOOGLE_APPLICATION_CREDENTIALS) and none from the metadata service",
        ),
        ObjectStoreScheme::MicrosoftAzure if !has_any(AZURE_CREDENTIALS) => Some(
            "no credentials in the environment (AZURE_STORAGE_ACCOUNT_KEY, \
             AZURE_STORAGE_SAS_KEY, AZURE_CLIENT_SECRET, ...)",
        ),
        _ => None,
    }
}

/// Variables that give S3 credentials (or say none are needed).
const AWS_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_SKIP_SIGNATURE",
];
/// Variables that give GCS credentials.
const GCP_CREDENTIALS: &[&str] = &[
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_SKIP_SIGNATURE",
];
/// Variables that give Azure credentials.
const AZURE_CREDENTIALS: &[&str] = &[
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_STORAGE_USE_EMULATOR",
    "AZURE_SKIP_SIGNATURE",
];

fn has_any(names: &[&str]) -> bool {
    names.iter().any(|name| std::env::var_os(name).is_some())
}

fn has_all(names: &[&str]) -> bool {
    names.iter().all(|name| std::env::var_os(name).is_some())
}

/// An `object_store` error in a line: the store's own words where they name a well-known
/// cause, else the whole error.
fn explain(error: &::object_store::Error) -> String {
    let text = error.to_string();
    let code = |name: &str| text.contains(&format!("<Code>{name}</Code>"));
    if code("NoSuchBucket") || text.contains("bucket does not exist") {
        "the bucket does not exist (NoSuchBucket)".to_string()
    } else if code("AccessDenied") || code("InvalidAccessKeyId") || code("SignatureDoesNotMatch") {
        "access denied: check the credentials in the environment (AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY, ...)"
            .to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn files_and_folders() {
        let folder = StoreUrl::open("file:///var/packs/", TIMEOUT).unwrap();
        assert!(folder.is_folder());
        assert_eq!(folder.path().as_ref(), "var/packs");
        let pack = folder.join("a.wpk");
        assert!(!pack.is_folder());
        assert_eq!(pack.url(), "file:///var/packs/a.wpk");
        assert_eq!(pack.path().as_ref(), "var/packs/a.wpk");
        let file = StoreUrl::open("file:///var/packs/a.wpk", TIMEOUT).unwrap();
        assert!(!file.is_folder());
        assert_eq!(file.path(), pack.path());
    }

    #[test]
    fn a_bucket_alone_is_a_folder_and_no_request_is_sent() {
        let bucket = StoreUrl::open("s3://some-bucket", TIMEOUT).unwrap();
        assert!(bucket.is_folder());
        let pack = bucket.join("fleet.wpk");
        assert_eq!(pack.url(), "s3://some-bucket/fleet.wpk");
        assert_eq!(pack.path().as_ref(), "fleet.wpk");
        let gcs = StoreUrl::open("gs://b/dir/x.wpk", TIMEOUT).unwrap();
        assert_eq!(gcs.path().as_ref(), "dir/x.wpk");
    }

    #[test]
    fn malformed_and_unsupported_urls_say_what_is_accepted() {
        for url in [
            "not a url",
            "ftp://host/x",
            "memory:///x",
            "https://example.com/x",
        ] {
            let error = StoreUrl::open(url, TIMEOUT).unwrap_err();
            assert_eq!(error.kind(), RemoteErrorKind::InvalidUrl, "{url}: {error}");
            let text = error.to_string();
            assert!(
                text.contains(url) && text.contains("s3://BUCKET/PATH"),
                "{text}"
            );
        }
    }

    #[test]
    fn s3_error_pages_become_one_line() {
        let page = "<Error><Code>NoSuchBucket</Code><Message>...</Message></Error>";
        let error = ::object_store::Error::Generic {
            store: "S3",
            source: page.into(),
        };
        assert_eq!(explain(&error), "the bucket does not exist (NoSuchBucket)");
        let local = StoreUrl::open("file:///x", TIMEOUT).unwrap();
        assert!(
            local
                .describe(&error)
                .starts_with("the bucket does not exist")
        );
    }
}

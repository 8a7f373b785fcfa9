//! The object store a `push` or `pull` URL names, built the way the cloud's own tools do:
//! credentials and endpoints from the usual environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, ...), every step bounded by a timeout, failed requests
//! retried a few times.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmpak::object_store::aws::AmazonS3Builder;
use wasmpak::object_store::azure::MicrosoftAzureBuilder;
use wasmpak::object_store::gcp::GoogleCloudStorageBuilder;
use wasmpak::object_store::local::LocalFileSystem;
use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig,
};

use crate::error::CliError;

/// The URL forms `push` and `pull` accept, for error messages.
const FORMS: &str = "s3://BUCKET/PATH, gs://BUCKET/PATH, az://CONTAINER/PATH or file:///PATH";

/// An object in a store, as a URL named it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The URL as given, for messages.
    pub url: String,
    /// The store the URL's scheme and bucket name.
    pub store: Arc<dyn ObjectStore>,
    /// The object's path in the store.
    pub path: ObjectPath,
    /// Said after a failure when the environment holds no credentials for the store.
    credentials_hint: Option<&'static str>,
    /// How long the store may make no progress.
    timeout: Duration,
}

impl Remote {
    /// Opens the store `url` names. A URL that ends with `/` (or names a bucket alone) is a
    /// folder: `file_name`, if given, completes it; otherwise it is a usage error.
    pub fn open(url: &str, file_name: Option<&str>, timeout: Duration) -> Result<Remote, CliError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| CliError::usage(format!("invalid URL {url}: {e}; expected {FORMS}")))?;
        let unsupported = || CliError::usage(format!("unsupported URL {url}: expected {FORMS}"));
        let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|_| unsupported())?;
        let folder = path.as_ref().is_empty() || parsed.path().ends_with('/');
        let path = match (folder, file_name) {
            (false, _) => path,
            (true, Some(name)) => path.join(name),
            (true, None) => {
                return Err(CliError::usage(format!(
                    "URL {url} names a folder, not a pack: add the pack's file name"
                )));
            }
        };
        // No limit on a whole request, which would cut a large download short: `within`
        // bounds each step (an answer, a chunk, a part) instead.
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
            ObjectStoreScheme::AmazonS3 => {
                let builder = AmazonS3Builder::from_env().with_url(url);
                // An endpoint the user spelled with http:// (a local MinIO or test server) is
                // meant to be used as it is, as the AWS CLI does.
                let endpoints: Vec<String> =
                    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT"]
                        .iter()
                        .filter_map(|name| std::env::var(name).ok())
                        .collect();
                let plain_http = endpoints.iter().any(|e| e.starts_with("http://"));
                // Loading the system's root certificates is most of a short pull's start-up,
                // and only TLS needs them: not when every request goes to a plain http://
                // endpoint, signed with keys from the environment (no token service to ask
                // over https).
                let no_tls = plain_http
                    && endpoints.iter().all(|e| e.starts_with("http://"))
                    && (has_all(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
                        || has_any(&["AWS_SKIP_SIGNATURE"]));
                builder
                    .with_client_options(
                        options
                            .with_allow_http(plain_http)
                            .with_no_system_certificates(no_tls),
                    )
                    .with_retry(retry)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            // `with_client_options` replaces the builder's options, whose default for GCS
            // allows plain http: the only http URL it can reach is a base URL the user set
            // (an emulator's `gcs_base_url`, GOOGLE_BASE_URL). Without it, requests to such a
            // URL fail before they are sent ("HTTP error: builder error").
            ObjectStoreScheme::GoogleCloudStorage => GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_client_options(options.with_allow_http(true))
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
            built.map_err(|e| CliError::new(format!("cannot use {url}: {}", explain(&e))))?;
        let credentials_hint = match scheme {
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
        };
        Ok(Remote {
            url: url.to_string(),
            store,
            path,
            credentials_hint,
            timeout,
        })
    }

    /// `step` (a request, a chunk of a download, a part of an upload), or an error naming the
    /// URL if the store makes no progress for the timeout.
    pub async fn within<T>(
        &self,
        doing: &str,
        step: impl Future<Output = T>,
    ) -> Result<T, CliError> {
        tokio::time::timeout(self.timeout, step).await.map_err(|_| {
            CliError::new(format!(
                "cannot {doing} {}: the store made no progress for {} s (--timeout)",
                self.url,
                self.timeout.as_secs()
            ))
        })
    }

    /// A failed request, as one line naming the URL.
    pub fn error(&self, doing: &str, error: &wasmpak::object_store::Error) -> CliError {
        let hint = match self.credentials_hint {
            Some(hint) => format!(" ({hint})"),
            None => String::new(),
        };
        CliError::new(format!(
            "cannot {doing} {}: {}{hint}",
            self.url,
            explain(error)
        ))
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
/// cause (the raw reply of an S3 server is a page of XML), else the whole error.
pub fn explain(error: &wasmpak::object_store::Error) -> String {
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

/// The runtime `push` and `pull` run their requests on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the network runtime: {e}")))
}

/// A runtime on the calling thread alone, for transfers that are one stream of requests.
pub fn current_thread_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the network runtime: {e}")))
}

/// Test hook: with the `fault-injection` feature, a transfer stops after its first part
/// while the file `WASMPAK_PAUSE_FILE` exists, having created `{file}.reached`, so that tests
/// can stop the server, kill the process or replace the object at a known point.
pub async fn pause_point() {
    #[cfg(feature = "fault-injection")]
    if let Some(gate) = std::env::var_os("WASMPAK_PAUSE_FILE") {
        let gate = std::path::PathBuf::from(gate);
        let mut reached = gate.clone().into_os_string();
        reached.push(".reached");
        let _ = std::fs::write(&reached, b"");
        while gate.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

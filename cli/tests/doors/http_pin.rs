//! Prototype of the part of `wasmpak pull http(s)://...` that neither the library nor the rest
//! of the CLI has: a plain URL as an object store, the version a pull pins, and how a server
//! that ignores byte ranges is recognised. Meant to become `remote/http.rs` of the CLI; the
//! pull and delta code then run unchanged on the store it returns.
//!
//! Assumptions, from `object_store` 0.14's `HttpStore` (feature `http`):
//! - GET and HEAD go to the store's base URL with the object path's segments appended, so a
//!   store based at the whole URL (query included: presigned URLs keep their signature) with
//!   an empty path requests exactly that URL.
//! - A 404 (or 405) is `Error::NotFound`; a 412 is `Error::Precondition`; a 200 answering a
//!   `Range` request is `Error::NotSupported` (`HttpStore` checks for 206 itself).
//! - ETag and Last-Modified are both optional: a missing ETag is `None`, a missing
//!   Last-Modified is the Unix epoch. A body cut short is resumed (by a range request asking
//!   for the same ETag) only when there is an ETag.
//! - Nothing else reaches the server: no listing (PROPFIND) is ever sent, since a plain server
//!   would refuse it; a 404 says all there is to say.

//!
//! # The pull it serves (design)
//!
//! - `http://` and `https://` always mean plain GETs, no credentials: a presigned or public
//!   URL of any host (`ObjectStoreScheme::parse` would take some hosts for S3, GCS or Azure;
//!   those are named `s3://`, `gs://`, `az://`). The local file is named after the URL's last
//!   path segment. `push` refuses such URLs.
//! - Full pull: unchanged (`pull.rs`'s `full`): one GET, its answer the pin, streamed into the
//!   temporary file, verified, renamed; the HEAD after the body is compared with
//!   [`same_version`] (ETag, Last-Modified and size, since many servers send no ETag). A body
//!   cut short resumes only from the same ETag, else the pull fails and installs nothing.
//! - Delta pull: HEAD, then range requests built by [`pinned_range`], each answer checked with
//!   [`same_version`]; a 412 or a changed validator is "replaced during the download". When
//!   the first range request [`refuses_ranges`], the object is downloaded whole into the
//!   temporary file, verified, and the entries the local pack lacks are copied from it through
//!   a local batch (as `merge` does), so local entries survive as in a delta; then the copy is
//!   removed.
//! - 404: "no pack at URL" at once (no listing to tell a bucket from an object).
//! - `--key`: the downloaded copy's signatures are checked (`verify_signatures`) before the
//!   rename or the copy; until the delta can fetch and check signature records by range, a
//!   pull with `--key` takes the whole-download path.

#![allow(dead_code)]

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use wasmpak::object_store::http::HttpBuilder;
use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::object_store::{
    ClientOptions, Error, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig,
};

/// The store and path that reach exactly `url` (http:// or https://).
pub fn open(
    url: &str,
    options: ClientOptions,
    retry: RetryConfig,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath), Error> {
    let plain_http = url.starts_with("http://");
    let store = HttpBuilder::new()
        .with_url(url)
        .with_client_options(options.with_allow_http(plain_http))
        .with_retry(retry)
        .build()?;
    Ok((Arc::new(store), ObjectPath::default()))
}

/// The options of a range request pinned to the version `pinned` describes: `If-Match` its
/// ETag, else `If-Unmodified-Since` its Last-Modified. Servers that honour neither still name
/// the version they answered with, which [`same_version`] checks. A weak ETag (`W/"..."`)
/// never satisfies `If-Match` (RFC 9110 compares strongly), so it pins by date instead.
pub fn pinned_range(pinned: &ObjectMeta, range: Range<u64>) -> GetOptions {
    let options = GetOptions::new().with_range(Some(range));
    match &pinned.e_tag {
        Some(tag) if !tag.starts_with("W/") => options.with_if_match(Some(tag.clone())),
        _ if pinned.last_modified.timestamp() > 0 => {
            options.with_if_unmodified_since(Some(pinned.last_modified))
        }
        _ => options,
    }
}

/// Whether `now` (a HEAD's or a GET's answer) is the version `pinned` describes: same ETag,
/// Last-Modified and size. Without an ETag a replacement within the same second and of the
/// same size goes unseen here; the pack's checksums are then the last line.
pub fn same_version(pinned: &ObjectMeta, now: &ObjectMeta) -> bool {
    pinned.e_tag == now.e_tag
        && pinned.last_modified == now.last_modified
        && pinned.size == now.size
}

/// Whether `error` says the server answered a range request with the whole object: the pull
/// then downloads the object whole and takes the missing entries from that copy.
pub fn refuses_ranges(error: &Error) -> bool {
    matches!(error, Error::NotSupported { .. })
}

/// How a server answered a range request.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    Partial,
    Refused,
    Other(String),
}

/// What a server does with the requests a pull makes, as `HttpStore` reports it.
#[derive(Debug)]
pub struct Seen {
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified: i64,
    pub range: RangeAnswer,
    /// A range request with `If-Match` of another ETag (`If-Unmodified-Since` an hour before
    /// the file's time when the server sends no ETag).
    pub wrong_if_match: &'static str,
    /// A GET of a file that does not exist.
    pub missing: &'static str,
}

fn kind(result: Result<(), Error>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(Error::NotFound { .. }) => "not found",
        Err(Error::Precondition { .. }) => "precondition",
        Err(Error::NotModified { .. }) => "not modified",
        Err(Error::NotSupported { .. }) => "not supported",
        Err(_) => "other",
    }
}

/// Probes `url` with the requests a pull makes.
pub async fn probe(url: &str) -> Seen {
    let options = ClientOptions::new().with_timeout(Duration::from_secs(30));
    let (store, path) = open(url, options.clone(), RetryConfig::default()).unwrap();
    let meta = store.head(&path).await.unwrap();
    let range = match store.get_opts(&path, pinned_range(&meta, 10..20)).await {
        Ok(result) => {
            assert!(
                same_version(&meta, &result.meta),
                "{meta:?} {:?}",
                result.meta
            );
            assert_eq!(result.bytes().await.unwrap().len(), 10);
            RangeAnswer::Partial
        }
        Err(e) if refuses_ranges(&e) => RangeAnswer::Refused,
        Err(e) => RangeAnswer::Other(e.to_string()),
    };
    let mut stale = meta.clone();
    stale.e_tag = meta.e_tag.as_ref().map(|_| "\"another\"".to_string());
    stale.last_modified = meta.last_modified - Duration::from_secs(3600);
    let wrong = store
        .get_opts(&path, pinned_range(&stale, 0..10))
        .await
        .map(drop);
    let (missing_store, missing_path) =
        open(&format!("{url}.missing"), options, RetryConfig::default()).unwrap();
    let missing = missing_store.get(&missing_path).await.map(drop);
    Seen {
        size: meta.size,
        e_tag: meta.e_tag.clone(),
        last_modified: meta.last_modified.timestamp(),
        range,
        wrong_if_match: kind(wrong),
        missing: kind(missing),
    }
}

//! A remote object pinned at one version (ETag), and what a pull reads from it first: its
//! metadata and its superblock. Shared by the full download and the delta pull.

use wasmpak::PackIdentity;
use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::format::superblock::HeaderError;
use wasmpak::object_store::{GetOptions, ObjectMeta, ObjectStoreExt};

use crate::error::CliError;
use crate::remote::store::Remote;

/// A remote object at the version a pull started with.
pub struct Source<'a> {
    /// The object, as its URL named it.
    pub remote: &'a Remote,
    /// Its size and version (ETag) when the pull started.
    pub meta: ObjectMeta,
}

impl Source<'_> {
    /// The bytes `range` of the object, as of the version the pull started with.
    pub async fn range(&self, range: std::ops::Range<u64>) -> Result<bytes::Bytes, CliError> {
        let options = GetOptions::new()
            .with_range(Some(range.clone()))
            .with_if_match(self.meta.e_tag.clone());
        let request = async {
            self.remote
                .store()
                .get_opts(self.remote.path(), options)
                .await?
                .bytes()
                .await
        };
        let bytes = self
            .remote
            .within("download", request)
            .await?
            .map_err(|e| self.failed(&e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(CliError::failed(format!(
                "cannot download {}: asked for bytes {range:?}, got {}",
                self.remote.url(),
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The object changed since the pull started.
    pub fn replaced(&self) -> CliError {
        CliError::failed(format!(
            "the object at {} was replaced during the download (its ETag is no longer {}); \
             nothing was installed, pull again",
            self.remote.url(),
            self.meta.e_tag.as_deref().unwrap_or("the one it had")
        ))
    }

    /// A failed request; a changed object is named as such.
    pub fn failed(&self, error: &wasmpak::object_store::Error) -> CliError {
        use wasmpak::object_store::Error;
        match error {
            Error::Precondition { .. } | Error::NotModified { .. } => self.replaced(),
            Error::NotFound { .. } => CliError::failed(format!(
                "the object at {} was deleted during the download; nothing was installed",
                self.remote.url()
            )),
            other => self.remote.error("download", other),
        }
    }
}

/// Decodes the superblock at the start of `bytes` of the object `source`.
pub fn decode(
    bytes: &[u8],
    source: &Source<'_>,
) -> Result<(snapshot::Superblock, PackIdentity), CliError> {
    let url = source.remote.url();
    let size = source.meta.size;
    let superblock = &bytes[..bytes.len().min(SUPERBLOCK_LEN as usize)];
    // A pack file falls back to its previous commit when its latest one does not fit (a
    // crash mid-append); an object is whole or damaged: one cut short is refused, not
    // installed as an older version of itself.
    if let Ok(latest) = snapshot::decode_superblock(superblock, u64::MAX)
        && latest.commit.committed_len > size
    {
        return Err(CliError::failed(format!(
            "pack {url} is truncated: its latest commit ends at byte {}, the object at byte \
             {size}; nothing was installed",
            latest.commit.committed_len
        )));
    }
    let decoded = snapshot::decode_superblock(superblock, size)
        .map_err(|e| CliError::failed(header_problem(url, &e)))?;
    let identity = PackIdentity::decode(&decoded.identity)
        .map_err(|e| CliError::failed(format!("pack {url} is corrupt: its identity: {e}")))?;
    Ok((decoded, identity))
}

/// The object's size and version.
pub async fn head(remote: &Remote) -> Result<ObjectMeta, CliError> {
    match remote
        .within("read", remote.store().head(remote.path()))
        .await?
    {
        Ok(meta) => Ok(meta),
        Err(e) => Err(request_error(remote, e).await),
    }
}

/// A failed first request, as one line; a missing object is told apart from a missing bucket.
pub async fn request_error(remote: &Remote, error: wasmpak::object_store::Error) -> CliError {
    if !matches!(error, wasmpak::object_store::Error::NotFound { .. }) {
        return remote.error("read", &error);
    }
    // S3 answers a request in a missing bucket with a bare 404: a listing says which.
    let prefix = remote.path().parent().unwrap_or_default();
    match remote
        .within("read", remote.store().list_with_delimiter(Some(&prefix)))
        .await
    {
        Err(timeout) => timeout,
        Ok(Err(e)) => remote.error("read", &e),
        Ok(Ok(_)) => CliError::failed(format!(
            "no pack at {}: the object does not exist",
            remote.url()
        )),
    }
}

/// Why a superblock is unusable, naming the pack or URL it came from.
pub fn header_problem(what: &str, error: &HeaderError) -> String {
    match error {
        HeaderError::NotAPack(why) => format!("{what} is not a wasmpak pack: {why}"),
        HeaderError::UnsupportedVersion(version) => format!(
            "{what} uses pack format version {version}, this wasmpak reads version {}",
            wasmpak::format::superblock::FORMAT_VERSION
        ),
        HeaderError::Corrupt(why) => format!("pack {what} is corrupt: {why}"),
    }
}

//! `wasmpak pull`: install a pack from an object store into a directory, for `PackCache` or
//! `Pack::open` to use.
//!
//! A reader never sees half a download: the pack is written to a temporary file beside its
//! destination, synced, verified whole (every checksum; signatures are checked by `install
//! --key`, which a signed pack goes through after the pull), and only then renamed into place. A full pull is one GET, whose answer names the
//! version (ETag) the pull holds to: `object_store` resumes a broken body only from that
//! version, and a HEAD asked as soon as the body has arrived (answered while the file is
//! synced and verified) reports an object replaced during the download instead of installing
//! it. A delta pull's range requests all ask for the version its first HEAD saw (`If-Match`).
//! An object shorter than its latest commit is refused, not installed as an older commit. A
//! pull killed midway leaves only its temporary file, which the next pull into the directory
//! removes.
//!
//! A full pull costs what its bytes cost to arrive or to reach the disk, whichever is slower,
//! plus about one round trip: the writes run on a thread of their own as the body streams in,
//! their writeback starts every few MiB, and the sync, the verification and the last HEAD run
//! at once. `--json` reports where the time went (`phases`).
//!
//! Into a directory that already holds a pack of that name and identity, `pull` fetches only
//! the entries the local pack lacks (see `delta.rs`) and appends them through the pack's own
//! commits, so processes using the pack meanwhile keep working.
//!
//! The temporary file of a full pull, and how it is written, is `download.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::object_store::{GetOptions, ObjectMeta, ObjectStoreExt};
use wasmpak::{ErrorKind, Pack, PackIdentity};

use crate::delta;
use crate::download::Download;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::push::header_problem;
use crate::remote::{self, Remote};

/// Arguments of `wasmpak pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to download: s3://BUCKET/PATH/NAME.wpk, gs://..., az://..., file:///PATH
    pub url: String,
    /// The directory to install it in, under the object's file name (created if missing)
    pub dir: PathBuf,
    /// Replace a local pack of that name with the download, instead of fetching only the
    /// entries it lacks (needed when the local file is another identity or not a pack)
    #[arg(long)]
    pub replace: bool,
    /// Give up when the store makes no progress for this many seconds
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Print a JSON summary (exact byte counts) instead of a line of text
    #[arg(long)]
    pub json: bool,
}

/// What a pull did, for the summary line and `--json`.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// The URL pulled.
    pub url: String,
    /// The local pack.
    pub path: PathBuf,
    /// `full`, `delta` or `up-to-date`.
    pub mode: &'static str,
    /// Entries in the remote pack.
    pub remote_entries: u64,
    /// Entries written locally.
    pub entries_added: u64,
    /// Bytes received from the store.
    pub bytes_downloaded: u64,
    /// The remote object's size.
    pub object_bytes: u64,
    /// Requests made to the store.
    pub requests: u64,
    /// Wall-clock time, nanoseconds.
    pub nanos: u64,
    /// Where that time went, nanoseconds per step (zero for steps a pull did not take).
    pub phases: Phases,
}

/// Where a pull's time went, in nanoseconds: for `--json`, and for the benchmark that holds
/// a pull to the speed of a bare GET.
#[derive(Debug, Default, serde::Serialize)]
pub struct Phases {
    /// Building the store's client and the runtime.
    pub connect: u64,
    /// Requests until the object's first byte (HEAD, GET up to its response headers).
    pub request: u64,
    /// Receiving and writing the body.
    pub download: u64,
    /// Waiting for the check of the object's ETag, asked when the body had arrived (it runs
    /// while the last bytes are written, the file synced and verified).
    pub check: u64,
    /// Making the file durable before it is installed (at the same time as `verify`).
    pub sync: u64,
    /// Checking every checksum (at the same time as `sync`).
    pub verify: u64,
    /// Renaming into place and syncing the directory.
    pub install: u64,
}

/// Nanoseconds since `*mark`, which moves to now.
fn lap(mark: &mut Instant) -> u64 {
    let now = Instant::now();
    let nanos = now.duration_since(*mark).as_nanos() as u64;
    *mark = now;
    nanos
}

/// A remote object at the version a pull started with.
pub struct Source<'a> {
    pub remote: &'a Remote,
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
                .store
                .get_opts(&self.remote.path, options)
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
            return Err(CliError::new(format!(
                "cannot download {}: asked for bytes {range:?}, got {}",
                self.remote.url,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The object changed since the pull started.
    pub fn replaced(&self) -> CliError {
        CliError::new(format!(
            "the object at {} was replaced during the download (its ETag is no longer {}); \
             nothing was installed, pull again",
            self.remote.url,
            self.meta.e_tag.as_deref().unwrap_or("the one it had")
        ))
    }

    /// A failed request; a changed object is named as such.
    pub fn failed(&self, error: &wasmpak::object_store::Error) -> CliError {
        use wasmpak::object_store::Error;
        match error {
            Error::Precondition { .. } | Error::NotModified { .. } => self.replaced(),
            Error::NotFound { .. } => CliError::new(format!(
                "the object at {} was deleted during the download; nothing was installed",
                self.remote.url
            )),
            other => self.remote.error("download", other),
        }
    }
}

/// Runs `wasmpak pull`.
pub fn run(args: Args) -> Result<(), CliError> {
    let started = Instant::now();
    let remote = Remote::open(&args.url, None, Duration::from_secs(args.timeout.max(1)))?;
    let name = remote
        .path
        .filename()
        .filter(|name| !name.starts_with('.'))
        .ok_or_else(|| CliError::usage(format!("URL {} does not name a pack file", remote.url)))?
        .to_string();
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        CliError::new(format!(
            "cannot create directory {}: {e}",
            args.dir.display()
        ))
    })?;
    let dest = args.dir.join(&name);
    // One thread: the download is one connection, and the disk has threads of its own.
    let runtime = remote::current_thread_runtime()?;
    let connect = started.elapsed().as_nanos() as u64;
    let mut summary = runtime.block_on(pull(&remote, &dest, args.replace))?;
    summary.phases.connect = connect;
    summary.nanos = started.elapsed().as_nanos() as u64;
    if args.json {
        return output::print_json(&summary);
    }
    let what = match summary.mode {
        "up-to-date" => "already up to date".to_string(),
        "delta" => format!(
            "added {} of {} remote entries",
            summary.entries_added, summary.remote_entries
        ),
        _ => output::count(summary.entries_added, "entry", "entries"),
    };
    say!(
        "pulled {} into {}: {what}, {} downloaded ({} requests) in {}",
        summary.url,
        summary.path.display(),
        output::bytes(summary.bytes_downloaded),
        summary.requests,
        output::duration(started.elapsed())
    )
}

async fn pull(remote: &Remote, dest: &Path, replace: bool) -> Result<Summary, CliError> {
    let mut summary = Summary {
        url: remote.url.clone(),
        path: dest.to_path_buf(),
        mode: "full",
        remote_entries: 0,
        entries_added: 0,
        bytes_downloaded: 0,
        object_bytes: 0,
        requests: 0,
        nanos: 0,
        phases: Phases::default(),
    };
    let local = match open::options().open_any(dest) {
        _ if replace => None,
        Ok(local) => Some(Ok(local)),
        Err(e) if e.kind() == ErrorKind::NotFound && !dest.exists() => None,
        Err(e) => Some(Err(e)),
    };
    let Some(local) = local else {
        full(remote, dest, &mut summary).await?;
        return Ok(summary);
    };
    let mut mark = Instant::now();
    // The remote object comes first: a missing one is the error to report.
    let meta = head(remote).await?;
    let local = local.map_err(|e| {
        CliError::new(format!(
            "{e}; nothing was changed (pass --replace to overwrite it with the download)"
        ))
    })?;
    let source = Source { remote, meta };
    let size = source.meta.size;
    summary.object_bytes = size;
    // Only the superblock says whether a delta is possible: read it alone first.
    let superblock = source.range(0..size.min(SUPERBLOCK_LEN)).await?;
    summary.bytes_downloaded += superblock.len() as u64;
    summary.requests += 2;
    summary.phases.request = lap(&mut mark);
    let (decoded, identity) = decode(&superblock, &source)?;
    if *local.identity() != identity {
        return Err(CliError::new(format!(
            "pack {} was built for {}, but {} holds a pack for {identity}; nothing was \
             changed (pull into another directory, or pass --replace)",
            dest.display(),
            local.identity(),
            remote.url
        )));
    }
    delta::pull(&source, &decoded.commit, &local, &mut summary).await?;
    summary.phases.download = lap(&mut mark);
    Ok(summary)
}

/// Downloads the whole object in one GET, whose answer names the version (ETag) and size the
/// pull pins, then syncs and verifies the file while a HEAD checks that the object was not
/// replaced meanwhile; installs it only if both succeed.
async fn full(remote: &Remote, dest: &Path, summary: &mut Summary) -> Result<(), CliError> {
    let mut mark = Instant::now();
    let response = match remote
        .within("read", remote.store.get(&remote.path))
        .await?
    {
        Ok(response) => response,
        Err(e) => return Err(request_error(remote, e).await),
    };
    let source = Source {
        remote,
        meta: response.meta.clone(),
    };
    summary.object_bytes = source.meta.size;
    summary.requests = 2;
    let download = Arc::new(Download::create(dest)?);
    summary.phases.request = lap(&mut mark);
    let (identity, check) = download.stream(&source, response.into_stream()).await?;
    summary.bytes_downloaded = source.meta.size;
    summary.phases.download = lap(&mut mark);
    let verifying = {
        let (download, url) = (download.clone(), remote.url.clone());
        tokio::task::spawn_blocking(move || {
            let mut phases = Phases::default();
            let verified = download.sync_and_verify(&url, &identity, &mut phases);
            (verified, phases)
        })
    };
    // One GET is one version of the object; the ETag's last check, asked when the body had
    // arrived, still catches a store that mixes two uploads in one body, or an upload that
    // landed as the last bytes arrived.
    let now = check
        .await
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", remote.url)))?;
    summary.phases.check = lap(&mut mark);
    let (verified, phases) = verifying
        .await
        .map_err(|e| CliError::new(format!("cannot verify the pack from {}: {e}", remote.url)))?;
    (summary.phases.sync, summary.phases.verify) = (phases.sync, phases.verify);
    let now = now?;
    if now.e_tag != source.meta.e_tag || now.size != source.meta.size {
        return Err(source.replaced());
    }
    let entries = verified?;
    mark = Instant::now();
    download.install()?;
    summary.phases.install = lap(&mut mark);
    summary.entries_added = entries;
    summary.remote_entries = entries;
    Ok(())
}

/// Decodes the superblock at the start of `bytes` of the object `source`.
pub fn decode(
    bytes: &[u8],
    source: &Source<'_>,
) -> Result<(snapshot::Superblock, PackIdentity), CliError> {
    let url = &source.remote.url;
    let size = source.meta.size;
    let superblock = &bytes[..bytes.len().min(SUPERBLOCK_LEN as usize)];
    // A pack file falls back to its previous commit when its latest one does not fit (a
    // crash mid-append); an object is whole or damaged: one cut short is refused, not
    // installed as an older version of itself.
    if let Ok(latest) = snapshot::decode_superblock(superblock, u64::MAX)
        && latest.commit.committed_len > size
    {
        return Err(CliError::new(format!(
            "pack {url} is truncated: its latest commit ends at byte {}, the object at byte \
             {size}; nothing was installed",
            latest.commit.committed_len
        )));
    }
    let decoded = snapshot::decode_superblock(superblock, size)
        .map_err(|e| CliError::new(header_problem(url, &e)))?;
    let identity = PackIdentity::decode(&decoded.identity)
        .map_err(|e| CliError::new(format!("pack {url} is corrupt: its identity: {e}")))?;
    Ok((decoded, identity))
}

/// The object's size and version.
pub async fn head(remote: &Remote) -> Result<ObjectMeta, CliError> {
    match remote
        .within("read", remote.store.head(&remote.path))
        .await?
    {
        Ok(meta) => Ok(meta),
        Err(e) => Err(request_error(remote, e).await),
    }
}

/// A failed first request, as one line; a missing object is told apart from a missing bucket.
async fn request_error(remote: &Remote, error: wasmpak::object_store::Error) -> CliError {
    if !matches!(error, wasmpak::object_store::Error::NotFound { .. }) {
        return remote.error("read", &error);
    }
    // S3 answers a request in a missing bucket with a bare 404: a listing says which.
    let prefix = remote.path.parent().unwrap_or_default();
    match remote
        .within("read", remote.store.list_with_delimiter(Some(&prefix)))
        .await
    {
        Err(timeout) => timeout,
        Ok(Err(e)) => remote.error("read", &e),
        Ok(Ok(_)) => CliError::new(format!(
            "no pack at {}: the object does not exist",
            remote.url
        )),
    }
}

/// `pack` opened and checked to be usable as a delta target: shared for `delta.rs`.
pub fn local_error(pack: &Pack, e: wasmpak::Error) -> CliError {
    CliError::new(format!("cannot update pack {}: {e}", pack.path().display()))
}

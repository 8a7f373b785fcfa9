//! `wasmpak pull`: install a pack from an object store into a directory, for `PackCache` or
//! `Pack::open` to use.
//!
//! A reader never sees half a download: the pack is written to a temporary file beside its
//! destination, synced, verified whole (every checksum, and the signature once packs carry
//! one), and only then renamed into place. Every request asks for the version of the object
//! the pull started with (`If-Match` its ETag), so an object replaced during the download is
//! detected and reported, never mixed with the old one (and a last look at the ETag after the
//! download catches a store that ignores the condition). A pull killed midway leaves only its
//! temporary file, which the next pull into the directory removes.
//!
//! Into a directory that already holds a pack of that name and identity, `pull` fetches only
//! the entries the local pack lacks (see `delta.rs`) and appends them through the pack's own
//! commits, so processes using the pack meanwhile keep working.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::object_store::{GetOptions, ObjectMeta, ObjectStoreExt};
use wasmpak::{ErrorKind, Pack, PackIdentity};

use crate::delta;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::push::header_problem;
use crate::remote::{self, Remote};

/// Downloaded bytes are written to the file in pieces of this size.
const WRITE_BUFFER: usize = 1 << 20;
/// After this many bytes written, a sync starts in the background, so that the sync before
/// the rename finds little left to write and the disk works while the network does.
const SYNC_EVERY: u64 = 32 << 20;

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
    /// Range requests made.
    pub requests: u64,
    /// Wall-clock time, nanoseconds.
    pub nanos: u64,
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
    let runtime = remote::runtime()?;
    let mut summary = runtime.block_on(pull(&remote, &dest, args.replace))?;
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
    let meta = head(remote).await?;
    let source = Source { remote, meta };
    let size = source.meta.size;
    let mut summary = Summary {
        url: remote.url.clone(),
        path: dest.to_path_buf(),
        mode: "full",
        remote_entries: 0,
        entries_added: 0,
        bytes_downloaded: 0,
        object_bytes: size,
        requests: 1,
        nanos: 0,
    };
    let local = match open::options().open_any(dest) {
        _ if replace => None,
        Ok(local) => Some(local),
        Err(e) if e.kind() == ErrorKind::NotFound && !dest.exists() => None,
        Err(e) => {
            return Err(CliError::new(format!(
                "{e}; nothing was changed (pass --replace to overwrite it with the download)"
            )));
        }
    };
    if let Some(local) = local {
        // Only the superblock says whether a delta is possible: read it alone first.
        let superblock = source.range(0..size.min(SUPERBLOCK_LEN)).await?;
        summary.bytes_downloaded += superblock.len() as u64;
        summary.requests += 1;
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
        return Ok(summary);
    }
    let download = Download::create(dest)?;
    summary.requests += 2;
    let identity = download.stream(&source).await?;
    // The download asked for the version the pull started with; asking once more catches a
    // store that ignores the condition, or an upload that landed as the last bytes arrived.
    let now = head(remote).await?;
    if now.e_tag != source.meta.e_tag || now.size != size {
        return Err(source.replaced());
    }
    summary.bytes_downloaded += size;
    summary.entries_added = download.verify_and_install(&remote.url, &identity)?;
    summary.remote_entries = summary.entries_added;
    Ok(summary)
}

/// Decodes the superblock at the start of `bytes` of the object `source`.
fn decode(
    bytes: &[u8],
    source: &Source<'_>,
) -> Result<(snapshot::Superblock, PackIdentity), CliError> {
    let url = &source.remote.url;
    let superblock = &bytes[..bytes.len().min(SUPERBLOCK_LEN as usize)];
    let decoded = snapshot::decode_superblock(superblock, source.meta.size)
        .map_err(|e| CliError::new(header_problem(url, &e)))?;
    let identity = PackIdentity::decode(&decoded.identity)
        .map_err(|e| CliError::new(format!("pack {url} is corrupt: its identity: {e}")))?;
    Ok((decoded, identity))
}

/// The object's size and version; a missing object is told apart from a missing bucket.
async fn head(remote: &Remote) -> Result<ObjectMeta, CliError> {
    match remote
        .within("read", remote.store.head(&remote.path))
        .await?
    {
        Ok(meta) => Ok(meta),
        Err(wasmpak::object_store::Error::NotFound { .. }) => {
            // S3 answers a HEAD in a missing bucket with a bare 404: a listing says which.
            let prefix = remote.path.parent().unwrap_or_default();
            match remote
                .within("read", remote.store.list_with_delimiter(Some(&prefix)))
                .await?
            {
                Err(e) => Err(remote.error("read", &e)),
                Ok(_) => Err(CliError::new(format!(
                    "no pack at {}: the object does not exist",
                    remote.url
                ))),
            }
        }
        Err(e) => Err(remote.error("read", &e)),
    }
}

/// A download in progress: a temporary file beside the destination, locked while in use,
/// removed unless installed.
struct Download {
    file: Arc<File>,
    temp: PathBuf,
    dest: PathBuf,
}

impl Download {
    /// Creates the temporary file, first removing those of pulls that died (unlocked).
    fn create(dest: &Path) -> Result<Download, CliError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!(".{name}.pull-");
        remove_abandoned(dir, &prefix);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let temp = dir.join(format!("{prefix}{}-{nanos}.tmp", std::process::id()));
        let error =
            |e: std::io::Error| CliError::new(format!("cannot write in {}: {e}", dir.display()));
        // The mode a pack is created with (umask applies), not a temporary file's 0600.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temp)
            .map_err(error)?;
        let download = Download {
            file: Arc::new(file),
            temp,
            dest: dest.to_path_buf(),
        };
        download.file.lock().map_err(error)?;
        Ok(download)
    }

    /// Streams the whole object into the file in one request (a plain GET is what stores
    /// serve fastest), checking first that it starts with a pack's superblock, whose identity
    /// it returns.
    async fn stream(&self, source: &Source<'_>) -> Result<PackIdentity, CliError> {
        let options = GetOptions::new().with_if_match(source.meta.e_tag.clone());
        let remote = source.remote;
        let response = remote
            .within("download", remote.store.get_opts(&remote.path, options))
            .await?
            .map_err(|e| source.failed(&e))?;
        let mut body = response.into_stream();
        let mut offset = 0;
        let mut identity = None;
        let mut buffer = Vec::with_capacity(WRITE_BUFFER);
        let mut synced_to = offset;
        let mut syncing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
        while let Some(chunk) = remote.within("download", body.next()).await? {
            let chunk = chunk.map_err(|e| source.failed(&e))?;
            buffer.extend_from_slice(&chunk);
            if buffer.len() >= WRITE_BUFFER {
                if identity.is_none() {
                    identity = Some(decode(&buffer, source)?.1);
                    remote::pause_point().await;
                }
                self.write_at(&buffer, offset)?;
                offset += buffer.len() as u64;
                buffer.clear();
                if offset - synced_to >= SYNC_EVERY
                    && syncing.as_ref().is_none_or(|s| s.is_finished())
                {
                    let file = self.file.clone();
                    syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
                    synced_to = offset;
                }
            }
        }
        if let Some(sync) = syncing {
            // Its outcome does not matter: the sync before the rename is the one relied on.
            let _ = sync.await;
        }
        let identity = match identity {
            Some(identity) => identity,
            None => decode(&buffer, source)?.1,
        };
        self.write_at(&buffer, offset)?;
        offset += buffer.len() as u64;
        if offset != source.meta.size {
            return Err(CliError::new(format!(
                "cannot download {}: the object ended at byte {offset}, expected {}",
                source.remote.url, source.meta.size
            )));
        }
        Ok(identity)
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), CliError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", self.temp.display())))
    }

    /// Syncs, verifies the whole pack, and renames it into place. Returns its entry count.
    fn verify_and_install(&self, url: &str, identity: &PackIdentity) -> Result<u64, CliError> {
        let shown = self.temp.display();
        self.file
            .sync_data()
            .map_err(|e| CliError::new(format!("cannot write {shown}: {e}")))?;
        // Signed packs: the trusted keys travel in `open::options()` (like every other
        // command's), so opening and verifying here is where a signature gets checked.
        let pack = open::options().open(&self.temp, identity).map_err(|e| {
            CliError::new(format!("the pack downloaded from {url} is unusable: {e}"))
        })?;
        let report = pack.verify()?;
        if let Some(problem) = report.problems().first() {
            return Err(CliError::new(format!(
                "the pack downloaded from {url} is damaged: {problem} (and {} more); nothing \
                 was installed",
                report.problems().len() - 1
            )));
        }
        drop(pack);
        std::fs::rename(&self.temp, &self.dest)
            .map_err(|e| CliError::new(format!("cannot install {}: {e}", self.dest.display())))?;
        let dir = self.dest.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CliError::new(format!("cannot sync {}: {e}", dir.display())))?;
        Ok(report.entries())
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        // After a successful rename the temporary name is gone; otherwise this cleans up.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Removes temporary files of earlier pulls of the same pack whose process is gone: a live
/// pull holds its file's lock.
fn remove_abandoned(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(".tmp")) {
            continue;
        }
        if let Ok(file) = File::open(entry.path())
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `pack` opened and checked to be usable as a delta target: shared for `delta.rs`.
pub fn local_error(pack: &Pack, e: wasmpak::Error) -> CliError {
    CliError::new(format!("cannot update pack {}: {e}", pack.path().display()))
}

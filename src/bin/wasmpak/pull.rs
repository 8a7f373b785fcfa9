//! `wasmpak pull`: install a pack from an object store into a directory, for `PackCache` or
//! `Pack::open` to use.
//!
//! A reader never sees half a download: the pack is written to a temporary file beside its
//! destination, synced, verified whole (every checksum, and the signature once packs carry
//! one), and only then renamed into place. A full pull is one GET, whose answer names the
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

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::object_store::{GetOptions, ObjectMeta, ObjectStoreExt};
use wasmpak::{ErrorKind, Pack, PackIdentity};

use crate::delta;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::push::header_problem;
use crate::remote::{self, Remote};

/// Downloaded bytes are written to the file in pieces of about this size...
const WRITE_BUFFER: usize = 1 << 20;
/// ... or of this many chunks, however small they are.
const MAX_CHUNKS: usize = 1024;
/// The writeback of written bytes starts in pieces of this size: fewer, larger writes than
/// one per batch (measured faster on the fleet benchmark's 16 MiB pull), early enough that
/// the sync before the rename finds little left to do.
const WRITEBACK_EVERY: u64 = 4 << 20;
/// Batches received but not yet written: what the download may run ahead of the disk.
const BATCHES_IN_FLIGHT: usize = 8;

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
    /// Checking every checksum, and the signature if keys are given (at the same time as
    /// `sync`).
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
fn decode(
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
async fn head(remote: &Remote) -> Result<ObjectMeta, CliError> {
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

/// The check of the object's ETag after its body arrived: its metadata then.
type Check = tokio::task::JoinHandle<Result<ObjectMeta, CliError>>;

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

    /// Writes the body of the GET into the file as it arrives, checking first that it starts
    /// with a pack's superblock, whose identity it returns. Chunks go to the file as received
    /// (no copy into a buffer of ours) on a thread of their own, so that receiving never waits
    /// for the disk, and their writeback starts at once, so that the sync before the rename
    /// finds little left to do.
    async fn stream(
        &self,
        source: &Source<'_>,
        mut body: BoxStream<'static, wasmpak::object_store::Result<Bytes>>,
    ) -> Result<(PackIdentity, Check), CliError> {
        let remote = source.remote;
        let (batches, received) = tokio::sync::mpsc::channel::<Pending>(BATCHES_IN_FLIGHT);
        let writer = {
            let file = self.file.clone();
            tokio::task::spawn_blocking(move || write_batches(&file, received))
        };
        let mut identity = None;
        let mut pending = Pending::default();
        let mut received_len = 0;
        let mut outcome = Ok(());
        while let Some(chunk) = remote.within("download", body.next()).await? {
            let chunk = chunk.map_err(|e| source.failed(&e))?;
            received_len += chunk.len() as u64;
            pending.push(chunk);
            let full = pending.len >= WRITE_BUFFER || pending.chunks.len() >= MAX_CHUNKS;
            if !full || (identity.is_none() && pending.len < WRITE_BUFFER) {
                continue;
            }
            if identity.is_none() {
                identity = Some(decode(&pending.prefix(SUPERBLOCK_LEN), source)?.1);
                remote::pause_point().await;
            }
            if batches.send(std::mem::take(&mut pending)).await.is_err() {
                outcome = Err(()); // the writer failed: its error is below
                break;
            }
        }
        let identity = match (outcome, identity) {
            (Err(()), _) => None,
            (Ok(()), Some(identity)) => Some(identity),
            (Ok(()), None) => Some(decode(&pending.prefix(SUPERBLOCK_LEN), source)?.1),
        };
        if identity.is_some() {
            let _ = batches.send(pending).await;
        }
        drop(batches);
        // The whole body is here: ask whether the object is still the version the GET
        // served while the writer catches up, the file is synced and verified.
        let check = {
            let remote = remote.clone();
            tokio::spawn(async move { head(&remote).await })
        };
        let shown = self.temp.display();
        writer
            .await
            .map_err(|e| CliError::new(format!("cannot write {shown}: {e}")))?
            .map_err(|e| CliError::new(format!("cannot write {shown}: {e}")))?;
        let Some(identity) = identity else {
            // Unreachable: the writer stops early only with an error, returned above.
            return Err(CliError::new(format!(
                "cannot write {shown}: the writer stopped"
            )));
        };
        if received_len != source.meta.size {
            return Err(CliError::new(format!(
                "cannot download {}: the object ended at byte {received_len}, expected {}",
                source.remote.url, source.meta.size
            )));
        }
        Ok((identity, check))
    }

    /// Syncs the file and, meanwhile, verifies the whole pack: the verification reads what
    /// the file holds, which the sync does not change. Returns the pack's entry count.
    fn sync_and_verify(
        &self,
        url: &str,
        identity: &PackIdentity,
        phases: &mut Phases,
    ) -> Result<u64, CliError> {
        let (synced, verified) = std::thread::scope(|scope| {
            let sync = scope.spawn(|| {
                let started = Instant::now();
                (self.file.sync_data(), started.elapsed())
            });
            let started = Instant::now();
            let verified = self.verify(url, identity);
            phases.verify = started.elapsed().as_nanos() as u64;
            (sync.join(), verified)
        });
        let (synced, took) = synced.map_err(|_| {
            CliError::new(format!(
                "cannot write {}: the sync failed",
                self.temp.display()
            ))
        })?;
        phases.sync = took.as_nanos() as u64;
        synced.map_err(|e| CliError::new(format!("cannot write {}: {e}", self.temp.display())))?;
        verified
    }

    /// Checks every checksum of the downloaded pack (and its signature when keys are
    /// configured). Returns its entry count.
    fn verify(&self, url: &str, identity: &PackIdentity) -> Result<u64, CliError> {
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
        Ok(report.entries())
    }

    /// Renames the synced, verified file into place and makes the rename durable.
    fn install(&self) -> Result<(), CliError> {
        std::fs::rename(&self.temp, &self.dest)
            .map_err(|e| CliError::new(format!("cannot install {}: {e}", self.dest.display())))?;
        let dir = self.dest.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CliError::new(format!("cannot sync {}: {e}", dir.display())))
    }
}

/// Received chunks not yet written.
#[derive(Default)]
struct Pending {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Pending {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push(chunk);
    }

    /// The first `len` bytes (fewer if fewer are pending), contiguous.
    fn prefix(&self, len: u64) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(len as usize);
        for chunk in &self.chunks {
            let room = len as usize - prefix.len();
            prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        prefix
    }
}

/// Appends the batches `received` to `file` until the sender is done, starting the
/// writeback every [`WRITEBACK_EVERY`] bytes.
fn write_batches(
    file: &File,
    mut received: tokio::sync::mpsc::Receiver<Pending>,
) -> std::io::Result<()> {
    let mut written = 0;
    let mut synced_to = 0;
    while let Some(batch) = received.blocking_recv() {
        let mut slices: Vec<IoSlice<'_>> = batch.chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match (&*file).write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        written += batch.len as u64;
        if written - synced_to >= WRITEBACK_EVERY
            && start_writeback(file, synced_to, written - synced_to)
        {
            synced_to = written;
        }
    }
    Ok(())
}

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting for them where
/// the system allows: a head start for the sync before the rename, which is the one relied
/// on. Returns whether it started (else the range is left for a later call).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // One system call std does not offer; its contract is below.
fn start_writeback(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return true;
    };
    // SAFETY: `sync_file_range` takes no pointers, only a descriptor, which stays open for
    // the call because `file` is borrowed; its result is ignored because nothing relies on it.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
    true
}

/// Elsewhere a plain sync does it, once enough has piled up (it waits, but only on the
/// writer's thread, while the download goes on).
#[cfg(not(target_os = "linux"))]
fn start_writeback(file: &File, _offset: u64, len: u64) -> bool {
    const SYNC_EVERY: u64 = 32 << 20;
    len >= SYNC_EVERY && file.sync_data().is_ok()
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

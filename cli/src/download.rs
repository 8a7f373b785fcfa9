//! The temporary file a full `wasmpak pull` downloads into: created beside the destination
//! and locked, written as the body streams in (on a thread of its own, the writeback started
//! every few MiB), synced while the whole pack is verified, renamed into place, and removed
//! if anything fails. A pull that dies leaves the file unlocked; the next pull removes it.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use wasmpak::PackIdentity;
use wasmpak::format::snapshot::SUPERBLOCK_LEN;
use wasmpak::object_store::ObjectMeta;

use crate::error::CliError;
use crate::open;
use crate::pull::{Phases, Source, decode, head};
use crate::remote;

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

/// The check of the object's ETag after its body arrived: its metadata then.
pub type Check = tokio::task::JoinHandle<Result<ObjectMeta, CliError>>;

/// A download in progress: a temporary file beside the destination, locked while in use,
/// removed unless installed.
pub struct Download {
    file: Arc<File>,
    temp: PathBuf,
    dest: PathBuf,
}

impl Download {
    /// Creates the temporary file, first removing those of pulls that died (unlocked).
    pub fn create(dest: &Path) -> Result<Download, CliError> {
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
    pub async fn stream(
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
    pub fn sync_and_verify(
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
    pub fn install(&self) -> Result<(), CliError> {
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

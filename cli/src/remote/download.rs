//! A full `wasmpak pull`: the object streamed into a temporary file beside the destination
//! (the library's `wasmpak::fs::TempFile`: locked, removed if anything fails, swept by the
//! next pull if the process dies), written as the body arrives (on a thread of its own, the
//! writeback started every few MiB), synced while the whole pack is verified, then put in
//! place.

use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use wasmpak::format::snapshot::SUPERBLOCK_LEN;
use wasmpak::fs::{FileMode, TempFile};
use wasmpak::object_store::ObjectMeta;
use wasmpak::{PackIdentity, PackOptions};

use crate::error::CliError;
use crate::remote::report::Phases;
use crate::remote::runtime;
use crate::remote::source::{Source, decode, head};
use crate::remote::writeback;

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

/// A download in progress: the temporary file that becomes the pack (shared with the threads
/// that write and verify it), and the options it is opened with to be verified.
#[derive(Clone)]
pub struct Download {
    temp: Arc<TempFile>,
    options: PackOptions,
}

impl Download {
    /// Creates the temporary file for `dest`, first removing those of writers that died.
    pub fn create(dest: &Path, options: PackOptions) -> Result<Download, CliError> {
        wasmpak::fs::remove_leftovers(dest);
        let temp = TempFile::create(dest, FileMode::Public)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", dest.display())))?;
        Ok(Download {
            temp: Arc::new(temp),
            options,
        })
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
        let shown = self.temp.path().display();
        let writer = {
            let temp = self.temp.clone();
            tokio::task::spawn_blocking(move || write_batches(&temp, received))
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
                runtime::pause_point().await;
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
        writer
            .await
            .map_err(|e| CliError::failed(format!("cannot write {shown}: {e}")))?
            .map_err(|e| CliError::failed(format!("cannot write {shown}: {e}")))?;
        let Some(identity) = identity else {
            // Unreachable: the writer stops early only with an error, returned above.
            return Err(CliError::failed(format!(
                "cannot write {shown}: the writer stopped"
            )));
        };
        if received_len != source.meta.size {
            return Err(CliError::failed(format!(
                "cannot download {}: the object ended at byte {received_len}, expected {}",
                source.remote.url(),
                source.meta.size
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
                (self.temp.sync(), started.elapsed())
            });
            let started = Instant::now();
            let verified = self.verify(url, identity);
            phases.verify = started.elapsed().as_nanos() as u64;
            (sync.join(), verified)
        });
        let (synced, took) = synced.map_err(|_| {
            CliError::failed(format!(
                "cannot write {}: the sync failed",
                self.temp.path().display()
            ))
        })?;
        phases.sync = took.as_nanos() as u64;
        synced.map_err(|e| {
            CliError::failed(format!("cannot write {}: {e}", self.temp.path().display()))
        })?;
        verified
    }

    /// Checks every checksum of the downloaded pack (and its signature when keys are
    /// configured). Returns its entry count.
    fn verify(&self, url: &str, identity: &PackIdentity) -> Result<u64, CliError> {
        // Signed packs: trusted keys would travel in the options every command opens packs
        // with, so opening and verifying here is where a signature gets checked.
        let pack = self.options.open(self.temp.path(), identity).map_err(|e| {
            CliError::failed(format!("the pack downloaded from {url} is unusable: {e}"))
        })?;
        let report = pack.verify()?;
        if let Some(problem) = report.problems().first() {
            return Err(CliError::failed(format!(
                "the pack downloaded from {url} is damaged: {problem} (and {} more); nothing \
                 was installed",
                report.problems().len() - 1
            )));
        }
        Ok(report.entries())
    }

    /// Puts the synced, verified file in place (renamed over the destination, the directory
    /// synced). The writer and the verification must be done: they share the file until then.
    pub fn install(self) -> Result<(), CliError> {
        let dest = self.temp.destination().display().to_string();
        let temp = Arc::into_inner(self.temp).ok_or_else(|| {
            CliError::failed(format!(
                "cannot install {dest}: the file is still being written"
            ))
        })?;
        temp.persist()
            .map_err(|e| CliError::failed(format!("cannot install {dest}: {e}")))
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

/// Appends the batches `received` to `temp` until the sender is done, starting the
/// writeback every [`WRITEBACK_EVERY`] bytes.
fn write_batches(
    temp: &TempFile,
    mut received: tokio::sync::mpsc::Receiver<Pending>,
) -> std::io::Result<()> {
    let mut written = 0;
    let mut synced_to = 0;
    while let Some(batch) = received.blocking_recv() {
        let slices: Vec<IoSlice<'_>> = batch.chunks.iter().map(|c| IoSlice::new(c)).collect();
        temp.write_vectored_at(&slices, written)?;
        written += batch.len as u64;
        if written - synced_to >= WRITEBACK_EVERY
            && writeback::start(temp.file(), synced_to, written - synced_to)
        {
            synced_to = written;
        }
    }
    Ok(())
}

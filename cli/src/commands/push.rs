//! `wasmpak push`: upload a pack to an object store, for `pull` on every node.
//!
//! What is uploaded is one commit of the pack, whole: the header page, that commit in both
//! slots and the committed bytes below it, so a pack that other processes keep appending to
//! can be pushed at any time. The pack is verified before a byte leaves (a damaged pack is
//! never spread to a fleet), and the object appears all at once: one request for a small
//! pack, a multipart upload (completed last, aborted on failure, timeout or signal, so that no
//! part is left in the bucket) for a large one.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::format::superblock;
use wasmpak::object_store::{PutPayload, WriteMultipart};

use crate::context::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::open;
use crate::output::{self, say};
use crate::progress::{Bar, Progress};
use crate::remote::runtime::{self, Timeout, pause_point};
use crate::remote::source::header_problem;
use crate::remote::store::Remote;

/// Packs up to this size go up in one request; larger ones as a multipart upload.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// The size of each part of a multipart upload.
const PART: usize = 16 << 20;
/// Parts uploaded at once.
const CONCURRENT_PARTS: usize = 4;
/// How often a commit landing during the check is retried before giving up.
const MAX_ATTEMPTS: usize = 5;

/// Arguments of `wasmpak push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to upload (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// Where to: s3://BUCKET/PATH, gs://..., az://..., file:///PATH; a URL ending in `/` gets
    /// the pack's file name
    pub url: String,
    #[command(flatten)]
    pub timeout: Timeout,
}

/// One commit of a pack, read from one open file.
struct Snapshot {
    file: File,
    /// The header page, then the commit in both slots: what the upload starts with.
    superblock: Bytes,
    committed_len: u64,
    generation: u64,
}

/// The JSON document `push --json` prints.
#[derive(Serialize)]
struct Pushed {
    pack: String,
    /// The object's URL.
    url: String,
    identity: BTreeMap<String, serde_json::Value>,
    entries: u64,
    bytes: u64,
    generation: u64,
    /// Parts of the multipart upload; 0 for a single request.
    parts: usize,
    nanos: u64,
}

/// Runs `wasmpak push`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    let path = open::host_pack_path(&args.pack);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let remote = Remote::open(&args.url, name.as_deref(), args.timeout.duration())?;
    let (snapshot, entries, identity) = checked_snapshot(ctx, &path)?;
    interrupt::check()?;
    let started = Instant::now();
    let network = runtime::runtime()?;
    let bar = Progress::new(ctx).bytes(
        &format!("uploading to {}", remote.url()),
        snapshot.committed_len,
    );
    let parts = network.block_on(upload(&remote, &snapshot, &bar))?;
    bar.done();
    if ctx.json {
        return output::print_json(&Pushed {
            pack: path.display().to_string(),
            url: remote.url().to_string(),
            identity: output::identity_json(&identity),
            entries,
            bytes: snapshot.committed_len,
            generation: snapshot.generation,
            parts,
            nanos: started.elapsed().as_nanos() as u64,
        });
    }
    say!(
        "pushed {} to {}: {}, {}, generation {} ({}) in {}",
        path.display(),
        remote.url(),
        output::count(entries, "entry", "entries"),
        output::bytes(snapshot.committed_len),
        snapshot.generation,
        match parts {
            0 => "one request".to_string(),
            n => format!("multipart upload, {n} parts"),
        },
        output::duration(started.elapsed())
    )
}

/// The latest commit of the pack at `path`, verified whole, its number of entries and its
/// identity.
fn checked_snapshot(
    ctx: &Context,
    path: &Path,
) -> Result<(Snapshot, u64, wasmpak::PackIdentity), CliError> {
    let pack = open::any(ctx, path)?;
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = read_snapshot(path)?;
        let report = pack.verify()?;
        // Verification looked at the commit current when it ran: if that is still the one
        // read above, it vouched for exactly the bytes about to be uploaded.
        let now = pack.stats()?;
        if (now.generation, now.committed_len) != (snapshot.generation, snapshot.committed_len) {
            continue;
        }
        if let Some(problem) = report.problems().first() {
            return Err(CliError::failed(format!(
                "refusing to push damaged pack {}: {problem}{}",
                path.display(),
                output::and_more(report.problems().len() - 1, "problem", "problems"),
            )));
        }
        return Ok((snapshot, report.entries(), pack.identity().clone()));
    }
    Err(CliError::failed(format!(
        "pack {} kept changing while being checked; try again",
        path.display()
    )))
}

/// Reads the live commit of the pack at `path`, following a compaction that replaced it.
fn read_snapshot(path: &Path) -> Result<Snapshot, CliError> {
    let shown = path.display();
    let io = |e: std::io::Error| CliError::failed(format!("cannot read pack {shown}: {e}"));
    for _ in 0..MAX_ATTEMPTS {
        let file = File::open(path).map_err(io)?;
        let mut superblock_bytes = vec![0u8; SUPERBLOCK_LEN as usize];
        let file_len = file.metadata().map_err(io)?.len();
        let read = file.read_at(&mut superblock_bytes, 0).map_err(io)?;
        superblock_bytes.truncate(read);
        let decoded = snapshot::decode_superblock(&superblock_bytes, file_len)
            .map_err(|e| CliError::failed(header_problem(&shown.to_string(), &e)))?;
        if decoded.commit.superseded {
            continue; // compacted: the path names a new file now
        }
        return Ok(Snapshot {
            // Its header page (the encoder takes the first page), the commit in both slots.
            superblock: Bytes::from(superblock::superblock_with(
                &superblock_bytes,
                &decoded.commit.for_copy(),
            )),
            committed_len: decoded.commit.committed_len,
            generation: decoded.commit.generation,
            file,
        });
    }
    Err(CliError::failed(format!(
        "pack {shown} kept being replaced while being read; try again"
    )))
}

/// The snapshot's bytes in order, `chunk` bytes at a time (the superblock first).
fn chunks(snapshot: &Snapshot, chunk: usize) -> impl Iterator<Item = std::io::Result<Bytes>> + '_ {
    let superblock = std::iter::once(Ok(snapshot.superblock.clone()));
    let mut offset = SUPERBLOCK_LEN;
    let data = std::iter::from_fn(move || {
        if offset >= snapshot.committed_len {
            return None;
        }
        let len = (snapshot.committed_len - offset).min(chunk as u64) as usize;
        let mut buffer = vec![0u8; len];
        let result = snapshot
            .file
            .read_exact_at(&mut buffer, offset)
            .map(|()| Bytes::from(buffer));
        offset += len as u64;
        Some(result)
    });
    superblock.chain(data)
}

/// Uploads the snapshot; returns the number of multipart parts (0 for a single request).
async fn upload(remote: &Remote, snapshot: &Snapshot, bar: &Bar) -> Result<usize, CliError> {
    let read_error = |e: std::io::Error| CliError::failed(format!("cannot read the pack: {e}"));
    if snapshot.committed_len <= SINGLE_PUT_MAX {
        let payload: PutPayload = chunks(snapshot, PART)
            .collect::<std::io::Result<Vec<Bytes>>>()
            .map_err(read_error)?
            .into_iter()
            .collect();
        pause_point().await;
        let put = remote
            .store()
            .put_opts(remote.path(), payload, Default::default());
        remote
            .within("upload to", put)
            .await?
            .map_err(|e| remote.error("upload to", &e))?;
        bar.set(snapshot.committed_len);
        return Ok(0);
    }
    let start = remote
        .store()
        .put_multipart_opts(remote.path(), Default::default());
    let upload = remote
        .within("start an upload to", start)
        .await?
        .map_err(|e| remote.error("start an upload to", &e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    match send_parts(remote, snapshot, &mut writer, bar).await {
        Ok(()) => {}
        Err(error) => {
            // The parts sent so far never become an object; aborting frees them. Bounded by
            // the timeout alone: an interrupted push must still abort.
            let _ = remote.cleanup("abort the upload to", writer.abort()).await;
            return Err(error);
        }
    }
    // Every part is up: completing is the quickest way to leave nothing open, so a signal now
    // lets it finish.
    remote
        .cleanup("finish the upload to", writer.finish())
        .await?
        .map_err(|e| remote.error("finish the upload to", &e))?;
    Ok(snapshot.committed_len.div_ceil(PART as u64) as usize)
}

/// Sends the snapshot's parts, at most [`CONCURRENT_PARTS`] at once.
async fn send_parts(
    remote: &Remote,
    snapshot: &Snapshot,
    writer: &mut WriteMultipart,
    bar: &Bar,
) -> Result<(), CliError> {
    let mut sent = 0usize;
    let mut paused = false;
    for chunk in chunks(snapshot, PART) {
        let bytes = chunk.map_err(|e| CliError::failed(format!("cannot read the pack: {e}")))?;
        sent += bytes.len();
        writer.put(bytes);
        remote
            .within("upload to", writer.wait_for_capacity(CONCURRENT_PARTS))
            .await?
            .map_err(|e| remote.error("upload to", &e))?;
        // Parts in flight are not done: the bar shows what the store has taken at least.
        bar.set(sent.saturating_sub(CONCURRENT_PARTS * PART) as u64);
        if !paused && sent >= PART {
            paused = true;
            pause_point().await;
        }
    }
    // The last parts, before the upload is completed: an interruption now still aborts it.
    remote
        .within("upload to", writer.wait_for_capacity(0))
        .await?
        .map_err(|e| remote.error("upload to", &e))?;
    bar.set(snapshot.committed_len);
    Ok(())
}

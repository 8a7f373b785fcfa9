//! `wasmpak push`: upload a pack to an object store, for `pull` on every node.
//!
//! What is uploaded is one commit of the pack, whole: the header page, that commit in both
//! slots and the committed bytes below it, so a pack that other processes keep appending to
//! can be pushed at any time. The pack is verified before a byte leaves (a damaged pack is
//! never spread to a fleet), and the object appears all at once: one request for a small
//! pack, a multipart upload (completed last, aborted on failure) for a large one.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use wasmpak::format::snapshot::{self, SUPERBLOCK_LEN};
use wasmpak::format::superblock;
use wasmpak::object_store::{PutPayload, WriteMultipart};

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
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
    /// The pack to upload
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

/// Runs `wasmpak push`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let name = args
        .pack
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let remote = Remote::open(&args.url, name.as_deref(), args.timeout.duration())?;
    let (snapshot, entries) = checked_snapshot(ctx, &args.pack)?;
    let started = Instant::now();
    let network = runtime::runtime()?;
    let parts = network.block_on(upload(&remote, &snapshot))?;
    say!(
        "pushed {} to {}: {}, {}, generation {} ({}) in {}",
        args.pack.display(),
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

/// The latest commit of the pack at `path`, verified whole, and its number of entries.
fn checked_snapshot(ctx: &Context, path: &Path) -> Result<(Snapshot, u64), CliError> {
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
                "refusing to push damaged pack {}: {} (and {} more; see `wasmpak verify`)",
                path.display(),
                problem,
                report.problems().len() - 1
            )));
        }
        return Ok((snapshot, report.entries()));
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
async fn upload(remote: &Remote, snapshot: &Snapshot) -> Result<usize, CliError> {
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
    let mut sent = 0usize;
    let mut paused = false;
    for chunk in chunks(snapshot, PART) {
        let written = match chunk {
            Ok(bytes) => {
                sent += bytes.len();
                writer.put(bytes);
                match remote
                    .within("upload to", writer.wait_for_capacity(CONCURRENT_PARTS))
                    .await
                {
                    Ok(done) => done.map_err(|e| remote.error("upload to", &e)),
                    Err(stalled) => Err(stalled),
                }
            }
            Err(e) => Err(read_error(e)),
        };
        if let Err(error) = written {
            // The parts sent so far never become an object; aborting frees them.
            let _ = remote.within("abort the upload to", writer.abort()).await;
            return Err(error);
        }
        if !paused && sent >= PART {
            paused = true;
            pause_point().await;
        }
    }
    remote
        .within("finish the upload to", writer.finish())
        .await?
        .map_err(|e| remote.error("finish the upload to", &e))?;
    Ok(snapshot.committed_len.div_ceil(PART as u64) as usize)
}

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
//! the entries the local pack lacks and appends them through the pack's own
//! commits, so processes using the pack meanwhile keep working.
//!
//! The machinery is under `remote/`: `download.rs` writes a full pull's temporary file,
//! `delta.rs` fetches what a local pack lacks, `source.rs` pins the object's version.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmpak::format::snapshot::SUPERBLOCK_LEN;
use wasmpak::object_store::ObjectStoreExt;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::remote::delta;
use crate::remote::download::Download;
use crate::remote::report::{Phases, Summary};
use crate::remote::runtime::{self, Timeout};
use crate::remote::source::{Source, decode, head, request_error};
use crate::remote::store::Remote;

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
    #[command(flatten)]
    pub timeout: Timeout,
    /// Print a JSON summary (exact byte counts) instead of a line of text
    #[arg(long)]
    pub json: bool,
}

/// Runs `wasmpak pull`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let started = Instant::now();
    let remote = Remote::open(&args.url, None, args.timeout.duration())?;
    let name = remote
        .path()
        .filename()
        .filter(|name| !name.starts_with('.'))
        .ok_or_else(|| CliError::usage(format!("URL {} does not name a pack file", remote.url())))?
        .to_string();
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        CliError::failed(format!(
            "cannot create directory {}: {e}",
            args.dir.display()
        ))
    })?;
    let dest = args.dir.join(&name);
    // One thread: the download is one connection, and the disk has threads of its own.
    let network = runtime::current_thread_runtime()?;
    let connect = started.elapsed().as_nanos() as u64;
    let mut summary = network.block_on(pull(ctx, &remote, &dest, args.replace))?;
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

/// Pulls into `dest`: a full download, or a delta into the pack already there.
async fn pull(
    ctx: &Context,
    remote: &Remote,
    dest: &Path,
    replace: bool,
) -> Result<Summary, CliError> {
    let mut summary = Summary::new(remote.url(), dest.to_path_buf());
    let local = if replace {
        None
    } else {
        open::any_if_exists(ctx, dest).transpose()
    };
    let Some(local) = local else {
        full(ctx, remote, dest, &mut summary).await?;
        return Ok(summary);
    };
    let mut mark = Instant::now();
    // The remote object comes first: a missing one is the error to report.
    let meta = head(remote).await?;
    let local = local.map_err(|e| {
        CliError::failed(format!(
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
        return Err(CliError::failed(format!(
            "pack {} was built for {}, but {} holds a pack for {identity}; nothing was \
             changed (pull into another directory, or pass --replace)",
            dest.display(),
            local.identity(),
            remote.url()
        )));
    }
    delta::pull(&source, &decoded.commit, &local, &mut summary).await?;
    summary.phases.download = lap(&mut mark);
    Ok(summary)
}

/// Downloads the whole object in one GET, whose answer names the version (ETag) and size the
/// pull pins, then syncs and verifies the file while a HEAD checks that the object was not
/// replaced meanwhile; installs it only if both succeed.
async fn full(
    ctx: &Context,
    remote: &Remote,
    dest: &Path,
    summary: &mut Summary,
) -> Result<(), CliError> {
    let mut mark = Instant::now();
    let response = match remote
        .within("read", remote.store().get(remote.path()))
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
    let download = Download::create(dest, ctx.pack_options())?;
    summary.phases.request = lap(&mut mark);
    let (identity, check) = download.stream(&source, response.into_stream()).await?;
    summary.bytes_downloaded = source.meta.size;
    summary.phases.download = lap(&mut mark);
    let verifying = {
        let (download, url) = (download.clone(), remote.url().to_string());
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
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", remote.url())))?;
    summary.phases.check = lap(&mut mark);
    let (verified, phases) = verifying.await.map_err(|e| {
        CliError::failed(format!("cannot verify the pack from {}: {e}", remote.url()))
    })?;
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

/// Nanoseconds since `*mark`, which moves to now.
fn lap(mark: &mut Instant) -> u64 {
    let now = Instant::now();
    let nanos = now.duration_since(*mark).as_nanos() as u64;
    *mark = now;
    nanos
}

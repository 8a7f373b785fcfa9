//! `wasmpak pull`: install a pack from an object store into a directory, for `PackCache` or
//! `Pack::open` to use.
//!
//! A reader never sees half a download: the pack is written to a temporary file beside its
//! destination, synced, verified whole (every checksum, and with `--key` every entry against
//! the signatures by the given keys), and only then renamed into place. A full pull is one
//! GET, whose answer names the version (ETag) the pull holds to: `object_store` resumes a broken body only from that
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
//! Into a pack of the same identity already there, `pull` fetches only the entries the local
//! pack lacks and appends them through the pack's own commits, so processes using the pack
//! meanwhile keep working.
//!
//! The destination is a file when it ends in `.wpk` or names an existing file, and otherwise a
//! directory, which gets the object's file name (and is created if missing, and removed again
//! if the pull fails). Interrupted, a pull stops: a full one removes its temporary file, a
//! delta keeps the entries it committed.
//!
//! The machinery is under `remote/`: `download.rs` writes a full pull's temporary file,
//! `delta.rs` fetches what a local pack lacks, `source.rs` pins the object's version.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmpak::PublicKey;
use wasmpak::format::snapshot::SUPERBLOCK_LEN;
use wasmpak::object_store::ObjectStoreExt;

use crate::context::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::open::{self, NewDirs};
use crate::output::{self, say};
use crate::progress::{Bar, Progress};
use crate::remote::delta;
use crate::remote::download::Download;
use crate::remote::report::{Phases, Summary};
use crate::remote::runtime::{self, Timeout};
use crate::remote::source::{Source, decode, head, request_error};
use crate::remote::store::Remote;
use crate::signing;

/// Arguments of `wasmpak pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to download: s3://BUCKET/PATH/NAME.wpk, gs://..., az://...,
    /// https://HOST/PATH/NAME.wpk (GETs alone; http:// too), file:///PATH
    pub url: String,
    /// Where to: a file (a path ending in .wpk, or an existing file), or a directory, which
    /// gets the object's file name (created if missing)
    #[arg(value_name = "FILE|DIR")]
    pub dest: PathBuf,
    /// Replace a local pack there with the download, instead of fetching only the entries it
    /// lacks (needed when the local file is another identity or not a pack)
    #[arg(long)]
    pub replace: bool,
    /// Install only if every entry is signed by this public key (SPKI PEM); repeat for
    /// several trusted keys. The pack is then downloaded whole and checked before it
    /// replaces the local copy (no delta: signatures cover the whole commit)
    #[arg(long, value_name = "PUBLIC.pem")]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub timeout: Timeout,
}

/// Runs `wasmpak pull`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    let started = Instant::now();
    let keys = signing::read_public_keys(&args.key)?;
    let remote = Remote::open(&args.url, None, args.timeout.duration())?;
    let name = remote
        .path()
        .filename()
        .filter(|name| !name.starts_with('.'))
        .ok_or_else(|| CliError::usage(format!("URL {} does not name a pack file", remote.url())))?
        .to_string();
    let dest = destination(&args.dest, &name);
    // Created now, removed again if the pull fails: a failed pull leaves no directory behind.
    let dirs = NewDirs::for_file(&dest)?;
    // One thread: the download is one connection, and the disk has threads of its own.
    let network = runtime::current_thread_runtime()?;
    let connect = started.elapsed().as_nanos() as u64;
    let progress = Progress::new(ctx);
    let mut summary =
        network.block_on(pull(ctx, &remote, &dest, args.replace, &keys, &progress))?;
    dirs.keep();
    summary.phases.connect = connect;
    summary.nanos = started.elapsed().as_nanos() as u64;
    if ctx.json {
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
    let signed = if keys.is_empty() {
        String::new()
    } else {
        format!(", signed by {}", signing::key_ids(&keys))
    };
    say!(
        "pulled {} into {}: {what}{signed}, {} downloaded ({} requests) in {}",
        summary.url,
        summary.path.display(),
        output::bytes(summary.bytes_downloaded),
        summary.requests,
        output::duration(started.elapsed())
    )
}

/// The file `dest` names for an object named `name`: `dest` itself if it ends in `.wpk` or is
/// an existing file, else `name` in the directory `dest`.
fn destination(dest: &Path, name: &str) -> PathBuf {
    let file =
        !open::names_dir(dest) && (dest.extension().is_some_and(|e| e == "wpk") || dest.exists());
    if file {
        dest.to_path_buf()
    } else {
        dest.join(name)
    }
}

/// Pulls into `dest`: a full download, or a delta into the pack already there (never with
/// `keys`: the download is checked whole against them).
async fn pull(
    ctx: &Context,
    remote: &Remote,
    dest: &Path,
    replace: bool,
    keys: &[PublicKey],
    progress: &Progress,
) -> Result<Summary, CliError> {
    let mut summary = Summary::new(remote.url(), dest.to_path_buf());
    let local = if replace || !keys.is_empty() {
        None
    } else {
        open::any_if_exists(ctx, dest).transpose()
    };
    let Some(local) = local else {
        full(ctx, remote, dest, keys, &mut summary, progress).await?;
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
    open::prepare_write(dest)?;
    let bar = progress.spinner(&format!("fetching what {} lacks", dest.display()), None);
    delta::pull(&source, &decoded.commit, &local, &mut summary).await?;
    bar.done();
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
    keys: &[PublicKey],
    summary: &mut Summary,
    progress: &Progress,
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
    let download = Download::create(dest, ctx.pack_options(), keys)?;
    summary.phases.request = lap(&mut mark);
    let bar: Bar = progress.bytes(&format!("downloading {}", remote.url()), source.meta.size);
    let (identity, check) = download
        .stream(&source, response.into_stream(), &bar)
        .await?;
    bar.done();
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
    // Last-Modified too: a plain web server may send no ETag.
    if now.e_tag != source.meta.e_tag
        || now.last_modified != source.meta.last_modified
        || now.size != source.meta.size
    {
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

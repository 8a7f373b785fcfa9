//! `wasmpak install`: copy a pack into place for good: atomically, verified byte for byte
//! (and against the signer's public key when one is given), sealed and read-only; never over
//! a newer release of itself unless asked.
//!
//! The copy is what the library verifies, so a refusal names the copy; but the copy holds the
//! source's bytes, so when the source has the same problem the source is named, the file at
//! fault. Interrupted, an install under way is finished (it cannot stop halfway and leaves no
//! temporary file once done); one not started does not start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmpak::{Pack, PublicKey};

use crate::context::Context;
use crate::error::{CliError, ErrorKind};
use crate::interrupt;
use crate::open::{self, NewDirs};
use crate::output::{self, say};
use crate::progress::Progress;
use crate::signing;

/// Arguments of `wasmpak install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to install (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// The directory to install it into, under the same file name (created if missing)
    pub dir: PathBuf,
    /// Install only if every entry is signed by this public key (SPKI PEM); repeat for
    /// several trusted keys
    #[arg(long, value_name = "PUBLIC.pem")]
    pub key: Vec<PathBuf>,
    /// Install even if the pack's signed release is older than the installed one's (with
    /// --key, a downgrade is refused by default)
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// The JSON document `install --json` prints.
#[derive(Serialize)]
struct Installed {
    /// The installed pack.
    pack: String,
    /// The pack it was copied from.
    source: String,
    identity: BTreeMap<String, serde_json::Value>,
    entries: u64,
    live_bytes: u64,
    /// Key ids the signatures were checked against (none: checksums only).
    keys: Vec<String>,
    /// The release the keys vouch for (null without keys, or signed without one).
    release: Option<u64>,
    sealed: bool,
}

/// Runs `wasmpak install`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    let keys = signing::read_public_keys(&args.key)?;
    let source = open::host_pack_path(&args.pack);
    if args.dir.exists() && !args.dir.is_dir() {
        return Err(CliError::failed(format!(
            "cannot install into {}: not a directory",
            args.dir.display()
        )));
    }
    let dest = source
        .file_name()
        .map(|name| args.dir.join(name))
        .ok_or_else(|| CliError::usage(format!("{} names no file", source.display())))?;
    // The release installed now is the floor, unless a downgrade is allowed.
    let floor = match args.allow_downgrade {
        true => None,
        false => installed_release(ctx, &dest, &keys),
    };
    let pack = ctx
        .pack_options()
        .trusted_keys(keys.iter().copied())
        .min_release(floor.unwrap_or(0))
        .open_any(&source)?;
    let release = match keys.is_empty() {
        true => None,
        false => pack.signed_release(&keys)?,
    };
    if let (Some(floor), Some(release)) = (floor, release)
        && release < floor
    {
        return Err(CliError::new(
            ErrorKind::VerifyFailed,
            format!(
                "not installed: {} is {}, older than {} installed as {} (--allow-downgrade \
                 installs it anyway)",
                source.display(),
                describe(release),
                describe(floor),
                dest.display()
            ),
        ));
    }
    interrupt::check()?;
    let dirs = NewDirs::create(&args.dir)?;
    let bar = Progress::new(ctx).spinner(&format!("installing {}", source.display()), None);
    let installed = pack
        .install_into(&args.dir)
        .map_err(|e| refused(ctx, &source, &keys, e))?;
    bar.done();
    dirs.keep();
    let stats = installed.stats()?;
    if ctx.json {
        return output::print_json(&Installed {
            pack: installed.path().display().to_string(),
            source: source.display().to_string(),
            identity: output::identity_json(installed.identity()),
            entries: stats.entries,
            live_bytes: stats.live_bytes,
            keys: keys.iter().map(|k| k.id()).collect(),
            release,
            sealed: installed.is_sealed()?,
        });
    }
    let signed = match release {
        _ if keys.is_empty() => "checksums verified, signatures not checked (no --key)".to_string(),
        Some(release) => format!(
            "checksums and signatures verified ({}), {}",
            signing::key_ids(&keys),
            describe(release)
        ),
        None => format!(
            "checksums and signatures verified ({})",
            signing::key_ids(&keys)
        ),
    };
    say!(
        "installed {} ({} entries, {}): {signed}; sealed, read-only",
        installed.path().display(),
        stats.entries,
        output::bytes(stats.live_bytes)
    )
}

/// An install the library refused. Damage and missing signatures are the verification's
/// verdict (exit 3); the message names the source when the source has the problem, since the
/// copy the library checked holds the source's bytes.
fn refused(ctx: &Context, source: &Path, keys: &[PublicKey], error: wasmpak::Error) -> CliError {
    let verdict = matches!(
        error.kind(),
        wasmpak::ErrorKind::Untrusted | wasmpak::ErrorKind::Corrupt
    );
    if !verdict {
        return error.into();
    }
    match source_problem(ctx, source, keys) {
        Some(problem) => CliError::new(
            ErrorKind::VerifyFailed,
            format!(
                "pack {} is not installed: {problem}; the installed pack, if any, is untouched",
                source.display()
            ),
        ),
        None => CliError::new(ErrorKind::VerifyFailed, error),
    }
}

/// The source's first problem, checked the way the library checked the copy: checksums, then
/// the trusted keys' signatures.
fn source_problem(ctx: &Context, source: &Path, keys: &[PublicKey]) -> Option<String> {
    let pack: Pack = ctx.pack_options().open_any(source).ok()?;
    let report = pack.verify().ok()?;
    if let Some(problem) = report.problems().first() {
        return Some(format!("it is damaged: {problem}"));
    }
    if keys.is_empty() {
        return None;
    }
    let signed = pack.verify_signatures(keys).ok()?;
    signed
        .problems()
        .first()
        .map(|problem| match problem.key() {
            Some(key) => format!("entry {key} is not trusted: {}", problem.detail()),
            None => format!("its signatures are damaged: {problem}"),
        })
}

/// The release the trusted `keys` vouch for in the pack installed at `dest`, if one is there
/// and they vouch for all of it. A file that is not a usable pack has no release to keep: the
/// install replaces it.
fn installed_release(ctx: &Context, dest: &Path, keys: &[PublicKey]) -> Option<u64> {
    if keys.is_empty() || !dest.exists() {
        return None;
    }
    let installed = ctx.pack_options().open_any(dest).ok()?;
    installed.signed_release(keys).ok().flatten()
}

/// A release for a message.
fn describe(release: u64) -> String {
    match release {
        0 => "signed without a release".to_string(),
        release => format!("release {release}"),
    }
}

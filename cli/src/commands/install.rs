//! `wasmpak install`: copy a pack into place for good: atomically, verified byte for byte
//! (and against the signer's public key when one is given), sealed and read-only; never over
//! a newer release of itself unless asked.

use std::path::{Path, PathBuf};

use wasmpak::PublicKey;

use crate::context::Context;
use crate::error::{CliError, ErrorKind};
use crate::output::{self, say};
use crate::signing;

/// Arguments of `wasmpak install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to install
    pub pack: PathBuf,
    /// The directory to install it into (under the same file name)
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

/// Runs `wasmpak install`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let keys = signing::read_public_keys(&args.key)?;
    if !args.dir.is_dir() {
        return Err(CliError::failed(format!(
            "cannot install into {}: not a directory",
            args.dir.display()
        )));
    }
    let dest = args
        .pack
        .file_name()
        .map(|name| args.dir.join(name))
        .ok_or_else(|| CliError::usage(format!("{} names no file", args.pack.display())))?;
    // The release installed now is the floor, unless a downgrade is allowed.
    let floor = match args.allow_downgrade {
        true => None,
        false => installed_release(ctx, &dest, &keys),
    };
    let pack = ctx
        .pack_options()
        .trusted_keys(keys.iter().copied())
        .min_release(floor.unwrap_or(0))
        .open_any(&args.pack)?;
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
                args.pack.display(),
                describe(release),
                describe(floor),
                dest.display()
            ),
        ));
    }
    let installed = pack.install_into(&args.dir).map_err(|e| match e.kind() {
        wasmpak::ErrorKind::Untrusted | wasmpak::ErrorKind::Corrupt => {
            CliError::new(ErrorKind::VerifyFailed, e)
        }
        _ => e.into(),
    })?;
    let stats = installed.stats()?;
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

//! `wasmpak install`: copy a pack into place for good: atomically, verified byte for byte
//! (and against the signer's public key when one is given), sealed and read-only.

use std::path::PathBuf;

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
    let pack = ctx
        .pack_options()
        .trusted_keys(keys.iter().copied())
        .open_any(&args.pack)?;
    let installed = pack.install_into(&args.dir).map_err(|e| match e.kind() {
        wasmpak::ErrorKind::Untrusted | wasmpak::ErrorKind::Corrupt => {
            CliError::new(ErrorKind::VerifyFailed, e)
        }
        _ => e.into(),
    })?;
    let stats = installed.stats()?;
    let signed = if keys.is_empty() {
        "checksums verified, signatures not checked (no --key)".to_string()
    } else {
        format!(
            "checksums and signatures verified ({})",
            signing::key_ids(&keys)
        )
    };
    say!(
        "installed {} ({} entries, {}): {signed}; sealed, read-only",
        installed.path().display(),
        stats.entries,
        output::bytes(stats.live_bytes)
    )
}

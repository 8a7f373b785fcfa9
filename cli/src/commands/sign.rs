//! `wasmpak sign`: vouch for every entry of a pack with an Ed25519 key.

use std::path::PathBuf;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::signing;

/// Arguments of `wasmpak sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to sign (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// The secret key (PKCS#8 PEM, from `wasmpak keygen` or `openssl genpkey -algorithm ed25519`)
    #[arg(long, value_name = "SECRET.pem")]
    pub key: PathBuf,
    /// Name this release in the signature (a number from 1 up that orders your releases, such
    /// as a build number): `install` refuses to replace a pack with an older release, and
    /// readers can require a minimum
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub release: Option<u64>,
}

/// Runs `wasmpak sign`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let key = signing::read_secret(&args.key)?;
    let pack = open::writable(ctx, &open::host_pack_path(&args.pack))?;
    signing::sign(ctx, &pack, &key, args.release)
}

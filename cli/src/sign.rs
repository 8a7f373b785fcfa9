//! `wasmpak sign`: vouch for every entry of a pack with an Ed25519 key.

use std::path::{Path, PathBuf};

use wasmpak::{Pack, SecretKey};

use crate::error::CliError;
use crate::open;
use crate::output::say;

/// Arguments of `wasmpak sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to sign
    pub pack: PathBuf,
    /// The secret key (PKCS#8 PEM, from `wasmpak keygen` or `openssl genpkey -algorithm ed25519`)
    #[arg(long, value_name = "SECRET.pem")]
    pub key: PathBuf,
}

/// Reads a secret key for signing, with a one-line error naming the file.
pub fn read_secret(path: &Path) -> Result<SecretKey, CliError> {
    SecretKey::read(path).map_err(CliError::new)
}

/// Signs `pack` and reports it on stdout.
pub fn sign(pack: &Pack, key: &SecretKey) -> Result<(), CliError> {
    let signature = pack.sign(key)?;
    say!(
        "signed {}: {} entries with key {} (generation {})",
        pack.path().display(),
        signature.entries(),
        signature.signer_id(),
        signature.generation()
    )
}

/// Runs `wasmpak sign`.
pub fn run(args: Args) -> Result<(), CliError> {
    let key = read_secret(&args.key)?;
    let pack = open::any(&args.pack)?;
    open::check_writable(&args.pack)?;
    sign(&pack, &key)
}

//! Signing keys as the commands take them: `--key`/`--sign` files read with errors naming the
//! file, and signing a pack with its report line. Used by `sign`, `build --sign`, `verify
//! --key` and `install --key`.

use std::path::{Path, PathBuf};

use wasmpak::{Pack, PublicKey, SecretKey};

use crate::error::CliError;
use crate::output::say;

/// Reads a secret key for signing, with a one-line error naming the file.
pub fn read_secret(path: &Path) -> Result<SecretKey, CliError> {
    SecretKey::read(path).map_err(CliError::failed)
}

/// Reads the trusted public keys given with `--key`.
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, CliError> {
    paths
        .iter()
        .map(|path| PublicKey::read(path).map_err(CliError::failed))
        .collect()
}

/// The ids of `keys`, for a report line: `id1, id2`.
pub fn key_ids(keys: &[PublicKey]) -> String {
    keys.iter().map(|k| k.id()).collect::<Vec<_>>().join(", ")
}

/// Signs `pack` (naming `release`, if given) and reports it on stdout.
pub fn sign(pack: &Pack, key: &SecretKey, release: Option<u64>) -> Result<(), CliError> {
    let signature = match release {
        Some(release) => pack.sign_release(key, release)?,
        None => pack.sign(key)?,
    };
    let release = signature
        .release()
        .map_or(String::new(), |r| format!(", release {r}"));
    say!(
        "signed {}: {} entries with key {} (generation {}{release})",
        pack.path().display(),
        signature.entries(),
        signature.signer_id(),
        signature.generation()
    )
}

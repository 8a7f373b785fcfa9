//! Signing keys as the commands take them: `--key`/`--sign` files read with errors naming the
//! file, and signing a pack with its report line. Used by `sign`, `build --sign`, `verify
//! --key` and `install --key`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmpak::{Pack, PublicKey, SecretKey};

use crate::context::Context;
use crate::error::CliError;
use crate::output::{self, say};

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

/// A signature just made, as `sign --json` prints it and `build --json` includes it.
#[derive(Debug, Serialize)]
pub struct Signed {
    pub pack: String,
    pub key_id: String,
    pub entries: u64,
    pub generation: u64,
    /// The release the signature names (null: signed without one).
    pub release: Option<u64>,
}

/// Signs `pack` (naming `release`, if given); reports it on stdout (a line, or with `--json`
/// the document).
pub fn sign(
    ctx: &Context,
    pack: &Pack,
    key: &SecretKey,
    release: Option<u64>,
) -> Result<(), CliError> {
    let signed = sign_quietly(pack, key, release)?;
    if ctx.json {
        return output::print_json(&signed);
    }
    report(&signed)
}

/// Signs `pack` (naming `release`, if given) and says nothing: for commands that report it in
/// their own words.
pub fn sign_quietly(
    pack: &Pack,
    key: &SecretKey,
    release: Option<u64>,
) -> Result<Signed, CliError> {
    let signature = match release {
        Some(release) => pack.sign_release(key, release)?,
        None => pack.sign(key)?,
    };
    Ok(Signed {
        pack: pack.path().display().to_string(),
        key_id: signature.signer_id(),
        entries: signature.entries(),
        generation: signature.generation(),
        release: signature.release(),
    })
}

/// The line saying a pack was signed.
pub fn report(signed: &Signed) -> Result<(), CliError> {
    let release = signed
        .release
        .map_or(String::new(), |r| format!(", release {r}"));
    say!(
        "signed {}: {} entries with key {} (generation {}{release})",
        signed.pack,
        signed.entries,
        signed.key_id,
        signed.generation
    )
}

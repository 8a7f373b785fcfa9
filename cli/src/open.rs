//! Opening the pack a command names, with messages that say what to do.
//!
//! Inspection commands (`list`, `info`, `verify`, `compact`, `rm`, `extract`, `merge`) accept a
//! pack of any identity: looking inside a pack built elsewhere is how one finds out why it
//! does not load. `build` and `run` need the pack of their engine.

use std::path::{Path, PathBuf};

use wasmpak::{EngineIdentity, ErrorKind, IdentityValue, Pack, PackIdentity};

use crate::context::Context;
use crate::error::CliError;

/// Opens an existing pack of any identity.
pub fn any(ctx: &Context, path: &Path) -> Result<Pack, CliError> {
    Ok(ctx.pack_options().open_any(path)?)
}

/// Opens the pack at `path`, of any identity, if there is one; `Ok(None)` if there is no file
/// there. The library's error is returned as it is, for callers that explain it.
pub fn any_if_exists(ctx: &Context, path: &Path) -> Result<Option<Pack>, wasmpak::Error> {
    missing_is_none(ctx.pack_options().open_any(path), path)
}

/// `Ok(None)` for an open that failed because nothing is at `path`.
fn missing_is_none(
    opened: Result<Pack, wasmpak::Error>,
    path: &Path,
) -> Result<Option<Pack>, wasmpak::Error> {
    match opened {
        Ok(pack) => Ok(Some(pack)),
        Err(e) if e.kind() == ErrorKind::NotFound && !path.exists() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pack a command that writes for `identity` means by `path`: `path` itself, or for a
/// directory, the pack in it named for the identity (the name a `PackCache` looks for).
pub fn pack_in(path: &Path, identity: &EngineIdentity) -> Result<PathBuf, CliError> {
    if path.is_dir() {
        return Ok(path.join(identity.pack_file_name()));
    }
    if path
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR)
    {
        return Err(CliError::failed(format!(
            "directory {} does not exist; create it first, or name a pack file",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// Why a command wants the pack of its engine: decides the advice on a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `build`: adding modules compiled by this engine.
    Build,
    /// `run`: loading modules into this engine.
    Run,
}

/// Opens the pack at `path` if there is one, which must have `identity`; `Ok(None)` if there
/// is no file there.
pub fn existing_for(
    ctx: &Context,
    path: &Path,
    identity: &PackIdentity,
    purpose: Purpose,
) -> Result<Option<Pack>, CliError> {
    missing_is_none(ctx.pack_options().open(path, identity), path)
        .map_err(|e| explain(ctx, e, identity, purpose))
}

/// Opens the pack at `path` with `identity`, creating it if there is none.
pub fn or_create(
    ctx: &Context,
    path: &Path,
    identity: &PackIdentity,
    purpose: Purpose,
) -> Result<Pack, CliError> {
    ctx.pack_options()
        .open_or_create(path, identity)
        .map_err(|e| explain(ctx, e, identity, purpose))
}

/// A library error, with an identity mismatch spelled out for people who did not build the
/// pack: both identities, and what to do about it.
fn explain(
    ctx: &Context,
    error: wasmpak::Error,
    ours: &PackIdentity,
    purpose: Purpose,
) -> CliError {
    if error.kind() != ErrorKind::IdentityMismatch {
        return error.into();
    }
    // The pack's own identity, read from the pack: the error's message names it, but only
    // its variant holds it as a value, and variants are not what callers match on.
    let path = error.path();
    let found = match any(ctx, path) {
        Ok(pack) => pack.identity().clone(),
        Err(_) => return error.into(),
    };
    let target = |identity: &PackIdentity| match identity.get("target") {
        Some(IdentityValue::Str(s)) => s.clone(),
        _ => String::from("no target"),
    };
    let (theirs, mine) = (target(&found), target(ours));
    let advice = match purpose {
        Purpose::Run if theirs != mine => format!(
            "its modules are compiled for {theirs} and cannot be loaded on this {mine} host"
        ),
        Purpose::Run => "run with the --compiler and --cpu-features it was built with".to_string(),
        Purpose::Build => "one pack holds one engine's modules: build into another pack, or \
            with the --compiler, --target and --cpu-features it was built with"
            .to_string(),
    };
    CliError::failed(format!(
        "pack {} was built for another engine identity: the pack has {found}; this engine has \
         {ours}; {advice}",
        path.display()
    ))
}

/// Fails early, before minutes of compiling, if a pack cannot be created at `path`.
pub fn check_creatable(path: &Path) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let shown = path.display();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CliError::failed(format!(
                "cannot create pack {shown}: {} is not a directory",
                dir.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::failed(format!(
                "cannot create pack {shown}: directory {} does not exist",
                dir.display()
            )));
        }
        Err(e) => return Err(CliError::failed(format!("cannot create pack {shown}: {e}"))),
    }
    use rustix::fs::{Access, access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        CliError::failed(format!(
            "cannot create pack {shown}: {}: {}",
            dir.display(),
            std::io::Error::from(e)
        ))
    })
}

/// Fails early if an existing pack is read-only for this process.
pub fn check_writable(path: &Path) -> Result<(), CliError> {
    use rustix::fs::{Access, access};
    access(path, Access::WRITE_OK).map_err(|e| {
        CliError::failed(format!(
            "pack {} is read-only: {}",
            path.display(),
            std::io::Error::from(e)
        ))
    })
}

/// Fails early, before minutes of work, if the pack at `path` cannot be written: one that
/// `exists` must be writable, a new one creatable.
pub fn check_can_write(path: &Path, exists: bool) -> Result<(), CliError> {
    if exists {
        check_writable(path)
    } else {
        check_creatable(path)
    }
}

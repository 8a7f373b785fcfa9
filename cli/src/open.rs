//! What a pack argument means, and opening the pack a command names, with messages that say
//! what to do.
//!
//! One meaning in every command: a PACK argument names a pack file; a directory (one that
//! exists, or a path ending in `/`) names the pack in it that a `PackCache` for the command's
//! engine would use there, the engine identity's file name ([`pack_path`]). A command that
//! writes a file creates the missing directories on the way to it, and removes the ones it
//! created if it then fails ([`NewDirs`]). Opening a pack to write it first sweeps the
//! temporary files that writers which died left beside it ([`writable`], [`or_create`]).
//!
//! Inspection commands (`list`, `info`, `verify`, `compact`, `rm`, `extract`, `merge`) accept a
//! pack of any identity: looking inside a pack built elsewhere is how one finds out why it
//! does not load. `build` and `run` need the pack of their engine.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wasmpak::{EngineIdentity, ErrorKind, IdentityValue, Pack, PackIdentity};

use crate::context::Context;
use crate::engine;
use crate::error::CliError;

/// Whether a path argument names a directory: one that exists, or a path ending in `/`.
pub fn names_dir(path: &Path) -> bool {
    path.is_dir()
        || path
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
}

/// The pack a PACK argument names for a command working with `identity`'s engine: `path`
/// itself, or for a directory, the pack in it named for the identity (the name a `PackCache`
/// looks for there).
pub fn pack_path(path: &Path, identity: &EngineIdentity) -> PathBuf {
    if names_dir(path) {
        path.join(identity.pack_file_name())
    } else {
        path.to_path_buf()
    }
}

/// The pack a PACK argument names for a command of no engine of its own (`list`, `info`,
/// `verify`, ...): for a directory, the pack this host's `PackCache` would use there.
pub fn host_pack_path(path: &Path) -> PathBuf {
    if names_dir(path) {
        pack_path(path, &engine::host_identity())
    } else {
        path.to_path_buf()
    }
}

/// Opens an existing pack of any identity.
pub fn any(ctx: &Context, path: &Path) -> Result<Pack, CliError> {
    Ok(ctx.pack_options().open_any(path)?)
}

/// Opens an existing pack of any identity to write it: it must be writable, and the
/// temporary files of writers that died beside it are swept first.
pub fn writable(ctx: &Context, path: &Path) -> Result<Pack, CliError> {
    let pack = any(ctx, path)?;
    prepare_write(path)?;
    Ok(pack)
}

/// Before writing the existing pack at `path`: it must be writable, and the temporary files
/// of writers that died beside it go.
pub fn prepare_write(path: &Path) -> Result<(), CliError> {
    check_writable(path)?;
    wasmpak::fs::remove_leftovers(path);
    Ok(())
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

/// Directories a command created on the way to the file it writes: removed again (those
/// still empty, deepest first) unless [`NewDirs::keep`] says the file is in place.
#[must_use = "the directories are removed when this is dropped, unless kept"]
pub struct NewDirs {
    created: Vec<PathBuf>,
}

impl NewDirs {
    /// Creates the missing directories above `file`.
    pub fn for_file(file: &Path) -> Result<NewDirs, CliError> {
        match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => NewDirs::create(dir),
            _ => Ok(NewDirs {
                created: Vec::new(),
            }),
        }
    }

    /// Creates `dir` and its missing parents.
    pub fn create(dir: &Path) -> Result<NewDirs, CliError> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            missing.push(path.to_path_buf());
            at = path.parent();
        }
        let mut dirs = NewDirs {
            created: Vec::new(),
        };
        for path in missing.into_iter().rev() {
            match std::fs::create_dir(&path) {
                Ok(()) => dirs.created.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => {
                    return Err(CliError::failed(format!(
                        "cannot create directory {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(dirs)
    }

    /// The file is in place: the directories stay.
    pub fn keep(mut self) {
        self.created.clear();
    }
}

impl Drop for NewDirs {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A temporary file beside a pack: one a writer is writing (`live`), or one a writer that
/// died left behind, which the next command that writes the pack removes.
#[derive(Debug)]
pub struct Leftover {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    /// Whether a live writer holds it (locked).
    pub live: bool,
}

/// The temporary files beside the pack at `path`, named as the library's durable writes name
/// them (`wasmpak::fs`: `.{file name}.{...}.tmp`, and the unlocked `.creating`/`.installing`
/// of earlier versions). Looks only: removing them is [`writable`]'s, under the rules of
/// `wasmpak::fs::remove_leftovers`.
pub fn leftovers(path: &Path) -> Vec<Leftover> {
    let (Some(name), dir) = (path.file_name(), dir_of(path)) else {
        return Vec::new();
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .filter(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            file_name.strip_prefix(&prefix).is_some_and(|rest| {
                [".tmp", ".creating", ".installing"]
                    .iter()
                    .any(|suffix| rest.ends_with(suffix))
            })
        })
        .filter_map(|entry| {
            let path = entry.path();
            let file = std::fs::File::open(&path).ok()?;
            let meta = file.metadata().ok()?;
            let live = file.try_lock_shared().is_err();
            Some(Leftover {
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                live,
                path,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
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
        .map_err(|e| explain(e, identity, purpose))
}

/// Opens the pack at `path` with `identity` to write it, creating it if there is none (its
/// directory must exist: see [`NewDirs`]); the temporary files of writers that died beside it
/// are swept first.
pub fn or_create(
    ctx: &Context,
    path: &Path,
    identity: &PackIdentity,
    purpose: Purpose,
) -> Result<Pack, CliError> {
    wasmpak::fs::remove_leftovers(path);
    ctx.pack_options()
        .open_or_create(path, identity)
        .map_err(|e| explain(e, identity, purpose))
}

/// A library error, with an identity mismatch spelled out for people who did not build the
/// pack: both identities, and what to do about it.
fn explain(error: wasmpak::Error, ours: &PackIdentity, purpose: Purpose) -> CliError {
    // Only a mismatch carries the pack's own identity.
    let Some(found) = error.found_identity() else {
        return error.into();
    };
    let path = error.path();
    let target = |identity: &PackIdentity| match identity.get("target") {
        Some(IdentityValue::Str(s)) => s.clone(),
        _ => String::from("no target"),
    };
    let (theirs, mine) = (target(found), target(ours));
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

/// Fails early, before minutes of compiling, if a pack cannot be created at `path`: the
/// nearest existing directory above it must be one this process can write (the missing ones
/// are created then).
pub fn check_creatable(path: &Path) -> Result<(), CliError> {
    let mut dir = dir_of(path);
    while !dir.exists() {
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
            _ => {
                dir = Path::new(".");
                break;
            }
        }
    }
    let shown = path.display();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CliError::failed(format!(
                "cannot create pack {shown}: {} is not a directory",
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

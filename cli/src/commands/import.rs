//! `wasmpak import`: move a runtime's existing module cache into a pack, without compiling.
//!
//! wasix's `FileSystemCache` (and ours) keeps one artifact per module at
//! `{dir}/{deterministic id}-{artifact format}-v{abi}/{KEY}.bin`, `KEY` the module hash in
//! hex. A source is such a cache directory, one of its engine directories, or `.bin` artifact
//! files. Each artifact is offered to wasmer with an engine of the pack's identity: what it
//! accepts goes into the pack in one commit, everything else is reported and left alone, so
//! a runtime switches to `PackCache` without recompiling what it had.
//!
//! Artifacts are trusted the way the runtime that wrote them trusts them (wasmer's
//! deserialization cannot tell a forged artifact from a real one): import only directories
//! your own runtime wrote.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use wasmer::Engine;
use wasmpak::{CacheErrorKind, EngineIdentity, FileSystemCache, Key};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, deserialize_detail};
use crate::open;
use crate::output::{self, say};

/// Arguments of `wasmpak import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to import into (created if missing), or a directory: then the pack in it
    /// named for the engine identity, as a PackCache looks for it there
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// Cache directories (wasix's `FileSystemCache` layout), engine directories in one, or
    /// `.bin` artifact files
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// One artifact file found in the sources.
struct Candidate {
    path: PathBuf,
    /// The engine directory it sits in (`{id}-{format}-v{abi}`), if it sits in one.
    engine_dir: Option<String>,
}

/// What becomes of one candidate.
enum Verdict {
    Import {
        key: Key,
        label: String,
        bytes: Bytes,
    },
    Skip(String),
    Refuse(String),
}

/// Runs `wasmpak import`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let engine = engine::build(&args.engine, None)?;
    let identity = EngineIdentity::of(&engine);
    let pack_identity = identity.to_pack_identity();
    let pack_path = open::pack_in(&args.pack, &identity)?;
    let ours = engine_dir_name(&identity);

    let mut candidates = Vec::new();
    for source in &args.sources {
        collect(source, &mut candidates)?;
    }
    let existing = open::existing_for(ctx, &pack_path, &pack_identity, open::Purpose::Build)?;
    let mut imports = Vec::new();
    let mut seen = HashSet::new();
    let (mut skipped, mut refused) = (0usize, 0usize);
    for candidate in &candidates {
        let shown = candidate.path.display();
        match judge(candidate, &engine, &ours)? {
            Verdict::Import { key, label, bytes } => {
                let present = match &existing {
                    Some(pack) => matches!(pack.get(&key), Ok(Some(_))),
                    None => false,
                };
                if present || !seen.insert(key) {
                    say!("skipped   {shown}  (already in the pack)")?;
                    skipped += 1;
                } else {
                    imports.push((key, label, bytes, candidate.path.clone()));
                }
            }
            Verdict::Skip(why) => {
                say!("skipped   {shown}  ({why})")?;
                skipped += 1;
            }
            Verdict::Refuse(why) => {
                say!("refused   {shown}  ({why})")?;
                refused += 1;
            }
        }
    }

    let mut imported_bytes = 0u64;
    let mut imported = 0usize;
    if !imports.is_empty() {
        open::check_can_write(&pack_path, existing.is_some())?;
        let pack = open::or_create(ctx, &pack_path, &pack_identity, open::Purpose::Build)?;
        let mut batch = pack.batch();
        for (key, label, bytes, path) in &imports {
            if batch.contains(key)? {
                say!(
                    "skipped   {}  (added by another process meanwhile)",
                    path.display()
                )?;
                skipped += 1;
                continue;
            }
            batch.insert_with_label(key, bytes, label)?;
            say!("imported  {key}  {}", path.display())?;
            imported += 1;
            imported_bytes += bytes.len() as u64;
        }
        batch.commit()?;
    }
    say!(
        "{}: imported {imported} ({}), refused {refused}, skipped {skipped}",
        pack_path.display(),
        output::bytes(imported_bytes),
    )?;
    say!("identity: {pack_identity}")
}

/// The directory wasix's `FileSystemCache` keeps `identity`'s artifacts in.
fn engine_dir_name(identity: &EngineIdentity) -> String {
    format!(
        "{}-{}-v{}",
        identity.deterministic_id(),
        identity.artifact_format(),
        identity.abi_version()
    )
}

/// Whether a directory name looks like one of wasix's engine directories: `...-v{digits}`.
fn is_engine_dir(name: &str) -> bool {
    name.rsplit_once("-v")
        .is_some_and(|(_, abi)| !abi.is_empty() && abi.bytes().all(|b| b.is_ascii_digit()))
}

/// Adds the artifact files `source` names: itself if it is a file; for a directory, its
/// `.bin` files and those of its subdirectories (a cache directory holds one per engine).
fn collect(source: &Path, out: &mut Vec<Candidate>) -> Result<(), CliError> {
    let shown = source.display();
    let meta = std::fs::metadata(source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::failed(format!("source {shown} does not exist")),
        _ => CliError::failed(format!("cannot read source {shown}: {e}")),
    })?;
    if !meta.is_dir() {
        out.push(Candidate {
            path: source.to_path_buf(),
            engine_dir: engine_dir_of(source),
        });
        return Ok(());
    }
    let mut files = Vec::new();
    for entry in read_dir(source)? {
        if entry.is_dir() {
            files.extend(read_dir(&entry)?.into_iter().filter(|p| is_artifact(p)));
        } else if is_artifact(&entry) {
            files.push(entry);
        }
    }
    files.sort();
    out.extend(files.into_iter().map(|path| Candidate {
        engine_dir: engine_dir_of(&path),
        path,
    }));
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::failed(format!("cannot list {}: {e}", dir.display())))?;
    entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::failed(format!("cannot list {}: {e}", dir.display())))
}

/// A `.bin` file (wasix's temporary files have other names).
fn is_artifact(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "bin")
}

/// The name of the engine directory `path` sits in, if it sits in one.
fn engine_dir_of(path: &Path) -> Option<String> {
    let parent = path.parent()?.file_name()?.to_str()?;
    is_engine_dir(parent).then(|| parent.to_string())
}

/// Decides what to do with one artifact file.
fn judge(candidate: &Candidate, engine: &Engine, ours: &str) -> Result<Verdict, CliError> {
    if let Some(dir) = &candidate.engine_dir
        && dir != ours
    {
        return Ok(Verdict::Skip(format!(
            "written by another engine or wasmer version ({dir}); this pack is for {ours}"
        )));
    }
    // A fresh engine per artifact: an engine keeps the code of every module it loads.
    let loader = engine::headless_like(engine);
    let module = match FileSystemCache::load_file(&candidate.path, &loader) {
        Ok(module) => module,
        Err(e) if e.kind() == CacheErrorKind::Deserialize => {
            return Ok(Verdict::Refuse(format!(
                "this host's wasmer refuses it: {}",
                deserialize_detail(&e)
            )));
        }
        Err(e) => {
            return Err(CliError::failed(format!(
                "cannot import {}: {e}",
                candidate.path.display()
            )));
        }
    };
    // What the pack stores is what wasmer accepted, as it serializes it (byte for byte the
    // file, for an artifact of this wasmer).
    let bytes = module.serialize().map_err(|e| {
        CliError::failed(format!("cannot import {}: {e}", candidate.path.display()))
    })?;
    let stem = candidate.path.file_stem().and_then(|s| s.to_str());
    let named_by_key = stem.and_then(|s| s.parse::<Key>().ok());
    // wasmer records the SHA-256 of the wasm it compiled: the key runtimes look modules up by.
    let recorded = module.info().hash.map(|hash| {
        let mut key = [0u8; 32];
        key.copy_from_slice(hash.as_bytes());
        Key::from_bytes(key)
    });
    let Some(key) = named_by_key.or(recorded) else {
        return Ok(Verdict::Skip(
            "cannot tell its key: name the file after its module hash, {KEY}.bin".to_string(),
        ));
    };
    let label = match (module.name(), named_by_key) {
        (Some(name), _) => name.to_string(),
        (None, Some(_)) => String::new(),
        (None, None) => candidate
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    Ok(Verdict::Import { key, label, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_wasix_engine_directories() {
        assert!(is_engine_dir("cranelift-opts-wasmer-universal-v12"));
        assert!(is_engine_dir("singlepass-x-v7"));
        assert!(!is_engine_dir("modules"));
        assert!(!is_engine_dir("cache-v"));
        assert!(!is_engine_dir("cache-v1x"));
        assert_eq!(
            engine_dir_of(Path::new("/c/cranelift-x-v3/AB.bin")).as_deref(),
            Some("cranelift-x-v3")
        );
        assert_eq!(engine_dir_of(Path::new("/c/mods/AB.bin")), None);
    }
}

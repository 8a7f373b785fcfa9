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

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;
use wasmer::Engine;
use wasmpak::{CacheErrorKind, EngineIdentity, FileSystemCache, Key};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, deserialize_detail};
use crate::interrupt;
use crate::open::{self, NewDirs};
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

/// One file found in the sources.
struct Candidate {
    path: PathBuf,
    /// The engine directory it sits in (`{id}-{format}-v{abi}`), if it sits in one.
    engine_dir: Option<String>,
    /// Why it is no artifact to offer wasmer, if it is not (a file in a source directory
    /// that is not a `.bin` artifact).
    not_artifact: Option<&'static str>,
}

/// The JSON document `import --json` prints.
#[derive(Serialize, Default)]
struct Imported {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    imported: Vec<ImportedFile>,
    skipped: Vec<Passed>,
    refused: Vec<Passed>,
}

#[derive(Serialize)]
struct ImportedFile {
    file: String,
    key: String,
    label: String,
    size: u64,
}

/// A file not imported, and why.
#[derive(Serialize)]
struct Passed {
    file: String,
    reason: String,
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
    let _stoppable = interrupt::stoppable();
    let engine = engine::build(&args.engine, None)?;
    let identity = EngineIdentity::of(&engine);
    let pack_identity = identity.to_pack_identity();
    let pack_path = open::pack_path(&args.pack, &identity);
    let ours = engine_dir_name(&identity);
    let mut report = Imported {
        pack: pack_path.display().to_string(),
        identity: output::identity_json(&pack_identity),
        ..Imported::default()
    };
    // Lines as they are found, unless stdout is for the JSON document.
    let say = output::lines(ctx.json);
    let skip = |report: &mut Imported, path: &Path, reason: String| {
        let line = format!("skipped   {}  ({reason})", path.display());
        report.skipped.push(Passed {
            file: path.display().to_string(),
            reason,
        });
        say(line)
    };

    let mut candidates = Vec::new();
    for source in &args.sources {
        collect(source, &mut candidates)?;
    }
    let existing = open::existing_for(ctx, &pack_path, &pack_identity, open::Purpose::Build)?;
    let mut imports = Vec::new();
    let mut seen = HashSet::new();
    for candidate in &candidates {
        interrupt::check()?;
        match judge(candidate, &engine, &ours)? {
            Verdict::Import { key, label, bytes } => {
                let present = match &existing {
                    Some(pack) => matches!(pack.get(&key), Ok(Some(_))),
                    None => false,
                };
                if present || !seen.insert(key) {
                    skip(&mut report, &candidate.path, "already in the pack".into())?;
                } else {
                    imports.push((key, label, bytes, candidate.path.clone()));
                }
            }
            Verdict::Skip(why) => skip(&mut report, &candidate.path, why)?,
            Verdict::Refuse(why) => {
                say(format!("refused   {}  ({why})", candidate.path.display()))?;
                report.refused.push(Passed {
                    file: candidate.path.display().to_string(),
                    reason: why,
                });
            }
        }
    }

    let mut imported_bytes = 0u64;
    if !imports.is_empty() {
        open::check_can_write(&pack_path, existing.is_some())?;
        let dirs = NewDirs::for_file(&pack_path)?;
        let pack = open::or_create(ctx, &pack_path, &pack_identity, open::Purpose::Build)?;
        let mut batch = pack.batch();
        let mut lines = Vec::new();
        for (key, label, bytes, path) in &imports {
            if batch.contains(key)? {
                skip(
                    &mut report,
                    path,
                    "added by another process meanwhile".into(),
                )?;
                continue;
            }
            batch.insert_with_label(key, bytes, label)?;
            lines.push(format!("imported  {key}  {}  ({label})", path.display()));
            report.imported.push(ImportedFile {
                file: path.display().to_string(),
                key: key.to_string(),
                label: label.clone(),
                size: bytes.len() as u64,
            });
            imported_bytes += bytes.len() as u64;
        }
        batch.commit()?;
        dirs.keep();
        for line in lines {
            say(line)?;
        }
    }
    if ctx.json {
        return output::print_json(&report);
    }
    say!(
        "{}: imported {} ({}), refused {}, skipped {}",
        pack_path.display(),
        report.imported.len(),
        output::bytes(imported_bytes),
        report.refused.len(),
        report.skipped.len(),
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

/// Adds the files `source` names: itself if it is a file; for a directory, its files and
/// those of its subdirectories (a cache directory holds one per engine), each but the `.bin`
/// artifacts to be reported as skipped.
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
            not_artifact: None,
        });
        return Ok(());
    }
    let mut files = Vec::new();
    for entry in read_dir(source)? {
        if entry.is_dir() {
            files.extend(read_dir(&entry)?.into_iter().filter(|p| !p.is_dir()));
        } else {
            files.push(entry);
        }
    }
    files.sort();
    out.extend(files.into_iter().map(|path| Candidate {
        engine_dir: engine_dir_of(&path),
        not_artifact: not_artifact(&path),
        path,
    }));
    Ok(())
}

/// Why a file in a source directory is not offered to wasmer, if it is not: caches keep
/// artifacts in `.bin` files (wasix's temporary files have other names).
fn not_artifact(path: &Path) -> Option<&'static str> {
    if !path.is_file() {
        Some("not a regular file")
    } else if path.extension().is_none_or(|e| e != "bin") {
        Some("not a .bin artifact")
    } else {
        None
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::failed(format!("cannot list {}: {e}", dir.display())))?;
    entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::failed(format!("cannot list {}: {e}", dir.display())))
}

/// The name of the engine directory `path` sits in, if it sits in one.
fn engine_dir_of(path: &Path) -> Option<String> {
    let parent = path.parent()?.file_name()?.to_str()?;
    is_engine_dir(parent).then(|| parent.to_string())
}

/// Decides what to do with one artifact file.
fn judge(candidate: &Candidate, engine: &Engine, ours: &str) -> Result<Verdict, CliError> {
    if let Some(why) = candidate.not_artifact {
        return Ok(Verdict::Skip(why.to_string()));
    }
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
    // The module's own name if it has one, else the file's name, as `build` labels by file
    // name: `rm` and `extract` can name the entry by it.
    let label = match module.name() {
        Some(name) => name.to_string(),
        None => candidate
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

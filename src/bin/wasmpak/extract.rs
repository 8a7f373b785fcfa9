//! `wasmpak extract`: copy one entry's artifact out of a pack, as `Module::serialize` wrote
//! it, for `Module::deserialize` or `wasmer run` elsewhere.
//!
//! The file appears complete or not at all: it is written beside its destination and renamed
//! into place, so a full disk never leaves half an artifact that a loader would trust.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::resolve::resolve;

/// Arguments of `wasmpak extract`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to read
    pub pack: PathBuf,
    /// The entry: a full key, a label, or a unique key prefix (at least 4 hex digits)
    #[arg(value_name = "KEY|LABEL")]
    pub entry: String,
    /// Where to write the artifact (`-` for stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `wasmpak extract`.
pub fn run(args: Args) -> Result<(), CliError> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(CliError::usage(
            "refusing to write a binary artifact to a terminal; redirect stdout or use -o FILE",
        ));
    }
    let pack = open::any(&args.pack)?;
    let entries: Vec<_> = pack.iter()?.collect();
    let entry = resolve(&pack, &entries, &args.entry)?;
    let bytes = pack.get(entry.key())?.ok_or_else(|| {
        CliError::new(format!(
            "entry {} was removed from pack {} while reading it",
            entry.key(),
            args.pack.display()
        ))
    })?;
    if to_stdout {
        let mut out = std::io::stdout().lock();
        return match out.write_all(&bytes).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CliError::new(format!("cannot write to stdout: {e}"))),
        };
    }
    write_atomically(&args.output, &bytes)?;
    say!(
        "extracted {} ({}) to {}: {}",
        entry.key(),
        entry.label(),
        args.output.display(),
        output::bytes(bytes.len() as u64)
    )
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let shown = path.display();
    if path.is_dir() {
        return Err(CliError::new(format!(
            "cannot write {shown}: it is a directory, expected a file name"
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| CliError::new(format!("cannot write {shown}: no file name")))?;
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        CliError::new(format!("cannot write {shown}: {e}"))
    })
}

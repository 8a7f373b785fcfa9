//! `wasmpak extract`: copy one entry's artifact out of a pack, as `Module::serialize` wrote
//! it, for `Module::deserialize` or `wasmer run` elsewhere.
//!
//! Without `-o`, the artifact goes to stdout when stdout is a pipe or a file, and otherwise to
//! `{label without extension}.bin` in the current directory (`hello.wasm` gives `hello.bin`).
//! A file appears complete or not at all: it is written beside its destination and renamed
//! into place, so a full disk never leaves half an artifact that a loader would trust.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::context::Context;
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
    /// Where to write the artifact (`-` for stdout) [default: stdout if it is not a terminal,
    /// else LABEL.bin]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `wasmpak extract`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let terminal = std::io::stdout().is_terminal();
    let to_stdout = match &args.output {
        Some(path) => path.as_os_str() == "-",
        None => !terminal,
    };
    if to_stdout && terminal {
        return Err(CliError::usage(
            "refusing to write a binary artifact to a terminal; redirect stdout or use -o FILE",
        ));
    }
    let pack = open::any(ctx, &args.pack)?;
    let entries: Vec<_> = pack.iter()?.collect();
    let entry = resolve(&pack, &entries, &args.entry)?;
    let output = match args.output {
        Some(path) => path,
        None => PathBuf::from(default_name(entry.label(), &entry.key().to_string())),
    };
    let bytes = pack.get(entry.key())?.ok_or_else(|| {
        CliError::failed(format!(
            "entry {} was removed from pack {} while reading it",
            entry.key(),
            args.pack.display()
        ))
    })?;
    if to_stdout {
        return output::write_stdout_bytes(&bytes);
    }
    write_file(&output, &bytes)?;
    say!(
        "extracted {} ({}) to {}: {}",
        entry.key(),
        entry.label(),
        output.display(),
        output::bytes(bytes.len() as u64)
    )
}

/// Writes the artifact to `path` through the library's durable write (beside it, synced,
/// renamed into place), with the file mode every artifact gets.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let shown = path.display();
    if path.is_dir() {
        return Err(CliError::failed(format!(
            "cannot write {shown}: it is a directory, expected a file name"
        )));
    }
    if path.file_name().is_none() {
        return Err(CliError::failed(format!(
            "cannot write {shown}: no file name"
        )));
    }
    wasmpak::fs::write_file(path, bytes, wasmpak::fs::FileMode::Public)
        .map_err(|e| CliError::failed(format!("cannot write {shown}: {e}")))
}

/// The file an entry is extracted to by default: its label's file name (never a path: a
/// label is whatever the pack says) with `.bin` for its extension, or the key's first 16
/// digits for an entry without a usable label.
fn default_name(label: &str, key: &str) -> String {
    let stem = Path::new(label)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|stem| !stem.is_empty() && !stem.starts_with('.'));
    format!("{}.bin", stem.unwrap_or(&key[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_stay_in_the_current_directory() {
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(default_name("hello.wasm", key), "hello.bin");
        assert_eq!(default_name("math.wat", key), "math.bin");
        assert_eq!(default_name("noext", key), "noext.bin");
        assert_eq!(default_name("../../etc/passwd", key), "passwd.bin");
        assert_eq!(default_name("/abs/x.wasm", key), "x.bin");
        for odd in ["", "..", ".", ".hidden", "dir/"] {
            let name = default_name(odd, key);
            assert!(
                name == "0123456789abcdef.bin" || name == "dir.bin",
                "{odd:?} gives {name}"
            );
        }
    }

    #[test]
    fn files_are_replaced_whole_and_directories_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.bin");
        write_file(&dest, b"first").unwrap();
        write_file(&dest, b"second").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.bin"], "no temporary file is left");
        let refused = write_file(dir.path(), b"x").unwrap_err();
        assert!(refused.to_string().contains("is a directory"), "{refused}");
    }
}

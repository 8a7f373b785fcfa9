//! Module files given on the command line: reading them, keying them, compiling them.
//!
//! The key is the SHA-256 of the file's bytes exactly as given (WAT text included), the same
//! `ModuleHash` a runtime computes from the bytes it holds, so the pack entry is found by a
//! runtime that loads that very file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};
use wasmpak::{Key, ModuleHash};

use crate::error::{CliError, one_line};

/// A module file read into memory.
#[derive(Debug)]
pub struct Input {
    /// The path as given.
    pub path: PathBuf,
    /// The file name, stored as the entry's label.
    pub label: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// `ModuleHash` of `bytes`.
    pub key: Key,
}

impl Input {
    /// Reads `path`, with errors that say what was expected there.
    pub fn read(path: &Path) -> Result<Input, CliError> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                CliError::failed(format!("input {shown} does not exist"))
            }
            _ => CliError::failed(format!("cannot read input {shown}: {e}")),
        })?;
        if meta.is_dir() {
            return Err(CliError::failed(format!(
                "input {shown} is a directory, expected a .wasm or .wat file"
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::failed(format!("cannot read input {shown}: {e}")))?;
        let label = path.file_name().map_or_else(
            || shown.to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let key = key_of(&bytes);
        Ok(Input {
            path: path.to_path_buf(),
            label,
            bytes,
            key,
        })
    }

    /// The module as wasm binary: the bytes themselves, or the WAT text translated.
    pub fn wasm(&self) -> Result<Cow<'_, [u8]>, CliError> {
        let shown = self.path.display();
        if self.bytes.starts_with(b"\0asm") {
            return Ok(Cow::Borrowed(&self.bytes));
        }
        if !looks_like_wat(&self.path, &self.bytes) {
            return Err(CliError::failed(format!(
                "{shown} is not a WebAssembly module: it does not start with the \\0asm magic \
                 and is not WebAssembly text"
            )));
        }
        wasmer::wat2wasm(&self.bytes)
            .map_err(|e| CliError::failed(format!("{shown} is not valid WebAssembly text: {e}")))
    }

    /// Compiles the module with `engine`.
    pub fn compile(&self, engine: &Engine) -> Result<Module, CliError> {
        let wasm = self.wasm()?;
        Module::new(engine, &wasm).map_err(|e| {
            CliError::failed(format!(
                "{} is not valid WebAssembly: {}",
                self.path.display(),
                one_line(&e.to_string())
            ))
        })
    }
}

/// The pack key of a module file's bytes.
pub fn key_of(bytes: &[u8]) -> Key {
    let hash = ModuleHash::new(bytes);
    let mut key = [0u8; 32];
    key.copy_from_slice(hash.as_bytes());
    Key::from_bytes(key)
}

/// Whether the bytes are meant as WebAssembly text: a `.wat`/`.wast` name, or UTF-8 whose first
/// token opens an s-expression or a comment.
fn looks_like_wat(path: &Path, bytes: &[u8]) -> bool {
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("wat" | "wast")
    ) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('(') || text.starts_with(";;")
}

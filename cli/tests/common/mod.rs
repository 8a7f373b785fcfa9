//! What the tool's tests share: running the binary and checking its output, scratch
//! directories with test modules, child processes, and prerequisites of the machine, which
//! fail a test unless opted out.
#![allow(dead_code)]

mod machine;
// Only the fleet's tests start children of their own.
#[cfg(feature = "object-store")]
mod process;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use wasmpak::Key;

pub use machine::{installed, is_root, missing, nobody_can_run, set_mode, unprivileged};
#[cfg(feature = "object-store")]
pub use process::{assert_passed, child, env_path, env_var, played};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wasmpak");

/// `answer` returns 42; `add` adds two i32s.
pub const ANSWER_WAT: &str = r#"(module
  (func (export "answer") (result i32) i32.const 42)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
"#;

/// Imports of every stubbable kind; `probe` calls the imported function and reads the
/// imported global and memory.
pub const IMPORTS_WAT: &str = r#"(module
  (import "env" "log" (func $log (param i32) (result i32)))
  (import "env" "memory" (memory 1))
  (import "env" "table" (table 1 funcref))
  (import "env" "base" (global $base i32))
  (func (export "probe") (result i32)
    i32.const 7 call $log global.get $base i32.add i32.const 0 i32.load i32.add i32.const 5 i32.add))
"#;

/// `boom` traps.
pub const TRAP_WAT: &str = r#"(module (func (export "boom") unreachable))"#;

/// A small module whose `answer` returns `n`: distinct bytes, distinct key.
pub fn numbered_wat(n: u32) -> String {
    format!("(module (func (export \"answer\") (result i32) i32.const {n}))\n")
}

/// [`numbered_wat`] in binary form.
pub fn numbered_wasm(n: u32) -> Vec<u8> {
    wasmer::wat2wasm(numbered_wat(n).as_bytes())
        .unwrap()
        .into_owned()
}

/// Calls `answer` on a fresh instance of `module`.
pub fn answer(engine: &wasmer::Engine, module: &wasmer::Module) -> i32 {
    let mut store = wasmer::Store::new(engine.clone());
    let instance = wasmer::Instance::new(&mut store, module, &wasmer::imports! {}).unwrap();
    instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap()
        .call(&mut store)
        .unwrap()
}

/// A key derived from a number, spread like a hash.
pub fn key(n: u64) -> Key {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Key::from_bytes(std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }))
}

/// A value of `len` bytes derived from a seed.
pub fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_add(0x2545_F491_4F6C_DD1D) | 1;
    (0..len / 8 + 1)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .take(len)
        .collect()
}

/// Command-line arguments of mixed types.
pub fn args<'a>(parts: &'a [&'a dyn AsRef<OsStr>]) -> Vec<&'a OsStr> {
    parts.iter().map(|p| p.as_ref()).collect()
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with the whole output unless the exit code is 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }

    /// Asserts the failure contract: the exit code, exactly one stderr line starting with
    /// `error:`, and no panic or backtrace. Returns the error line.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "wrong exit code:\n{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr must be one line:\n{self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        let lower = self.stderr.to_lowercase();
        for bad in ["panicked", "backtrace", "internal error", "rust_backtrace"] {
            assert!(!lower.contains(bad), "{bad} in stderr:\n{self:#?}");
        }
        lines[0]
    }

    /// Asserts [`Run::fails`], and that the error line names each of `words`.
    pub fn fails_naming(self, code: i32, words: &[&str]) -> Run {
        let line = self.fails(code);
        for word in words {
            assert!(line.contains(word), "{word:?} not in {line}");
        }
        self
    }

    /// Standard output, parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("JSON on stdout")
    }
}

/// A command for the binary, with `RUST_BACKTRACE=1` so that a panic would show its worst.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(BIN);
    command.args(args).env("RUST_BACKTRACE", "1");
    command
}

/// Runs the binary with `args`.
pub fn wasmpak<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    command(args).output().expect("run wasmpak").into()
}

/// A scratch directory with the test modules written into it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A new directory holding `answer.wat`, `imports.wat`, `trap.wat` and `answer.wasm` (the
    /// binary form of `answer.wat`).
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = Scratch { dir };
        scratch.write("answer.wat", ANSWER_WAT.as_bytes());
        scratch.write("imports.wat", IMPORTS_WAT.as_bytes());
        scratch.write("trap.wat", TRAP_WAT.as_bytes());
        let wasm = wasmer::wat2wasm(ANSWER_WAT.as_bytes()).unwrap();
        scratch.write("answer.wasm", &wasm);
        scratch
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file; returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A copy of the shared pack (answer.wat, answer.wasm, imports.wat) at `name`.
    pub fn pack(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::copy(shared_pack(), &path).unwrap();
        path
    }

    /// Opens the directory to other users, for the tests that run the binary as nobody.
    pub fn open_to_all(&self) {
        set_mode(self.dir.path(), 0o755);
    }
}

/// The pack every test that just needs one copies: built once by the binary.
fn shared_pack() -> &'static Path {
    static PACK: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    &PACK
        .get_or_init(|| {
            let scratch = Scratch::new();
            let pack = scratch.path("shared.wpk");
            wasmpak([
                "build".as_ref(),
                pack.as_os_str(),
                scratch.path("answer.wat").as_os_str(),
                scratch.path("answer.wasm").as_os_str(),
                scratch.path("imports.wat").as_os_str(),
            ])
            .ok();
            (scratch, pack)
        })
        .1
}

/// The pack key of a module file: lowercase hex SHA-256 of its bytes.
pub fn key_of(path: &Path) -> String {
    let hash = wasmpak::ModuleHash::new(std::fs::read(path).unwrap());
    wasmpak::Key::from_bytes(hash.as_bytes().try_into().unwrap()).to_string()
}

/// `list --json`, parsed.
pub fn listing(pack: &Path) -> serde_json::Value {
    let run = wasmpak(["list".as_ref(), "--json".as_ref(), pack.as_os_str()]).ok();
    serde_json::from_str(&run.stdout).expect("list --json prints JSON")
}

/// The labels of a pack's entries, sorted.
pub fn labels(pack: &Path) -> Vec<String> {
    let mut labels: Vec<String> = listing(pack)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap().to_string())
        .collect();
    labels.sort();
    labels
}

/// `info --json`, parsed.
pub fn info(pack: &Path) -> serde_json::Value {
    let run = wasmpak(["info".as_ref(), "--json".as_ref(), pack.as_os_str()]).ok();
    serde_json::from_str(&run.stdout).expect("info --json prints JSON")
}

/// Flips the bits of one byte of a file.
pub fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0xff;
    file.write_all_at(&byte, offset).unwrap();
}

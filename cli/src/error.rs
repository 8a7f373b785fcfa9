//! The one error type of the command-line tool: a message for stderr and a kind, which is the
//! exit code's category.
//!
//! Every failure becomes exactly one line, `error: <message>`, because the tool runs in CI
//! logs and scripts where a multi-line report or a backtrace hides the cause. Library errors
//! already name their pack in one line; wasmer's errors may span lines (WAT diagnostics draw
//! the source), so [`one_line`] folds them.

use std::fmt;

/// What kind of failure a [`CliError`] is: the category scripts see as the exit code.
///
/// Match on [`CliError::kind`], as on `std::io::Error::kind`; [`ErrorKind::exit_code`] is the
/// one place the kinds become numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Something failed: a missing or unreadable file, invalid wasm, a damaged pack, ...
    Failed,
    /// The command line asks for something impossible (clap's own errors are this kind too).
    Usage,
    /// `verify` found damage; `install` refused an unsigned, altered or damaged pack.
    VerifyFailed,
    /// `verify --deep` cannot load this pack's modules on this host (another target or CPU).
    CannotLoadHere,
    /// A bug in wasmpak (a panic).
    Internal,
}

impl ErrorKind {
    /// The process exit code. The numbers are part of the interface: scripts test them, and
    /// `--help` lists them.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::VerifyFailed => 3,
            ErrorKind::CannotLoadHere => 4,
            ErrorKind::Internal => 101,
        }
    }

    /// The kind's name in `--json` errors when no library error kind says more.
    fn name(self) -> &'static str {
        match self {
            ErrorKind::Failed => "error",
            ErrorKind::Usage => "usage",
            ErrorKind::VerifyFailed => "damaged",
            ErrorKind::CannotLoadHere => "cannot_load_here",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failure to report: `error: {message}` on stderr, then exit with its kind's code.
#[derive(Debug)]
pub struct CliError {
    kind: ErrorKind,
    message: String,
    /// The library's error kind, when a library error is the cause: `--json` names it.
    cause: Option<wasmpak::ErrorKind>,
}

impl CliError {
    /// A failure of `kind`, described by `message` (folded into one line).
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> CliError {
        CliError {
            kind,
            message: one_line(&message.to_string()),
            cause: None,
        }
    }

    /// A general failure ([`ErrorKind::Failed`], exit code 1).
    pub fn failed(message: impl fmt::Display) -> CliError {
        CliError::new(ErrorKind::Failed, message)
    }

    /// A command line that cannot be honoured ([`ErrorKind::Usage`], exit code 2).
    pub fn usage(message: impl fmt::Display) -> CliError {
        CliError::new(ErrorKind::Usage, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error as the JSON document `--json` commands print on stdout instead of their
    /// output: `{"error": {"message", "kind", "exit_code"}}`, `kind` the library's error kind
    /// in snake case (`not_found`, `corrupt`, ...) or this error's own.
    pub fn to_json(&self) -> serde_json::Value {
        let kind = match self.cause {
            Some(cause) => snake_case(&format!("{cause:?}")),
            None => self.kind.name().to_string(),
        };
        serde_json::json!({
            "error": {
                "message": self.message,
                "kind": kind,
                "exit_code": self.kind.exit_code(),
            }
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<wasmpak::Error> for CliError {
    fn from(error: wasmpak::Error) -> CliError {
        let hint = match error.kind() {
            wasmpak::ErrorKind::StorageFull => " (the disk or the file size limit is full)",
            wasmpak::ErrorKind::Insecure => {
                " (fix its permissions, or pass --allow-shared-write to open it anyway)"
            }
            _ => "",
        };
        CliError {
            cause: Some(error.kind()),
            ..CliError::failed(format!("{error}{hint}"))
        }
    }
}

impl From<wasmpak::CacheError> for CliError {
    /// A pack's error inside the cache's keeps its kind (for `--json`) and its hints.
    fn from(error: wasmpak::CacheError) -> CliError {
        match error {
            wasmpak::CacheError::Other(inner) => match inner.downcast::<wasmpak::Error>() {
                Ok(pack) => CliError::from(*pack),
                Err(other) => CliError::failed(other),
            },
            other => CliError::failed(other),
        }
    }
}

/// Why wasmer refused an artifact, in one line: the source of a cache error of kind
/// `Deserialize`, without the `failed to deserialize the module: ` its message starts with.
pub fn deserialize_detail(error: &wasmpak::CacheError) -> String {
    match std::error::Error::source(error) {
        Some(wasmer) => one_line(&wasmer.to_string()),
        None => one_line(&error.to_string()),
    }
}

/// What a library error of kind `Corrupt` says is damaged, without the `pack PATH is corrupt:`
/// its message starts with (the variant's `detail`, read through the message because callers
/// match on `kind()`, not on variants).
pub fn corrupt_detail(error: &wasmpak::Error) -> String {
    let text = error.to_string();
    let prefix = format!("pack {} is corrupt: ", error.path().display());
    match text.strip_prefix(&prefix) {
        Some(detail) => detail.to_string(),
        None => text,
    }
}

/// `IdentityMismatch` → `identity_mismatch`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Folds a possibly multi-line message into one line.
///
/// WAT and wasmparser diagnostics look like `message\n --> file:3:7\n  |\n3 | source\n  | ^`:
/// the first line is the message and the `-->` line the position; the drawing is dropped.
/// Any other extra lines are joined with `; `.
pub fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return String::from("unknown error");
    };
    let mut out = first.to_string();
    for line in lines {
        if let Some(at) = line.strip_prefix("-->") {
            let at = at.trim();
            let at = at.strip_prefix("<anon>:").unwrap_or(at);
            out.push_str(&format!(" (at {at})"));
        } else if line.starts_with('|')
            || line.chars().next().is_some_and(|c| c.is_ascii_digit()) && line.contains(" | ")
        {
            // The source drawing under a WAT diagnostic.
        } else {
            out.push_str("; ");
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_wat_diagnostics() {
        let text = "expected `(`\n     --> <anon>:1:1\n      |\n    1 | hello\n      | ^";
        assert_eq!(one_line(text), "expected `(` (at 1:1)");
    }

    #[test]
    fn json_errors_carry_kind_and_exit_code() {
        let (_dir, corrupt) = corrupt_pack_error();
        let detail = corrupt_detail(&corrupt);
        assert!(!detail.starts_with("pack "), "{detail}");
        assert_eq!(
            corrupt.to_string(),
            format!("pack {} is corrupt: {detail}", corrupt.path().display())
        );
        let message = corrupt.to_string();
        let error = CliError::from(corrupt);
        assert_eq!(error.kind(), ErrorKind::Failed);
        let json = error.to_json();
        assert_eq!(json["error"]["kind"], "corrupt");
        assert_eq!(json["error"]["exit_code"], 1);
        assert_eq!(json["error"]["message"], message.as_str());
        let usage = CliError::usage("x").to_json();
        assert_eq!(usage["error"]["kind"], "usage");
        assert_eq!(usage["error"]["exit_code"], 2);
        let damaged = CliError::new(ErrorKind::VerifyFailed, "x").to_json();
        assert_eq!(damaged["error"]["kind"], "damaged");
        assert_eq!(damaged["error"]["exit_code"], 3);
        assert_eq!(snake_case("IdentityMismatch"), "identity_mismatch");
    }

    /// A real `Corrupt` error: a pack whose only value has a flipped byte.
    fn corrupt_pack_error() -> (tempfile::TempDir, wasmpak::Error) {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wpk");
        let identity = wasmpak::PackIdentity::new().with("engine", "test");
        let key = wasmpak::Key::from_bytes([7; 32]);
        let pack = wasmpak::Pack::open_or_create(&path, &identity).unwrap();
        pack.insert(&key, &[1u8; 4096]).unwrap();
        let offset = pack.iter().unwrap().next().unwrap().offset();
        drop(pack);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[2], offset + 100).unwrap();
        let pack = wasmpak::Pack::open(&path, &identity).unwrap();
        let error = pack.get(&key).unwrap_err();
        assert_eq!(error.kind(), wasmpak::ErrorKind::Corrupt);
        (dir, error)
    }

    #[test]
    fn joins_other_lines() {
        assert_eq!(one_line("a\n\n b \n"), "a; b");
        assert_eq!(one_line(""), "unknown error");
    }
}

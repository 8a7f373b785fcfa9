//! The one error type of the command-line tool: a message for stderr and an exit code.
//!
//! Every failure becomes exactly one line, `error: <message>`, because the tool runs in CI
//! logs and scripts where a multi-line report or a backtrace hides the cause. Library errors
//! already name their pack in one line; wasmer's errors may span lines (WAT diagnostics draw
//! the source), so [`one_line`] folds them.

use std::fmt;

/// How the process ends. The numbers are part of the interface: scripts test them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Something failed: a missing or unreadable file, invalid wasm, a damaged pack, ...
    Error = 1,
    /// The command line asks for something impossible (clap uses 2 for its own errors too).
    Usage = 2,
    /// `verify` found damage.
    VerifyFailed = 3,
    /// `verify --deep` cannot load this pack's modules on this host (another target or CPU).
    CannotVerifyHere = 4,
}

/// A failure to report: `error: {message}` on stderr, then exit with `exit`.
#[derive(Debug)]
pub struct CliError {
    exit: Exit,
    message: String,
    /// What kind of failure, for `--json` output: the library's error kind in snake case
    /// (`not_found`, `corrupt`, ...) or the exit code's meaning.
    kind: String,
}

impl CliError {
    /// A general failure (exit code 1).
    pub fn new(message: impl fmt::Display) -> CliError {
        CliError::with_exit(Exit::Error, message)
    }

    /// A command line that cannot be honoured (exit code 2).
    pub fn usage(message: impl fmt::Display) -> CliError {
        CliError::with_exit(Exit::Usage, message)
    }

    /// A failure with a specific exit code.
    pub fn with_exit(exit: Exit, message: impl fmt::Display) -> CliError {
        let kind = match exit {
            Exit::Error => "error",
            Exit::Usage => "usage",
            Exit::VerifyFailed => "damaged",
            Exit::CannotVerifyHere => "cannot_load_here",
        };
        CliError {
            exit,
            message: one_line(&message.to_string()),
            kind: kind.to_string(),
        }
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The error as the JSON document `--json` commands print on stdout instead of their
    /// output: `{"error": {"message", "kind", "exit_code"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "kind": self.kind,
                "exit_code": self.exit as u8,
            }
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<wasmpak::Error> for CliError {
    fn from(error: wasmpak::Error) -> CliError {
        let hint = match error.kind() {
            wasmpak::ErrorKind::StorageFull => " (the disk or the file size limit is full)",
            wasmpak::ErrorKind::Insecure => {
                " (fix its permissions, or pass --allow-shared-write to open it anyway)"
            }
            _ => "",
        };
        let mut cli = CliError::new(format!("{error}{hint}"));
        cli.kind = snake_case(&format!("{:?}", error.kind()));
        cli
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
        let error = CliError::from(wasmpak::Error::Corrupt {
            path: "a.wpk".into(),
            detail: "bad".into(),
        });
        let json = error.to_json();
        assert_eq!(json["error"]["kind"], "corrupt");
        assert_eq!(json["error"]["exit_code"], 1);
        assert_eq!(json["error"]["message"], "pack a.wpk is corrupt: bad");
        assert_eq!(CliError::usage("x").to_json()["error"]["kind"], "usage");
        assert_eq!(snake_case("IdentityMismatch"), "identity_mismatch");
    }

    #[test]
    fn joins_other_lines() {
        assert_eq!(one_line("a\n\n b \n"), "a; b");
        assert_eq!(one_line(""), "unknown error");
    }
}

//! Human and JSON output: aligned tables, sizes in binary units, durations, and a stdout
//! writer that survives a closed pipe.
//!
//! Humans get `7.2 KiB` and `1.35 ms`; JSON gets exact integers (bytes, nanoseconds) so
//! scripts never parse units.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::time::Duration;

use wasmpak::{IdentityValue, PackIdentity};

use crate::error::CliError;

/// Prints a line on stdout; see [`write_stdout`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

/// Prints a status line on stderr, where it stays out of the results and a program's own
/// output. A closed stderr is ignored: the status is a courtesy, the work is what counts.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use tell;

/// Writes to stdout. A closed pipe (`wasmpak list p.wpk | head -1`) is not an error: the
/// reader has what it wanted, and a half-done `build` must still commit. Any other write
/// failure (stdout redirected to a full disk) is.
pub fn write_stdout(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    stdout(|out| out.write_fmt(args))
}

/// Writes raw bytes (an artifact) to stdout, as [`write_stdout`] writes text.
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<(), CliError> {
    stdout(|out| out.write_all(bytes))
}

/// Runs `write` on the locked stdout and flushes it; a closed pipe is success.
fn stdout(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failed(format!("cannot write to stdout: {e}"))),
    }
}

/// Prints `value` as one pretty-printed JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot encode JSON: {e}")))?;
    say!("{text}")
}

/// A pack identity as a JSON object, one member per field in name order: strings stay
/// strings, numbers numbers.
pub fn identity_json(identity: &PackIdentity) -> BTreeMap<String, serde_json::Value> {
    identity
        .fields()
        .map(|(name, value)| {
            let value = match value {
                IdentityValue::Str(s) => serde_json::Value::from(s.as_str()),
                IdentityValue::Num(n) => serde_json::Value::from(*n),
            };
            (name.to_string(), value)
        })
        .collect()
}

/// `1 entry`, `3 entries`: a count with the noun that agrees with it.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1536` → `1.5 KiB`: binary units, three significant digits, exact below 1 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A duration with a unit that keeps three significant digits: `850 ns`, `12.3 µs`,
/// `1.35 ms`, `2.10 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        return format!("{ns:.0} ns");
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Parses a size for `--max-bytes`: a byte count with an optional unit, `K`/`KB`/`KiB` and so
/// on up to `T`, all binary (1024-based), case-insensitive: `500M`, `2GiB`, `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("invalid size {text:?}: unknown unit {unit:?}")),
    };
    let invalid = || format!("invalid size {text:?}: expected a number of bytes such as 500M");
    if number.is_empty() {
        return Err(invalid());
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_shl(shift)
            .filter(|v| v >> shift == whole)
            .ok_or_else(invalid);
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let scaled = value * (1u64 << shift) as f64;
    if !scaled.is_finite() || scaled >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(scaled as u64)
}

/// How a table column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table with a header row, columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The table as lines separated by two spaces, without trailing blanks.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.columns[i].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                match self.columns[i].1 {
                    Align::Left => {
                        out.push_str(cell);
                        out.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        out.extend(std::iter::repeat_n(' ', pad));
                        out.push_str(cell);
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut lines = vec![line(self.columns.iter().map(|c| c.0.as_str()).collect())];
        lines.extend(
            self.rows
                .iter()
                .map(|r| line(r.iter().map(String::as_str).collect())),
        );
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(7 * 1024 * 1024 + 400 * 1024), "7.4 MiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
    }

    #[test]
    fn durations_keep_three_digits() {
        assert_eq!(duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(duration(Duration::from_nanos(12_340)), "12.3 µs");
        assert_eq!(duration(Duration::from_micros(1_350)), "1.35 ms");
        assert_eq!(duration(Duration::from_millis(2_100)), "2.10 s");
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999T").is_err());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("NAME", Align::Left), ("SIZE", Align::Right)]);
        t.row(vec!["a".into(), "1 B".into()]);
        t.row(vec!["long-name".into(), "10 KiB".into()]);
        assert_eq!(
            t.render(),
            "NAME         SIZE\na             1 B\nlong-name  10 KiB"
        );
    }
}

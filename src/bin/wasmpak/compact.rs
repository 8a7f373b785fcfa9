//! `wasmpak compact`: rewrite a pack without its dead bytes, optionally down to size limits.
//!
//! Eviction order is least recently used first, from the recency sidecar that runtimes using
//! `PackCache` keep next to the pack (`{pack}.recency`); entries never loaded go first. Safe
//! while other processes read the pack: they move to the new file on their next lookup.

use std::collections::HashMap;
use std::path::PathBuf;

use wasmpak::{Key, Retention};

use crate::error::CliError;
use crate::open;
use crate::output::{self, say};

/// Arguments of `wasmpak compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to compact
    pub pack: PathBuf,
    /// Evict least recently used entries until the live modules take at most this much
    /// (bytes, or with a unit: 500M, 2GiB)
    #[arg(long, value_name = "SIZE", value_parser = output::parse_size)]
    pub max_bytes: Option<u64>,
    /// Evict least recently used entries until at most this many remain
    #[arg(long, value_name = "N")]
    pub max_entries: Option<u64>,
}

/// Runs `wasmpak compact`.
pub fn run(args: Args) -> Result<(), CliError> {
    let pack = open::any(&args.pack)?;
    open::check_writable(&args.pack)?;
    let labels: HashMap<Key, String> = pack
        .iter()?
        .map(|e| (*e.key(), e.label().to_string()))
        .collect();
    let mut retention = Retention::new();
    if let Some(bytes) = args.max_bytes {
        retention = retention.max_live_bytes(bytes);
    }
    if let Some(entries) = args.max_entries {
        retention = retention.max_entries(entries);
    }
    retention.touch_from_sidecar(&args.pack);
    let report = pack.compact_with(&retention)?;
    for key in report.evicted() {
        match labels.get(key).filter(|l| !l.is_empty()) {
            Some(label) => say!("evicted  {key}  {label}")?,
            None => say!("evicted  {key}")?,
        }
    }
    say!(
        "{}: {} -> {}; kept {}, evicted {}, dropped {} unreadable",
        args.pack.display(),
        output::bytes(report.size_before()),
        output::bytes(report.size_after()),
        report.kept(),
        report.evicted().len(),
        report.dropped_unreadable()
    )
}

//! `wasmpak compact`: rewrite a pack without its dead bytes, optionally down to size limits.
//!
//! Eviction order is least recently used first, from the recency sidecar that runtimes using
//! `PackCache` keep next to the pack (`{pack}.recency`); entries never loaded go first. Safe
//! while other processes read the pack: they move to the new file on their next lookup.
//! Damaged entries cannot be copied: they are dropped, and named, so they can be rebuilt.

use std::collections::HashSet;
use std::path::PathBuf;

use wasmpak::{Key, Retention};

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::resolve::Labels;

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
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let pack = open::any(ctx, &args.pack)?;
    open::check_writable(&args.pack)?;
    // Keys come from the index alone; labels need every record header, so a damaged one
    // costs the labels, not the report.
    let before: Vec<Key> = pack.keys().unwrap_or_default();
    let labels = Labels::of(&pack);
    let mut retention = Retention::new();
    if let Some(bytes) = args.max_bytes {
        retention = retention.max_live_bytes(bytes);
    }
    if let Some(entries) = args.max_entries {
        retention = retention.max_entries(entries);
    }
    retention.touch_from_sidecar(&args.pack);
    let report = pack.compact_with(&retention)?;
    let named = |key: &Key| match labels.get(key) {
        Some(label) => format!("{key}  {label}"),
        None => key.to_string(),
    };
    for key in report.evicted() {
        say!("evicted  {}", named(key))?;
    }
    // What was listed before, not evicted, and is gone now could not be copied: damaged.
    let evicted: HashSet<&Key> = report.evicted().iter().collect();
    let kept: HashSet<Key> = pack.keys()?.into_iter().collect();
    let damaged: Vec<&Key> = before
        .iter()
        .filter(|key| !evicted.contains(key) && !kept.contains(key))
        .collect();
    for key in &damaged {
        say!("dropped  {}  (damaged; rebuild it)", named(key))?;
    }
    let dropped = report.dropped_unreadable().max(damaged.len() as u64);
    say!(
        "{}: {} -> {}; kept {}, evicted {}, dropped {}",
        args.pack.display(),
        output::bytes(report.size_before()),
        output::bytes(report.size_after()),
        report.kept(),
        report.evicted().len(),
        output::count(dropped, "damaged entry", "damaged entries")
    )?;
    if dropped > 0 {
        eprintln!(
            "warning: {} dropped from {}: rebuild {} with `wasmpak build`",
            output::count(dropped, "damaged entry was", "damaged entries were"),
            args.pack.display(),
            if dropped == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

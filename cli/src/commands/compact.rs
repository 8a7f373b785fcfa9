//! `wasmpak compact`: rewrite a pack without its dead bytes, optionally down to size limits.
//!
//! Eviction order is least recently used first, from the recency sidecar that runtimes using
//! `PackCache` keep next to the pack (`{pack}.recency`); entries never loaded go first. Safe
//! while other processes read the pack: they move to the new file on their next lookup.
//! Damaged entries cannot be copied: they are dropped, and named, so they can be rebuilt.
//!
//! Interrupted (SIGINT, SIGTERM), a compaction that has not started does not start, and one
//! under way is finished: the library's compaction cannot stop halfway, and finishing it
//! leaves the compacted pack and no temporary file, where dying would leave the file behind.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;
use wasmpak::{Key, Retention};

use crate::context::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::open;
use crate::output::{self, EntryRef, say};
use crate::progress::Progress;
use crate::resolve::Labels;

/// Arguments of `wasmpak compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to compact (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// Evict least recently used entries until the live modules take at most this much
    /// (bytes, or with a unit: 500M, 2GiB)
    #[arg(long, value_name = "SIZE", value_parser = output::parse_size)]
    pub max_bytes: Option<u64>,
    /// Evict least recently used entries until at most this many remain
    #[arg(long, value_name = "N")]
    pub max_entries: Option<u64>,
}

/// The JSON document `compact --json` prints; sizes in bytes.
#[derive(Serialize)]
struct Compacted {
    pack: String,
    size_before: u64,
    size_after: u64,
    kept: u64,
    evicted: Vec<EntryRef>,
    /// Damaged entries that could not be copied.
    dropped: Vec<EntryRef>,
    /// Entries of a damaged newest commit that checked out and were kept.
    recovered: u64,
}

/// Runs `wasmpak compact`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    let path = open::host_pack_path(&args.pack);
    let pack = open::writable(ctx, &path)?;
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
    retention.touch_from_sidecar(&path);
    interrupt::check()?;
    let bar = Progress::new(ctx).spinner(&format!("compacting {}", path.display()), None);
    let report = pack.compact_with(&retention)?;
    bar.done();
    let named = |key: &Key| match labels.get(key) {
        Some(label) => format!("{key}  {label}"),
        None => key.to_string(),
    };
    let reference = |key: &Key| EntryRef {
        key: key.to_string(),
        label: labels.get(key).unwrap_or_default().to_string(),
    };
    // What was listed before, not evicted, and is gone now could not be copied: damaged.
    let evicted: HashSet<&Key> = report.evicted().iter().collect();
    let kept: HashSet<Key> = pack.keys()?.into_iter().collect();
    let damaged: Vec<&Key> = before
        .iter()
        .filter(|key| !evicted.contains(key) && !kept.contains(key))
        .collect();
    let dropped = report.dropped_unreadable().max(damaged.len() as u64);
    if dropped > 0 {
        eprintln!(
            "warning: {} dropped from {}: rebuild {} with `wasmpak build`",
            output::count(dropped, "damaged entry was", "damaged entries were"),
            path.display(),
            if dropped == 1 { "it" } else { "them" }
        );
    }
    if ctx.json {
        return output::print_json(&Compacted {
            pack: path.display().to_string(),
            size_before: report.size_before(),
            size_after: report.size_after(),
            kept: report.kept(),
            evicted: report.evicted().iter().map(reference).collect(),
            dropped: damaged.iter().map(|key| reference(key)).collect(),
            recovered: report.recovered(),
        });
    }
    for key in report.evicted() {
        say!("evicted  {}", named(key))?;
    }
    for key in &damaged {
        say!("dropped  {}  (damaged; rebuild it)", named(key))?;
    }
    say!(
        "{}: {} -> {}; kept {}, evicted {}, dropped {}",
        path.display(),
        output::bytes(report.size_before()),
        output::bytes(report.size_after()),
        report.kept(),
        report.evicted().len(),
        output::count(dropped, "damaged entry", "damaged entries")
    )?;
    if report.recovered() > 0 {
        say!(
            "repaired: {} of the damaged newest commit checked out and were kept",
            output::count(report.recovered(), "entry", "entries")
        )?;
    }
    Ok(())
}

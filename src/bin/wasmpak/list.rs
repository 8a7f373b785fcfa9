//! `wasmpak list`: the entries of a pack, one per line, or as one JSON document.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::CliError;
use crate::open;
use crate::output::{self, Align, Table, say};

/// Arguments of `wasmpak list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to list
    pub pack: PathBuf,
    /// Print one JSON document: {"pack", "identity", "entries": [{"key", "label", "size",
    /// "offset", "value_offset"}]}
    #[arg(long)]
    pub json: bool,
}

/// The JSON document `list --json` prints.
#[derive(Serialize)]
struct Listing {
    pack: String,
    identity: String,
    entries: Vec<EntryJson>,
}

/// One entry in `list --json`; sizes and offsets in bytes.
#[derive(Serialize)]
struct EntryJson {
    key: String,
    label: String,
    size: u64,
    /// Where the entry's record starts: the offset `verify` names when it is damaged.
    offset: u64,
    /// Where the artifact's bytes start (`size` bytes from there).
    value_offset: u64,
}

/// Runs `wasmpak list`.
pub fn run(args: Args) -> Result<(), CliError> {
    let pack = open::any(&args.pack)?;
    let entries: Vec<_> = pack.iter()?.collect();
    if args.json {
        return output::print_json(&Listing {
            pack: args.pack.display().to_string(),
            identity: pack.identity().to_string(),
            entries: entries
                .iter()
                .map(|e| EntryJson {
                    key: e.key().to_string(),
                    label: e.label().to_string(),
                    size: e.size(),
                    offset: e.record_offset(),
                    value_offset: e.offset(),
                })
                .collect(),
        });
    }
    let mut table = Table::new(&[
        ("KEY", Align::Left),
        ("LABEL", Align::Left),
        ("SIZE", Align::Right),
        ("OFFSET", Align::Right),
    ]);
    let mut total = 0u64;
    for e in &entries {
        total += e.size();
        table.row(vec![
            e.key().to_string(),
            e.label().to_string(),
            output::bytes(e.size()),
            e.record_offset().to_string(),
        ]);
    }
    if !entries.is_empty() {
        say!("{}", table.render())?;
    }
    say!(
        "{} {}, {}",
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        output::bytes(total)
    )
}

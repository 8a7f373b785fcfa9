//! `wasmpak list`: the entries of a pack, one per line, or as one JSON document.

use std::path::PathBuf;

use serde::Serialize;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, Align, Table, say};

/// Arguments of `wasmpak list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to list
    pub pack: PathBuf,
    /// Print one JSON document: {"pack", "identity", "entries": [{"key", "label", "size",
    /// "offset", "value_offset", "signed_by"}]}
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
    /// Key ids of the valid signatures that list this entry with its size and label.
    signed_by: Vec<String>,
}

/// Runs `wasmpak list`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let pack = open::any(ctx, &args.pack)?;
    let entries: Vec<_> = pack.iter()?.collect();
    // A damaged signature chain vouches for nothing; the listing itself still stands.
    let signatures = pack.signatures().unwrap_or_default();
    // Who vouches for an entry: a valid signature listing it as it is. Whether its bytes still
    // hash to what was signed is `verify --key`'s question.
    let signed_by = |e: &wasmpak::Entry| -> Vec<String> {
        signatures
            .iter()
            .filter(|s| !matches!(s.status(), wasmpak::SignatureStatus::Invalid(_)))
            .filter(|s| {
                s.find(e.key())
                    .is_some_and(|signed| signed.len == e.size() && signed.label == e.label())
            })
            .map(|s| s.signer_id())
            .collect()
    };
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
                    signed_by: signed_by(e),
                })
                .collect(),
        });
    }
    let mut table = Table::new(&[
        ("KEY", Align::Left),
        ("LABEL", Align::Left),
        ("SIZE", Align::Right),
        ("OFFSET", Align::Right),
        ("SIGNED BY", Align::Left),
    ]);
    let mut total = 0u64;
    for e in &entries {
        total += e.size();
        table.row(vec![
            e.key().to_string(),
            e.label().to_string(),
            output::bytes(e.size()),
            e.record_offset().to_string(),
            match signed_by(e) {
                ids if ids.is_empty() => "-".to_string(),
                ids => ids.join(","),
            },
        ]);
    }
    if !entries.is_empty() {
        say!("{}", table.render())?;
    }
    say!(
        "{}, {}",
        output::count(entries.len() as u64, "entry", "entries"),
        output::bytes(total)
    )
}

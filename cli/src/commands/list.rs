//! `wasmpak list`: the entries of a pack, one per line, or as one JSON document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, Align, EntryJson, Table, say};

/// Arguments of `wasmpak list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to list (a directory: the pack this host's PackCache uses there). With
    /// --json: {"pack", "identity", "entries": [{"key", "label", "size", "offset",
    /// "value_offset", "signed_by"}], "degraded": null or {"lost_commit", "reason",
    /// "lost_keys"}}
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
}

/// The JSON document `list --json` prints.
#[derive(Serialize)]
struct Listing {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    entries: Vec<EntryJson>,
    /// Set when the pack's newest commit was found damaged and the listing is of the one
    /// before it, without the keys the damaged one wrote.
    degraded: Option<Degraded>,
}

/// `list --json`'s `degraded`: the damaged commit and the keys it wrote.
#[derive(Serialize)]
struct Degraded {
    lost_commit: u64,
    reason: String,
    lost_keys: Vec<String>,
}

/// Runs `wasmpak list`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let path = open::host_pack_path(&args.pack);
    let pack = open::any(ctx, &path)?;
    let entries = EntryJson::all(&pack)?;
    let lost = pack.lost_commit()?;
    if ctx.json {
        return output::print_json(&Listing {
            pack: path.display().to_string(),
            identity: output::identity_json(pack.identity()),
            entries,
            degraded: lost.map(|lost| Degraded {
                lost_commit: lost.generation(),
                reason: lost.reason().to_string(),
                lost_keys: lost.written().iter().map(|e| e.key().to_string()).collect(),
            }),
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
        total += e.size;
        table.row(vec![
            e.key.clone(),
            e.label.clone(),
            output::bytes(e.size),
            e.offset.to_string(),
            match e.signed_by.as_slice() {
                [] => "-".to_string(),
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
    )?;
    if let Some(lost) = lost {
        say!("degraded: {lost}; `wasmpak verify` names them, `wasmpak compact` repairs the pack")?;
    }
    Ok(())
}

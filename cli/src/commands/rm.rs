//! `wasmpak rm`: remove entries, named by key, label or key prefix, in one commit.
//!
//! Every name is resolved before anything is written, so a typo in the third name removes
//! nothing (with `-f`, a name that matches nothing is skipped instead, as `rm -f` does). The
//! space is reclaimed by the next `compact`.

use std::path::PathBuf;

use serde::Serialize;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, EntryRef, say};
use crate::resolve::{find, resolve};

/// Arguments of `wasmpak rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to remove from (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// Entries to remove: full keys, labels, or unique key prefixes (at least 4 hex digits)
    #[arg(required = true, value_name = "KEY|LABEL")]
    pub entries: Vec<String>,
    /// Skip names that match no entry instead of failing (an ambiguous name still fails)
    #[arg(short, long)]
    pub force: bool,
}

/// The JSON document `rm --json` prints.
#[derive(Serialize)]
struct Removed {
    pack: String,
    removed: Vec<EntryRef>,
    entries_left: u64,
}

/// Runs `wasmpak rm`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let path = open::host_pack_path(&args.pack);
    let pack = open::any(ctx, &path)?;
    let entries: Vec<_> = pack.iter()?.collect();
    let mut chosen = Vec::new();
    for name in &args.entries {
        let entry = if args.force {
            match find(&pack, &entries, name)? {
                Some(entry) => entry,
                None => continue,
            }
        } else {
            resolve(&pack, &entries, name)?
        };
        if !chosen
            .iter()
            .any(|c: &&wasmpak::Entry| c.key() == entry.key())
        {
            chosen.push(entry);
        }
    }
    if !chosen.is_empty() {
        open::prepare_write(&path)?;
        let mut batch = pack.batch();
        for entry in &chosen {
            batch.remove(entry.key())?;
        }
        batch.commit()?;
    }
    let left = pack.len()?;
    if ctx.json {
        return output::print_json(&Removed {
            pack: path.display().to_string(),
            removed: chosen
                .iter()
                .map(|e| EntryRef {
                    key: e.key().to_string(),
                    label: e.label().to_string(),
                })
                .collect(),
            entries_left: left,
        });
    }
    for entry in &chosen {
        say!("removed  {}  {}", entry.key(), entry.label())?;
    }
    say!(
        "{}: removed {}, {} left",
        path.display(),
        chosen.len(),
        output::count(left, "entry", "entries")
    )
}

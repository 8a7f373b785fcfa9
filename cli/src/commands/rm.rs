//! `wasmpak rm`: remove entries, named by key, label or key prefix, in one commit.
//!
//! Every name is resolved before anything is written, so a typo in the third name removes
//! nothing (with `-f`, a name that matches nothing is skipped instead, as `rm -f` does). The
//! space is reclaimed by the next `compact`.

use std::path::PathBuf;

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};
use crate::resolve::{find, resolve};

/// Arguments of `wasmpak rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to remove from
    pub pack: PathBuf,
    /// Entries to remove: full keys, labels, or unique key prefixes (at least 4 hex digits)
    #[arg(required = true, value_name = "KEY|LABEL")]
    pub entries: Vec<String>,
    /// Skip names that match no entry instead of failing (an ambiguous name still fails)
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `wasmpak rm`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let pack = open::any(ctx, &args.pack)?;
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
    if chosen.is_empty() {
        return say!(
            "{}: removed 0, {} left",
            args.pack.display(),
            output::count(pack.len()?, "entry", "entries")
        );
    }
    open::check_writable(&args.pack)?;
    let mut batch = pack.batch();
    for entry in &chosen {
        batch.remove(entry.key())?;
    }
    batch.commit()?;
    for entry in &chosen {
        say!("removed  {}  {}", entry.key(), entry.label())?;
    }
    say!(
        "{}: removed {}, {} left",
        args.pack.display(),
        chosen.len(),
        output::count(pack.len()?, "entry", "entries")
    )
}

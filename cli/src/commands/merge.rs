//! `wasmpak merge`: combine packs of one engine identity into one, e.g. packs built by
//! separate CI jobs.
//!
//! Every input value is read and checksummed before the output is written, so a damaged
//! input leaves the output untouched. Values are copied zero-copy from the inputs' mappings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use wasmpak::{Key, Pack, PackIdentity};

use crate::context::Context;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};

/// Arguments of `wasmpak merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to merge into (created if missing)
    pub out: PathBuf,
    /// Packs to copy entries from; all of the same identity as each other and as OUT
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
}

/// One value to copy.
struct Pending {
    key: Key,
    label: String,
    value: bytes::Bytes,
}

/// Runs `wasmpak merge`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let inputs = args
        .inputs
        .iter()
        .map(|path| open::any(ctx, path))
        .collect::<Result<Vec<Pack>, _>>()?;
    let first = &inputs[0];
    let identity = first.identity().clone();
    for pack in &inputs[1..] {
        if *pack.identity() != identity {
            return Err(different(
                first.path(),
                &identity,
                pack.path(),
                pack.identity(),
            ));
        }
    }
    let out = open::any_if_exists(ctx, &args.out)?;
    if let Some(out) = &out
        && *out.identity() != identity
    {
        return Err(different(
            &args.out,
            out.identity(),
            first.path(),
            &identity,
        ));
    }
    open::check_can_write(&args.out, out.is_some())?;

    let mut seen = HashSet::new();
    let mut copies = Vec::new();
    let mut skipped = 0usize;
    for pack in &inputs {
        for entry in pack.iter()? {
            let key = *entry.key();
            let present = match &out {
                Some(out) => out.contains(&key)?,
                None => false,
            };
            if present || !seen.insert(key) {
                skipped += 1;
                continue;
            }
            let value = pack.get(&key)?.ok_or_else(|| {
                CliError::failed(format!(
                    "entry {key} was removed from pack {} while merging",
                    pack.path().display()
                ))
            })?;
            copies.push(Pending {
                key,
                label: entry.label().to_string(),
                value,
            });
        }
    }

    let mut added = 0usize;
    let mut bytes = 0u64;
    if !copies.is_empty() {
        let out = open::or_create(ctx, &args.out, &identity, open::Purpose::Build)?;
        let mut batch = out.batch();
        for copy in &copies {
            if batch.contains(&copy.key)? {
                skipped += 1;
                continue;
            }
            batch.insert_with_label(&copy.key, &copy.value, &copy.label)?;
            added += 1;
            bytes += copy.value.len() as u64;
        }
        batch.commit()?;
    } else if out.is_none() {
        open::or_create(ctx, &args.out, &identity, open::Purpose::Build)?;
    }
    say!(
        "{}: added {added} ({}) from {} pack{}, skipped {skipped} already present",
        args.out.display(),
        output::bytes(bytes),
        inputs.len(),
        if inputs.len() == 1 { "" } else { "s" }
    )
}

/// Two packs that cannot be merged: they hold different engines' modules.
fn different(a: &Path, a_has: &PackIdentity, b: &Path, b_has: &PackIdentity) -> CliError {
    CliError::failed(format!(
        "cannot merge packs of different engine identities: {} has {a_has}, {} has {b_has}",
        a.display(),
        b.display()
    ))
}

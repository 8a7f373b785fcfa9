//! `wasmpak merge`: combine packs of one engine identity into one, e.g. packs built by
//! separate CI jobs.
//!
//! Every input value is read and checksummed before the output is written, so a damaged
//! input leaves the output untouched. Values are copied zero-copy from the inputs' mappings.
//! Signatures are not copied (a signature vouches for its pack's entries): merge says so when
//! an input had some, so that the result gets signed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmpak::{EngineIdentity, Key, Pack, PackIdentity};

use crate::context::Context;
use crate::error::CliError;
use crate::interrupt;
use crate::open::{self, NewDirs};
use crate::output::{self, EntryJson, say};

/// Arguments of `wasmpak merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to merge into (created if missing); a directory: the pack in it named for the
    /// inputs' engine identity
    #[arg(value_name = "OUT|DIR")]
    pub out: PathBuf,
    /// Packs to copy entries from; all of the same identity as each other and as OUT (a
    /// directory: the pack this host's PackCache uses there)
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
}

/// The JSON document `merge --json` prints.
#[derive(Serialize)]
struct Merged {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    inputs: Vec<String>,
    /// The entries copied, as they are in the output.
    added: Vec<EntryJson>,
    /// Entries the output had already (or that came twice).
    skipped: u64,
    /// The inputs' signatures, which merge does not copy.
    signatures_dropped: Vec<DroppedSignature>,
}

#[derive(Serialize)]
struct DroppedSignature {
    pack: String,
    key_id: String,
    entries: u64,
}

/// One value to copy.
struct Pending {
    key: Key,
    label: String,
    value: bytes::Bytes,
}

/// Runs `wasmpak merge`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let _stoppable = interrupt::stoppable();
    let inputs = args
        .inputs
        .iter()
        .map(|path| open::any(ctx, &open::host_pack_path(path)))
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
    let out_path = match EngineIdentity::from_pack_identity(&identity) {
        Some(engine) => open::pack_path(&args.out, &engine),
        None if open::names_dir(&args.out) => {
            return Err(CliError::failed(format!(
                "{} is a directory, and the inputs' identity ({identity}) is no wasmer engine's \
                 to name a pack after: name the output pack",
                args.out.display()
            )));
        }
        None => args.out.clone(),
    };
    let out = open::any_if_exists(ctx, &out_path)?;
    if let Some(out) = &out
        && *out.identity() != identity
    {
        return Err(different(
            &out_path,
            out.identity(),
            first.path(),
            &identity,
        ));
    }
    open::check_can_write(&out_path, out.is_some())?;

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

    interrupt::check()?;
    let mut added = Vec::new();
    let mut bytes = 0u64;
    let dirs = NewDirs::for_file(&out_path)?;
    let out = open::or_create(ctx, &out_path, &identity, open::Purpose::Build)?;
    if !copies.is_empty() {
        let mut batch = out.batch();
        for copy in &copies {
            if batch.contains(&copy.key)? {
                skipped += 1;
                continue;
            }
            batch.insert_with_label(&copy.key, &copy.value, &copy.label)?;
            added.push(copy.key);
            bytes += copy.value.len() as u64;
        }
        batch.commit()?;
    }
    dirs.keep();
    let dropped = dropped_signatures(&inputs);
    for signature in &dropped {
        eprintln!(
            "warning: not copied: the signature of key {} over {} entries of {} (merge copies \
             values, not signatures: sign {} with `wasmpak sign`)",
            signature.key_id,
            signature.entries,
            signature.pack,
            out_path.display()
        );
    }
    if ctx.json {
        let signatures = output::signatures(&out);
        let wanted: HashSet<Key> = added.iter().copied().collect();
        return output::print_json(&Merged {
            pack: out_path.display().to_string(),
            identity: output::identity_json(&identity),
            inputs: inputs
                .iter()
                .map(|p| p.path().display().to_string())
                .collect(),
            added: out
                .iter()?
                .filter(|e| wanted.contains(e.key()))
                .map(|e| EntryJson::new(&e, &signatures))
                .collect(),
            skipped: skipped as u64,
            signatures_dropped: dropped,
        });
    }
    say!(
        "{}: added {} ({}) from {} pack{}, skipped {skipped} already present",
        out_path.display(),
        added.len(),
        output::bytes(bytes),
        inputs.len(),
        if inputs.len() == 1 { "" } else { "s" }
    )
}

/// The inputs' signatures, which the output does not get.
fn dropped_signatures(inputs: &[Pack]) -> Vec<DroppedSignature> {
    inputs
        .iter()
        .flat_map(|pack| {
            output::signatures(pack)
                .into_iter()
                .map(move |s| DroppedSignature {
                    pack: pack.path().display().to_string(),
                    key_id: s.signer_id(),
                    entries: s.entries(),
                })
        })
        .collect()
}

/// Two packs that cannot be merged: they hold different engines' modules.
fn different(a: &Path, a_has: &PackIdentity, b: &Path, b_has: &PackIdentity) -> CliError {
    CliError::failed(format!(
        "cannot merge packs of different engine identities: {} has {a_has}, {} has {b_has}",
        a.display(),
        b.display()
    ))
}

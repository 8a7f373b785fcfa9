//! `wasmpak info`: what a pack is for and how its bytes are spent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use wasmpak::IdentityValue;

use crate::engine;
use crate::error::CliError;
use crate::open;
use crate::output::{self, say};

/// Arguments of `wasmpak info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to describe
    pub pack: PathBuf,
    /// Print one JSON document with exact byte counts
    #[arg(long)]
    pub json: bool,
}

/// The JSON document `info --json` prints; sizes in bytes.
#[derive(Serialize)]
struct Info {
    pack: String,
    identity: BTreeMap<String, serde_json::Value>,
    generation: u64,
    entries: u64,
    live_bytes: u64,
    dead_bytes: u64,
    index_bytes: u64,
    index_blocks: usize,
    committed_bytes: u64,
    file_size: u64,
    /// Whether this host can load the pack's modules.
    loadable_here: bool,
    /// Why not, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_loadable_because: Option<String>,
}

/// Runs `wasmpak info`.
pub fn run(args: Args) -> Result<(), CliError> {
    let pack = open::any(&args.pack)?;
    let stats = pack.stats()?;
    let identity = pack.identity();
    let loadable = engine::host_can_load(identity);
    if args.json {
        return output::print_json(&Info {
            pack: args.pack.display().to_string(),
            identity: identity
                .fields()
                .map(|(name, value)| {
                    let value = match value {
                        IdentityValue::Str(s) => serde_json::Value::from(s.as_str()),
                        IdentityValue::Num(n) => serde_json::Value::from(*n),
                    };
                    (name.to_string(), value)
                })
                .collect(),
            generation: stats.generation,
            entries: stats.entries,
            live_bytes: stats.live_bytes,
            dead_bytes: stats.dead_bytes,
            index_bytes: stats.index_bytes,
            index_blocks: stats.index_blocks,
            committed_bytes: stats.committed_len,
            file_size: stats.file_size,
            loadable_here: loadable.is_ok(),
            not_loadable_because: loadable.err(),
        });
    }
    let sized = |n: u64| format!("{} ({n} bytes)", output::bytes(n));
    say!("pack         {}", args.pack.display())?;
    say!("identity")?;
    for (name, value) in identity.fields() {
        say!("  {name:<10} {value}")?;
    }
    say!("generation   {}", stats.generation)?;
    say!("entries      {}", stats.entries)?;
    say!("live         {}", sized(stats.live_bytes))?;
    say!("dead         {}", sized(stats.dead_bytes))?;
    say!(
        "index        {} in {} block{}",
        sized(stats.index_bytes),
        stats.index_blocks,
        if stats.index_blocks == 1 { "" } else { "s" }
    )?;
    say!("file size    {}", sized(stats.file_size))?;
    match loadable {
        Ok(()) => say!("loadable     yes, on this host"),
        Err(why) => say!("loadable     no, not on this host: {why}"),
    }
}

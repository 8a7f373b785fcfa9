//! `wasmpak info`: what a pack is for, whether this host can load it, under which name a
//! `PackCache` finds it, and how its bytes are spent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use wasmpak::{EngineIdentity, SignatureInfo, SignatureStatus};

use crate::context::Context;
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
    /// The CPU features the pack's modules may need, as wasmer names them (wasmer packs).
    #[serde(skip_serializing_if = "Option::is_none")]
    required_cpu_features: Option<Vec<String>>,
    /// Those features as a level plus extras, as pack file names spell them.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_level: Option<String>,
    /// Whether this host can load the pack's modules.
    loadable_here: bool,
    /// Why not, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_loadable_because: Option<String>,
    /// The file name a `PackCache` looks for this pack under, in its directory or a shipped
    /// directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_file_name: Option<String>,
    /// The file name of the pack this host's `PackCache` (default engine) writes.
    host_cache_file_name: String,
    /// Whether the pack is sealed (installed).
    sealed: bool,
    /// Its signatures, newest first.
    signatures: Vec<SignatureJson>,
    /// Why its signatures cannot be read, if they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_damage: Option<String>,
}

/// One signature in `info --json`.
#[derive(Serialize)]
pub struct SignatureJson {
    key_id: String,
    /// The signer's public key, raw, as 64 hex digits.
    public_key: String,
    generation: u64,
    /// Seconds since the Unix epoch, by the signer's clock.
    signed_at: u64,
    entries: u64,
    /// "valid" (checks out against the key it names), or "invalid: why".
    status: String,
}

/// A signature's status as text: whether it checks out against the key it names.
pub fn status_text(status: &SignatureStatus) -> String {
    match status {
        SignatureStatus::Invalid(why) => format!("invalid: {why}"),
        _ => "valid".to_string(),
    }
}

fn signature_json(s: &SignatureInfo) -> SignatureJson {
    SignatureJson {
        key_id: s.signer_id(),
        public_key: s
            .signer()
            .map(|k| k.to_bytes().iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default(),
        generation: s.generation(),
        signed_at: seconds(s),
        entries: s.entries(),
        status: status_text(s.status()),
    }
}

fn seconds(s: &SignatureInfo) -> u64 {
    s.signed_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `wasmpak info`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let pack = open::any(ctx, &args.pack)?;
    let stats = pack.stats()?;
    let identity = pack.identity();
    let loadable = engine::host_can_load(identity);
    let wasmer = EngineIdentity::from_pack_identity(identity);
    let host = engine::host_identity();
    // A damaged signature chain is reported, not fatal: the rest of the pack is still worth
    // describing.
    let (signatures, chain_damage) = match pack.signatures() {
        Ok(signatures) => (signatures, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let sealed = pack.is_sealed()?;
    if args.json {
        return output::print_json(&Info {
            pack: args.pack.display().to_string(),
            identity: output::identity_json(identity),
            generation: stats.generation,
            entries: stats.entries,
            live_bytes: stats.live_bytes,
            dead_bytes: stats.dead_bytes,
            index_bytes: stats.index_bytes,
            index_blocks: stats.index_blocks,
            committed_bytes: stats.committed_len,
            file_size: stats.file_size,
            required_cpu_features: wasmer.as_ref().map(|w| {
                w.cpu_feature_list()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            }),
            cpu_level: wasmer.as_ref().map(EngineIdentity::cpu_level),
            loadable_here: loadable.is_ok(),
            not_loadable_because: loadable.err(),
            cache_file_name: wasmer.as_ref().map(EngineIdentity::pack_file_name),
            host_cache_file_name: host.pack_file_name(),
            sealed,
            signatures: signatures.iter().map(signature_json).collect(),
            signature_damage: chain_damage,
        });
    }
    let sized = |n: u64| format!("{} ({n} bytes)", output::bytes(n));
    say!("pack         {}", args.pack.display())?;
    say!("identity")?;
    for (name, value) in identity.fields() {
        say!("  {name:<10} {value}")?;
    }
    if let Some(wasmer) = &wasmer {
        say!(
            "cpu level    {}  (loads on {} CPUs with at least these features)",
            wasmer.cpu_level(),
            wasmer.target_triple()
        )?;
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
    say!(
        "sealed       {}",
        if sealed {
            "yes (installed, read-only)"
        } else {
            "no"
        }
    )?;
    if let Some(damage) = &chain_damage {
        say!("signatures   unreadable: {damage}")?;
    } else if signatures.is_empty() {
        say!("signatures   none")?;
    }
    for (i, s) in signatures.iter().enumerate() {
        say!(
            "{}key {}: {} entries, generation {}, signed at {} (unix), {}",
            if i == 0 {
                "signatures   "
            } else {
                "             "
            },
            s.signer_id(),
            s.entries(),
            s.generation(),
            seconds(s),
            status_text(s.status())
        )?;
    }
    match loadable {
        Ok(()) => say!("loadable     yes, on this host")?,
        Err(why) => say!("loadable     no, not on this host: {why}")?,
    }
    if let Some(wasmer) = &wasmer {
        say!(
            "cache name   {}  (what a PackCache looks for in its directory or a shipped one)",
            wasmer.pack_file_name()
        )?;
    }
    say!(
        "host name    {}  (the pack this host's PackCache writes)",
        host.pack_file_name()
    )
}

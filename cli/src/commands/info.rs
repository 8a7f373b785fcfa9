//! `wasmpak info`: what a pack is for, whether this host can load it, under which name a
//! `PackCache` finds it, how its bytes are spent, and the temporary files beside it (a
//! writer's at work, or the leftovers of one that died, which the next command that writes
//! the pack removes; `info` only looks).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use wasmpak::{EngineIdentity, SignatureInfo, SignatureStatus};

use crate::context::Context;
use crate::engine;
use crate::error::CliError;
use crate::open::{self, Leftover};
use crate::output::{self, say};

/// Arguments of `wasmpak info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to describe (a directory: the pack this host's PackCache uses there)
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
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
    /// Temporary files beside the pack.
    leftovers: Vec<LeftoverJson>,
}

/// A temporary file beside the pack in `info --json`.
#[derive(Serialize)]
struct LeftoverJson {
    file: String,
    size: u64,
    modified_at: String,
    age_secs: u64,
    /// Whether a live writer holds it; if not, a writer died and left it.
    live: bool,
}

impl LeftoverJson {
    fn new(leftover: &Leftover) -> LeftoverJson {
        LeftoverJson {
            file: leftover.path.display().to_string(),
            size: leftover.size,
            modified_at: output::utc(leftover.modified),
            age_secs: age(leftover).as_secs(),
            live: leftover.live,
        }
    }
}

fn age(leftover: &Leftover) -> std::time::Duration {
    SystemTime::now()
        .duration_since(leftover.modified)
        .unwrap_or_default()
}

/// One signature in `info --json`.
#[derive(Serialize)]
pub struct SignatureJson {
    key_id: String,
    /// The signer's public key, raw, as 64 hex digits.
    public_key: String,
    generation: u64,
    /// When, by the signer's clock (RFC 3339, UTC).
    signed_at: String,
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
        signed_at: output::utc(s.signed_at()),
        entries: s.entries(),
        status: status_text(s.status()),
    }
}

/// Runs `wasmpak info`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let path = open::host_pack_path(&args.pack);
    let pack = open::any(ctx, &path)?;
    let leftovers = open::leftovers(&path);
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
    if ctx.json {
        return output::print_json(&Info {
            pack: path.display().to_string(),
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
            leftovers: leftovers.iter().map(LeftoverJson::new).collect(),
        });
    }
    let sized = |n: u64| format!("{} ({n} bytes)", output::bytes(n));
    say!("pack         {}", path.display())?;
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
            "{}key {}: {} entries, generation {}, signed at {}, {}",
            if i == 0 {
                "signatures   "
            } else {
                "             "
            },
            s.signer_id(),
            s.entries(),
            s.generation(),
            output::utc(s.signed_at()),
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
    )?;
    for (i, leftover) in leftovers.iter().enumerate() {
        say!(
            "{}{}  {}, modified {} ({} ago), {}",
            if i == 0 {
                "temporary    "
            } else {
                "             "
            },
            leftover.path.display(),
            output::bytes(leftover.size),
            output::utc(leftover.modified),
            humantime::format_duration(std::time::Duration::from_secs(age(leftover).as_secs())),
            if leftover.live {
                "being written by a live process"
            } else {
                "left by a writer that died; the next command that writes the pack removes it"
            }
        )?;
    }
    Ok(())
}

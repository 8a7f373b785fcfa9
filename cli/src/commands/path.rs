//! `wasmpak path`: the pack file a `PackCache` uses in a directory, for this host's engine or
//! the one the options describe, so that scripts and people need not spell identities.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use wasmpak::EngineIdentity;

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::CliError;
use crate::output::{self, say};

/// Arguments of `wasmpak path`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory [default: none; the file name alone is printed]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// For another target triple (e.g. aarch64-unknown-linux-gnu)
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
}

/// The JSON document `path --json` prints.
#[derive(Serialize)]
struct PathJson {
    /// The pack's path (the file name alone without a directory).
    pack: String,
    file_name: String,
    identity: BTreeMap<String, serde_json::Value>,
    cpu_level: String,
}

/// Runs `wasmpak path`.
pub fn run(ctx: &Context, args: Args) -> Result<(), CliError> {
    let engine = engine::build(&args.engine, args.target.as_deref())?;
    let identity = EngineIdentity::of(&engine);
    let file_name = identity.pack_file_name();
    let pack = match &args.dir {
        Some(dir) => dir.join(&file_name),
        None => PathBuf::from(&file_name),
    };
    if ctx.json {
        return output::print_json(&PathJson {
            pack: pack.display().to_string(),
            file_name,
            identity: output::identity_json(&identity.to_pack_identity()),
            cpu_level: identity.cpu_level(),
        });
    }
    say!("{}", pack.display())
}

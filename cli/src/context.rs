//! The global flags, and what they decide, handed to every command: no command reads a
//! global.

use std::path::Path;

use wasmpak::{PackCache, PackCacheBuilder, PackOptions};

/// The flags every command takes (clap flattens them into the command line).
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Open packs that users other than their owner or root can modify. Refused by default:
    /// whoever can write a pack can run code in every process that loads from it.
    #[arg(long, global = true)]
    pub allow_shared_write: bool,
    /// Print one JSON document on stdout instead of text (exact byte counts and nanoseconds,
    /// UTC timestamps); a failure is `{"error": {"message", "kind", "exit_code"}}`. No
    /// progress bars. `run` writes its report to stderr, where its status line goes.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The settings every command runs with, built once from the global flags.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--allow-shared-write`: open packs that users other than the owner or root can write.
    allow_shared_write: bool,
    /// `--json`: one JSON document instead of text, and no progress bars.
    pub json: bool,
}

impl Context {
    /// The context the global flags ask for.
    pub fn new(global: &Global) -> Context {
        Context {
            allow_shared_write: global.allow_shared_write,
            json: global.json,
        }
    }

    /// The options every pack is opened with.
    pub fn pack_options(&self) -> PackOptions {
        PackOptions::new().allow_shared_write(self.allow_shared_write)
    }

    /// A `PackCache` over `dir` that opens packs as every command does.
    pub fn pack_cache(&self, dir: &Path) -> PackCacheBuilder {
        PackCache::builder(dir).allow_shared_write(self.allow_shared_write)
    }
}

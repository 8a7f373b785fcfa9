//! The global flags, and what they decide, handed to every command: no command reads a
//! global.

use wasmpak::PackOptions;

/// The flags every command takes (clap flattens them into the command line).
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Open packs that users other than their owner or root can modify. Refused by default:
    /// whoever can write a pack can run code in every process that loads from it.
    #[arg(long, global = true)]
    pub allow_shared_write: bool,
}

/// The settings every command runs with, built once from the global flags.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--allow-shared-write`: open packs that users other than the owner or root can write.
    allow_shared_write: bool,
}

impl Context {
    /// The context the global flags ask for.
    pub fn new(global: &Global) -> Context {
        Context {
            allow_shared_write: global.allow_shared_write,
        }
    }

    /// The options every pack is opened with.
    pub fn pack_options(&self) -> PackOptions {
        PackOptions::new().allow_shared_write(self.allow_shared_write)
    }
}

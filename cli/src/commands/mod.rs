//! One module per command: its arguments (`Args`, clap derive) and `run`, which takes the
//! [`Context`](crate::context::Context) of the global flags. Helpers two commands share live
//! beside `commands/`, never in another command.

pub mod build;
pub mod compact;
pub mod demo;
pub mod extract;
pub mod import;
pub mod info;
pub mod install;
pub mod keygen;
pub mod list;
pub mod merge;
#[cfg(feature = "object-store")]
pub mod pull;
#[cfg(feature = "object-store")]
pub mod push;
pub mod rm;
pub mod run;
pub mod sign;
pub mod verify;

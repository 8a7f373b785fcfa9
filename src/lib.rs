//! wasmpak: compiled WebAssembly modules for wasmer, cached in one memory-mapped pack file.

mod error;
pub mod format;
mod key;
mod pack;

pub use error::{Error, ErrorKind, Result};
pub use format::identity::{IdentityValue, PackIdentity};
pub use key::{Key, ParseKeyError};
pub use pack::{
    Batch, CompactReport, Durability, Entry, Pack, PackOptions, Problem, Retention, Stats, Verify,
    VerifyReport,
};

#[cfg(feature = "wasmer")]
mod cache;
#[cfg(feature = "wasmer")]
#[doc(hidden)]
pub mod sample;
#[cfg(feature = "wasmer")]
pub use cache::*;

//! The store: one pack file, mapped for readers, appended to under a lock by writers.
//!
//! The store knows nothing of wasmer: keys are 32 bytes, values are byte strings. It knows
//! nothing of keys and signatures either: it keeps signature records (`signatures.rs`) and
//! lets a layer above vet values through one door (`check.rs`). See docs/FORMAT.md for the
//! bytes and the crash-safety argument, and docs/ARCHITECTURE.md for what each file holds.

mod append;
mod batch;
pub(crate) mod check;
mod commit;
mod compact;
pub(crate) mod embedded;
mod file;
mod handle;
mod index_merge;
mod lost;
mod mapping;
mod open;
mod options;
mod permissions;
pub(crate) mod problem;
mod publish;
mod read;
pub(crate) mod recency;
mod release;
mod retention;
mod salvage;
mod seal;
pub(crate) mod session;
pub(crate) mod signatures;
mod stats;
mod verify;
pub(crate) mod view;

pub use batch::Batch;
pub use compact::CompactReport;
pub use embedded::aligned_bytes;
pub use handle::Pack;
pub use lost::{LostCommit, LostEntry};
pub use options::{Durability, PackOptions, Verify};
pub use problem::Problem;
pub use retention::Retention;
pub use stats::{Entry, Stats};
pub use verify::VerifyReport;

pub(crate) use mapping::checksum;

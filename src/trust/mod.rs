//! Trust, a layer above the store: signing keys, BLAKE3 hashes, the decision whether an
//! entry is what a trusted key signed, and reports of what a pack's signatures say.
//!
//! The store keeps signature records (they are part of the format: commits point at them,
//! compaction carries them) but never checks one. This layer enters the store's read path
//! through one door the store owns, `pack::check::ValueCheck`, which
//! [`PackOptions::trusted_keys`](crate::PackOptions::trusted_keys) sets.

mod check;
mod digest;
mod judge;
mod keys;
mod report;
mod sign;
mod signature;
mod trusted;

pub use keys::{KeyError, KeyErrorKind, PublicKey, SecretKey};
pub use report::SignatureReport;
pub use signature::{SignatureInfo, SignatureStatus, SignedEntry};

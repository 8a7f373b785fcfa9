//! The one door through which a layer above the store vets values.
//!
//! The store checks what it owns: structure and CRC-32 checksums. Whether a value may be
//! *trusted* (signed by a trusted key, its bytes what was signed) is decided above it, in
//! `crate::trust`, which enters [`Pack::get`](crate::Pack::get) and
//! [`Pack::install_into`](crate::Pack::install_into) only through this trait, set in
//! [`PackOptions`](crate::PackOptions) by
//! [`PackOptions::trusted_keys`](crate::PackOptions::trusted_keys). The store never names
//! the trust layer's types.

use std::any::Any;
use std::fmt;

use crate::Result;
use crate::format::index::IndexEntry;

use super::problem::Problem;
use super::view::View;

/// What a layer above the store checks of each value it lets through.
pub(crate) trait ValueCheck: fmt::Debug + Send + Sync + Any {
    /// Whether [`Pack::get`](crate::Pack::get) may hand out the value `entry` of `view`: `Ok`,
    /// or the error to return instead. `payload` holds the value's bytes when the
    /// [`Verify`](crate::Verify) policy says to check them now (the check then stands in for
    /// the CRC-32), and is `None` when only what the index says (key, length, label) is
    /// checked.
    fn check_value(&self, view: &View, entry: &IndexEntry, payload: Option<&[u8]>) -> Result<()>;

    /// The first reason not to install `view`, a copy whose structure and checksums were
    /// already verified: every live entry, bytes included.
    fn check_all(&self, view: &View) -> Result<Option<Problem>>;

    /// The keys `view` was checked against, for the seal an install writes after
    /// [`ValueCheck::check_all`] passed: those whose valid signatures vouch for its entries.
    fn seal_keys(&self, view: &View) -> Result<Vec<[u8; 32]>>;

    /// Whether an install that checked every value against signatures by `seal_keys` did the
    /// check this one would make, so that a reader may skip hashing the installed file.
    fn covers_seal(&self, seal_keys: &[[u8; 32]]) -> bool;

    /// The check as `Any`, for the layer that made it to find its own type again.
    fn as_any(&self) -> &dyn Any;
}

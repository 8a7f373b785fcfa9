//! The one error type of the pack store, `std::io::Error`-style: an opaque [`Error`] with a
//! [`kind`](Error::kind) to match on and accessors for the values a caller may need.
//!
//! - `pack_error.rs`: [`Error`] and [`Result`].
//! - `kind.rs`: [`ErrorKind`].
//! - `repr.rs`: the private representation: one variant per failure, with its message.

mod kind;
mod pack_error;
mod repr;

pub use kind::ErrorKind;
pub use pack_error::{Error, Result};
pub(crate) use repr::Repr;

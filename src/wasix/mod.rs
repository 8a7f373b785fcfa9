//! wasmer-wasix glue (feature `wasix`): our caches as wasix module caches, and a host that runs
//! WASI programs from them.
//!
//! - [`module_cache`]: `wasmer_wasix::runtime::module_cache::ModuleCache` for every cache of
//!   ours, by forwarding, and our `CacheError` as wasix's.
//! - [`host`]: [`WasixHost`], a wasix runtime over one of our caches, and [`WasiRunError`],
//!   what a WASI program's end means to the host that ran it.

pub(crate) mod host;
pub(crate) mod module_cache;

pub use host::{WasiRunError, WasiRunErrorKind, WasixHost};

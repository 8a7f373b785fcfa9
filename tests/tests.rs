//! The library's tests, one binary (so one link of wasmer): the store (`pack`), the module
//! caches (`cache`), faults from outside (`faults`: killed writers, full disks, files changed
//! behind a handle, failing storage operations), the simulated power loss (`power_loss`), the
//! fuzz targets replayed (`fuzz_replay`), a short soak (`soak`) and a wasix runtime
//! (`wasix_runtime`). What they share is in `common`.
//!
//! A test that needs another process runs itself again with a role (`common::child`); a test
//! that needs something of the machine fails without it unless `WASMPAK_TEST_SKIP` names it
//! (`common::missing`).

mod common;

#[cfg(feature = "wasmer")]
mod cache;
mod faults;
mod fuzz_replay;
mod pack;
#[cfg(feature = "fault-injection")]
mod power_loss;
#[cfg(feature = "wasmer")]
mod soak;
#[cfg(feature = "wasix")]
mod wasix_runtime;

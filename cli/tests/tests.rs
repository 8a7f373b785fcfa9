//! The tool's tests, one binary (so one link of wasmer): its commands (`commands`), bad input
//! (`bad_input`), shipping packs to hosts (`shipping`), signing (`signing`), WASI programs
//! (`wasi`), and the fleet tier against a real S3-compatible server (`fleet`). What they share
//! is in `common`.
//!
//! A test that needs another process runs itself again with a role (`common::child`); a test
//! that needs something of the machine fails without it unless `WASMPAK_TEST_SKIP` names it
//! (`common::missing`).

mod common;

mod bad_input;
mod commands;
#[cfg(feature = "object-store")]
mod fleet;
mod shipping;
mod signing;
mod wasi;

//! The tool's tests, one binary (so one link of wasmer): its commands (`commands`), bad input
//! (`bad_input`), shipping packs to hosts (`shipping`), signing (`signing`), WASI programs
//! (`wasi`), the tool as users expect it (`ux`), the fleet tier against real object stores
//! and web servers (`fleet`), and packs from the x86_64 glibc tool on aarch64 and musl
//! (`platforms`, compiled only there). What they share is in `common`.
//!
//! A test that needs another process runs itself again with a role (`common::child`); a test
//! that needs something of the machine fails without it unless `WASMPAK_TEST_SKIP` names it
//! (`common::missing`).

mod common;

mod bad_input;
mod commands;
#[cfg(feature = "object-store")]
mod fleet;
#[cfg(any(target_arch = "aarch64", target_env = "musl"))]
mod platforms;
mod shipping;
mod signing;
mod ux;
mod wasi;

//! The module caches over packs: `PackCache` alone, across processes, signed and embedded.

mod embedded;
mod model;
mod pack;
#[cfg(target_os = "linux")]
mod pinning;
mod signed;

//! The fleet tier against a real S3-compatible server (moto, on 127.0.0.1, started by the
//! tests): `ObjectStoreCache` behind local tiers, across processes and through failures, and
//! the tool's `push` and `pull`.

mod cache;
mod cli;
mod moto;

use wasmer::{Engine, Module};
use wasmpak::ModuleHash;

use crate::common::numbered_wasm;

/// The key of the module whose `answer` export returns `n`.
pub fn module_key(n: u32) -> ModuleHash {
    ModuleHash::new(numbered_wasm(n))
}

/// The module whose `answer` export returns `n`, compiled.
pub fn compile(engine: &Engine, n: u32) -> Module {
    Module::new(engine, numbered_wasm(n)).unwrap()
}

/// Waits until `path` exists (another process reached a point), at most a minute.
pub fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

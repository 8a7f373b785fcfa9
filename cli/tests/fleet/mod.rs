//! The fleet tier against real servers on 127.0.0.1, started by the tests: `ObjectStoreCache`
//! behind local tiers, across processes and through failures, and the tool's `push` and
//! `pull`, against moto (S3; `cache`, `cli`); and the same `pull` cases against every door
//! (`doors`: S3, Azure Blob through Azurite, Google Cloud Storage through fake-gcs-server,
//! plain HTTP through nginx and Python's `http.server`). The starters share `server.rs`.

mod azurite;
mod cache;
mod cli;
mod doors;
mod gcs;
mod http_server;
mod moto;
mod server;

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

//! The fleet tier against a real S3-compatible server (moto, on 127.0.0.1, started by the
//! tests): `ObjectStoreCache` behind local tiers, across processes and through failures, and
//! the tool's `push` and `pull`.
#![cfg(feature = "object-store")]

mod cache;
mod cli;
mod moto;

use std::path::PathBuf;
use std::process::Command;

use wasmer::{Engine, Module};
use wasmpak::ModuleHash;

/// The test binary itself, running the ignored test `entry` as a child process.
pub fn child(entry: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    command
}

pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent test"))
}

pub fn env_path(name: &str) -> PathBuf {
    env_var(name).into()
}

/// A module whose `answer` export returns `n`.
pub fn wasm(n: u32) -> Vec<u8> {
    let wat = format!("(module (func (export \"answer\") (result i32) i32.const {n}))");
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

pub fn key(n: u32) -> ModuleHash {
    ModuleHash::new(wasm(n))
}

pub fn compile(engine: &Engine, n: u32) -> Module {
    Module::new(engine, wasm(n)).unwrap()
}

/// Calls `answer` on a fresh instance of `module`.
pub fn answer(engine: &Engine, module: &Module) -> i32 {
    let mut store = wasmer::Store::new(engine.clone());
    let instance = wasmer::Instance::new(&mut store, module, &wasmer::imports! {}).unwrap();
    instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .unwrap()
        .call(&mut store)
        .unwrap()
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

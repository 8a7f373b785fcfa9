//! Shared fixtures for the cache tests.
//!
//! Assumes every test in the process may share one [`Engine`] and one compiled module per
//! number: compiling with cranelift is by far the slowest part of these tests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use wasmer::sys::{CpuFeature, Cranelift, Features, NativeEngineExt, Target, Triple};
use wasmer::{Engine, Instance, Module, Store, imports};

use super::ModuleHash;

/// The engine every test uses.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

/// An engine like [`engine`] but for a CPU with no optional features: same compiler, same
/// deterministic id, yet it cannot run code compiled for the host's features.
pub(crate) fn engine_without_cpu_features() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let target = Target::new(Triple::host(), CpuFeature::set());
        let compiler = Box::new(Cranelift::default());
        Engine::new(compiler, target, Features::default())
    })
}

/// A module whose `answer` export returns `n`; `n` extra functions make sizes differ.
pub(crate) fn wat_module(n: u32) -> Vec<u8> {
    let mut wat = format!("(module (func (export \"answer\") (result i32) i32.const {n})");
    for i in 0..n % 16 {
        wat.push_str(&format!(
            " (func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} i32.add)"
        ));
    }
    wat.push(')');
    wasmer::wat2wasm(wat.as_bytes())
        .expect("test module is valid wat")
        .into_owned()
}

/// The key of [`wat_module`]`(n)`: the SHA-256 of its wasm bytes.
pub(crate) fn key(n: u32) -> ModuleHash {
    ModuleHash::new(wat_module(n))
}

/// [`wat_module`]`(n)` compiled by [`engine`], compiled once per test process.
pub(crate) fn compiled(n: u32) -> Module {
    static MODULES: OnceLock<Mutex<HashMap<u32, Module>>> = OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    if let Some(module) = modules
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&n)
    {
        return module.clone();
    }
    // Compile outside the lock so tests compiling different modules run in parallel.
    let module = Module::new(engine(), wat_module(n)).expect("test module compiles");
    modules
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(n)
        .or_insert(module)
        .clone()
}

/// Instantiates `module` with no imports and calls its `answer` export.
pub(crate) fn answer(module: &Module, engine: &Engine) -> i32 {
    let mut store = Store::new(engine.clone());
    let instance = Instance::new(&mut store, module, &imports! {}).expect("module instantiates");
    instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .expect("module exports answer")
        .call(&mut store)
        .expect("answer runs")
}

/// Polls `future` once with no runtime, as a caller outside tokio would, and expects it to be
/// done: outside tokio our caches do their work inline and never wait for a wake-up.
pub(crate) fn poll_ready<T>(future: impl Future<Output = T>) -> T {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("future did not complete on its first poll"),
    }
}

mod tests {
    use super::*;

    #[test]
    fn modules_differ_and_answer() {
        assert_ne!(wat_module(1).len(), wat_module(2).len());
        assert_ne!(key(1), key(2));
        assert_eq!(answer(&compiled(7), engine()), 7);
        assert_eq!(compiled(7), compiled(7));
    }
}

//! Shared fixtures for the cache tests.
//!
//! Assumes every test in the process may share one [`Engine`] and one compiled module per
//! number: compiling with cranelift is by far the slowest part of these tests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use wasmer::sys::{CpuFeature, Cranelift, Features, NativeEngineExt, Target, Triple};
use wasmer::{Engine, Module};

use crate::sync::lock;

pub(crate) use super::conformance::fixtures::{answer, compiled, engine, key, wat_module};

/// Damages the file at `path` as a torn write would: only its first half remains.
pub(crate) fn tear(path: &std::path::Path) {
    let bytes = std::fs::read(path).expect("the file to damage exists");
    std::fs::write(path, &bytes[..bytes.len() / 2]).expect("the file can be rewritten");
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

/// An engine compiling for this host's architecture with fewer CPU features than the host
/// has: the `x86-64` baseline (`sse2`) on an x86_64 host with more. `None` where there is no
/// lower level to compile for. (x86_64 alone: on aarch64 wasmer knows one feature, `neon`.)
#[cfg(target_arch = "x86_64")]
pub(crate) fn baseline_engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let host = CpuFeature::for_host();
            let baseline = crate::CpuLevel::named("x86-64")?;
            let triple = Triple::host();
            if triple.architecture.to_string() != baseline.architecture() {
                return None;
            }
            let mut features = CpuFeature::set();
            features.extend(baseline.features().iter().copied());
            if features == host || !host.is_superset(features) {
                return None;
            }
            let target = Target::new(triple, features);
            Some(Engine::new(
                Box::new(Cranelift::default()),
                target,
                Features::default(),
            ))
        })
        .as_ref()
}

/// [`wat_module`]`(n)` compiled by `engine` (compiled once per engine and test process).
pub(crate) fn compiled_by(engine: &Engine, n: u32) -> Module {
    static MODULES: OnceLock<Mutex<HashMap<(wasmer::EngineId, u32), Module>>> = OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    let id = (engine.id(), n);
    if let Some(module) = lock(modules).get(&id) {
        return module.clone();
    }
    let module = Module::new(engine, wat_module(n)).expect("test module compiles");
    lock(modules).entry(id).or_insert(module).clone()
}

/// Runs `f`, returning what it returned and every warning logged on this thread meanwhile,
/// one formatted line each (message and fields).
pub(crate) fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .without_time()
        .with_writer(move || Capture(writer.clone()))
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&lock(&buffer)).into_owned();
    (value, text.lines().map(str::to_string).collect())
}

/// A writer appending to a shared buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Saves [`compiled`]`(n)` under [`key`]`(n)` in `cache` for `engine`, which must succeed.
pub(crate) async fn save_numbered(
    cache: &(impl crate::ModuleCache + ?Sized),
    n: u32,
    engine: &Engine,
) {
    let module = compiled(n);
    cache
        .save(key(n), engine, &module)
        .await
        .expect("the save succeeds");
}

/// The answer of the module `cache` loads under [`key`]`(n)` for `engine`, which must load.
pub(crate) async fn loaded_answer(
    cache: &(impl crate::ModuleCache + ?Sized),
    n: u32,
    engine: &Engine,
) -> i32 {
    let module = cache.load(key(n), engine).await.expect("the module loads");
    answer(&module, engine)
}

/// Whether loading [`key`]`(n)` from `cache` for `engine` is a plain miss.
pub(crate) async fn misses(
    cache: &(impl crate::ModuleCache + ?Sized),
    n: u32,
    engine: &Engine,
) -> bool {
    cache
        .load(key(n), engine)
        .await
        .is_err_and(|e| e.is_not_found())
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

//! [`WasixHost`]: a wasix runtime whose modules come from one of our caches, and what a WASI
//! program's end means to the host that ran it.
//!
//! Assumptions: the host is a process that runs WASI commands the way `wasmer run` does
//! (one wasix `PluggableRuntime`, its module cache consulted before compiling, the program's
//! standard streams those of the process unless the runner says otherwise). wasix reports a
//! program's non-zero exit as an error, and a trap as another; a host wants the first as a
//! number and only the second as a failure, so that is the split made here.

use std::fmt;
use std::sync::Arc;

use wasmer::{Engine, Module};
use wasmer_wasix::runners::wasi::{RuntimeOrEngine, WasiRunner};
use wasmer_wasix::runtime::module_cache::{HashedModuleData, ModuleCache};
use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
use wasmer_wasix::{PluggableRuntime, Runtime, WasiError, WasiRuntimeError};

/// A wasix runtime with a module cache, on a tokio runtime of its own: what an edge host
/// builds once per process to run WASI programs.
///
/// [`load`](WasixHost::load) goes through the runtime's own module loading (the cache, or
/// compile and save), so a pack filled by one process serves every later one.
/// [`run`](WasixHost::run) runs a WASI command to its end and returns its exit code.
///
/// # Example
///
/// ```
/// use wasmer::Engine;
/// use wasmer_wasix::runners::wasi::WasiRunner;
/// use wasmpak::{ModuleCache, PackCache, SharedCache, WasixHost};
///
/// let dir = tempfile::tempdir()?;
/// let cache = SharedCache::default().with_fallback(PackCache::new(dir.path()));
/// let host = WasixHost::new(Engine::default(), cache)?;
///
/// let wasm = wasmer::wat2wasm(wasmpak_samples::WASI_TOOL_WAT.as_bytes())?;
/// let module = host.load(&wasm)?; // compiled, and saved to the pack
/// let mut runner = WasiRunner::new();
/// runner.with_args(["fail"]);
/// assert_eq!(host.run(&runner, "wasi-tool", module)?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WasixHost {
    // Dropped after `runtime`, whose task manager holds a handle to it.
    runtime: Arc<PluggableRuntime>,
    tokio: tokio::runtime::Runtime,
}

impl fmt::Debug for WasixHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasixHost")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl WasixHost {
    /// A host compiling with `engine` and caching in `cache` (any wasix module cache: ours
    /// implement that trait with the `wasix` feature). Starts a multi-threaded tokio runtime,
    /// which wasix needs to run programs.
    pub fn new(
        engine: Engine,
        cache: impl ModuleCache + Send + Sync + 'static,
    ) -> Result<WasixHost, WasiRunError> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| WasiRunError::new("", WasiRunErrorKind::Start, e.into()))?;
        // wasix's host networking registers with the reactor of the runtime it is built in.
        let _entered = tokio.enter();
        let tasks = TokioTaskManager::new(tokio.handle().clone());
        let mut runtime = PluggableRuntime::new(Arc::new(tasks));
        runtime.set_engine(engine).set_module_cache(cache);
        drop(_entered);
        Ok(WasixHost {
            runtime: Arc::new(runtime),
            tokio,
        })
    }

    /// The wasix runtime, for code that drives wasix directly.
    pub fn runtime(&self) -> &Arc<PluggableRuntime> {
        &self.runtime
    }

    /// Enters the host's tokio runtime until the guard is dropped: some wasix calls need one,
    /// such as `WasiRunner::with_mapped_directories`.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.tokio.enter()
    }

    /// The module for `wasm`, through the runtime's module cache: a hit, or compiled by the
    /// runtime's engine and saved to the cache (a failed save is logged by wasix, not fatal).
    pub fn load(&self, wasm: &[u8]) -> Result<Module, WasiRunError> {
        let data = HashedModuleData::new(wasm.to_vec());
        self.tokio
            .block_on(self.runtime.load_hashed_module(data, None))
            .map_err(|e| WasiRunError::new("", WasiRunErrorKind::Load, e.into()))
    }

    /// Runs `module` as the WASI command `program` (its `argv[0]`) with `runner`'s arguments,
    /// environment, directories and standard streams (by default the process's own). Returns
    /// the program's exit code, zero or not. A program that cannot start (not a WASI command,
    /// a missing import) is an error. A trap ends the program the way wasix ends it, as
    /// `wasmer run` shows: wasix prints the trap and its wasm backtrace on the process's
    /// stderr and the exit code is 45 (WASI's `ENOEXEC`). wasix records a module hash for the
    /// process; a `Module` does not know its wasm's hash, so a random one is used: programs
    /// that re-spawn their own module by hash need `runtime()` and wasix's runners directly.
    pub fn run(
        &self,
        runner: &WasiRunner,
        program: &str,
        module: Module,
    ) -> Result<u32, WasiRunError> {
        let _entered = self.tokio.enter();
        let hash = wasmer_types::ModuleHash::random();
        let runtime: Arc<dyn Runtime + Send + Sync> = self.runtime.clone();
        match runner.run_wasm(RuntimeOrEngine::Runtime(runtime), program, module, hash) {
            Ok(()) => Ok(0),
            Err(error) => match exit_code(&error) {
                Some(code) => Ok(code),
                None => {
                    let kind = if is_trap(&error) {
                        WasiRunErrorKind::Trap
                    } else {
                        WasiRunErrorKind::Start
                    };
                    Err(WasiRunError::new(program, kind, error.into()))
                }
            },
        }
    }
}

/// The exit code a program's end carries, if it ended by exiting (with any code).
fn exit_code(error: &anyhow::Error) -> Option<u32> {
    error.chain().find_map(|cause| {
        if let Some(runtime) = cause.downcast_ref::<WasiRuntimeError>() {
            return runtime.as_exit_code().map(|code| code.raw() as u32);
        }
        match cause.downcast_ref::<WasiError>() {
            Some(WasiError::Exit(code)) => Some(code.raw() as u32),
            _ => None,
        }
    })
}

/// Whether the program was stopped by a trap (rather than failing to start).
fn is_trap(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<wasmer::RuntimeError>().is_some()
            || matches!(
                cause.downcast_ref::<WasiRuntimeError>(),
                Some(WasiRuntimeError::Runtime(_))
            )
    })
}

/// What kind of failure a [`WasiRunError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WasiRunErrorKind {
    /// The module could not be loaded or compiled.
    Load,
    /// The program could not start: not a WASI command, a missing import, a failed setup.
    Start,
    /// The program trapped.
    Trap,
}

/// A WASI program that could not be loaded, could not start, or trapped.
///
/// # Example
///
/// ```
/// use wasmer::Engine;
/// use wasmer_wasix::runners::wasi::WasiRunner;
/// use wasmpak::{SharedCache, WasixHost, WasiRunErrorKind};
///
/// let host = WasixHost::new(Engine::default(), SharedCache::default())?;
/// // Not a WASI command: no `_start`.
/// let wasm = wasmer::wat2wasm(b"(module (func (export \"answer\") (result i32) i32.const 42))")?;
/// let error = host.run(&WasiRunner::new(), "answer", host.load(&wasm)?).unwrap_err();
/// assert_eq!(error.kind(), WasiRunErrorKind::Start);
/// assert!(error.to_string().starts_with("cannot start answer: "), "{error}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WasiRunError {
    program: String,
    kind: WasiRunErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl WasiRunError {
    fn new(
        program: &str,
        kind: WasiRunErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> WasiRunError {
        WasiRunError {
            program: program.to_string(),
            kind,
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> WasiRunErrorKind {
        self.kind
    }

    /// The program's name, as given to [`WasixHost::run`] (empty for load failures).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The innermost cause, on one line: what a person needs to read.
    fn cause(&self) -> String {
        let mut cause: &(dyn std::error::Error + 'static) = self.source.as_ref();
        while let Some(next) = cause.source() {
            cause = next;
        }
        let text = cause.to_string();
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for WasiRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = self.cause();
        match self.kind {
            WasiRunErrorKind::Load => write!(f, "cannot load the module: {cause}"),
            WasiRunErrorKind::Start if self.program.is_empty() => {
                write!(f, "cannot start the wasix runtime: {cause}")
            }
            WasiRunErrorKind::Start => write!(f, "cannot start {}: {cause}", self.program),
            WasiRunErrorKind::Trap => write!(f, "{} trapped: {cause}", self.program),
        }
    }
}

impl std::error::Error for WasiRunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

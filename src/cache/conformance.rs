//! One set of checks every [`ModuleCache`] runs: a round trip, a miss, an overwrite, damage
//! to the stored bytes, and several threads at once (feature `conformance`; not API-stable).
//!
//! Modelled on arrow-rs `object_store`'s `integration` module: each cache of this crate runs
//! these same checks in its unit tests (`FileSystemCache`, `PackCache`, `SharedCache`,
//! `ThreadLocalCache`, `FallbackCache`, `ObjectStoreCache` over an in-memory store), the
//! fleet tests run them against a real S3 server, and a cache of your own can run them too.
//!
//! Assumptions: a cache under test starts empty, makes a save visible to loads by the time
//! the save returns (an `ObjectStoreCache` needs `background_saves(false)`), and is driven
//! from a plain thread, not from inside a tokio runtime (the checks start their own). What
//! differs between caches is said through [`CacheUnderTest`]: a second handle on the same
//! storage, how a second save under a key behaves, and how to damage what is stored.
//!
//! # Example
//!
//! ```
//! use wasmer::Engine;
//! use wasmpak::conformance::{self, CacheUnderTest};
//! use wasmpak::{FileSystemCache, ModuleHash};
//!
//! struct Files(tempfile::TempDir, FileSystemCache);
//!
//! impl CacheUnderTest for Files {
//!     type Cache = FileSystemCache;
//!     fn cache(&self) -> &FileSystemCache {
//!         &self.1
//!     }
//!     fn reopen(&self) -> Option<FileSystemCache> {
//!         Some(FileSystemCache::new(self.0.path()))
//!     }
//!     fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool {
//!         // A torn write: the first half of the file.
//!         let path = self.1.path(key, engine);
//!         let bytes = std::fs::read(&path).unwrap();
//!         std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
//!         true
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let cache = FileSystemCache::new(dir.path());
//! let report = conformance::run(&Files(dir, cache))?;
//! assert_eq!(report.ran, conformance::CHECKS);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock, PoisonError};

use wasmer::{Engine, Instance, Module, Store, imports};

use super::{CacheError, ModuleCache, ModuleHash};

/// The checks [`run`] runs, in order.
pub const CHECKS: [&str; 5] = [
    "round trip",
    "miss",
    "overwrite",
    "corruption",
    "concurrency",
];

/// How many threads the concurrency check runs, and how many rounds each.
const THREADS: u32 = 4;
const ROUNDS: u32 = 3;

/// What the checks need to know about a cache beyond [`ModuleCache`].
pub trait CacheUnderTest: Sync {
    /// The cache's type.
    type Cache: ModuleCache + Send + Sync;

    /// The cache under test, empty when [`run`] starts.
    fn cache(&self) -> &Self::Cache;

    /// A second handle on the same storage that shares nothing in memory with
    /// [`cache`](CacheUnderTest::cache), as another process would open it; `None` for a cache
    /// that keeps nothing outside memory.
    fn reopen(&self) -> Option<Self::Cache>;

    /// What a second save under a key does (default: it replaces the first).
    fn overwrite(&self) -> Overwrite {
        Overwrite::Replaces
    }

    /// Damages what is stored for the module saved under `key` for `engine`, as a disk or a
    /// network could (a flipped bit, a torn write), in a way the cache promises to notice;
    /// `false` if the cache keeps nothing outside memory, which skips the check.
    fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool;
}

/// A cache that keeps nothing outside memory, under the checks as it is: no second handle
/// on its storage, nothing to damage (the corruption check is skipped).
#[derive(Debug)]
pub struct MemoryOnly<C>(pub C);

impl<C: ModuleCache + Send + Sync> CacheUnderTest for MemoryOnly<C> {
    type Cache = C;

    fn cache(&self) -> &C {
        &self.0
    }

    fn reopen(&self) -> Option<C> {
        None
    }

    fn corrupt(&self, _: ModuleHash, _: &Engine) -> bool {
        false
    }
}

/// How a cache treats a second save under a key it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// The second module replaces the first.
    Replaces,
    /// The first module stays (keys are content hashes, so both are the same module).
    FirstWins,
}

/// Which checks ran, and which did not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks that ran and passed.
    pub ran: Vec<&'static str>,
    /// The checks that do not apply to the cache (corruption, for one that keeps nothing
    /// outside memory).
    pub skipped: Vec<&'static str>,
}

/// The first check a cache failed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check, one of [`CHECKS`].
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check {:?} failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for Failure {}

/// Runs every check against `subject`, stopping at the first failure.
pub fn run(subject: &impl CacheUnderTest) -> Result<Report, Failure> {
    let mut report = Report::default();
    for check in CHECKS {
        let outcome = catch_unwind(AssertUnwindSafe(|| match check {
            "round trip" => round_trip(subject),
            "miss" => miss(subject),
            "overwrite" => overwrite(subject),
            "corruption" => corruption(subject),
            _ => concurrency(subject),
        }));
        match outcome {
            Ok(Ok(Outcome::Passed)) => report.ran.push(check),
            Ok(Ok(Outcome::Skipped)) => report.skipped.push(check),
            Ok(Err(message)) => return Err(Failure { check, message }),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(Failure {
                    check,
                    message: format!("panicked: {message}"),
                });
            }
        }
    }
    Ok(report)
}

enum Outcome {
    Passed,
    Skipped,
}

type Checked = Result<Outcome, String>;

/// A saved module loads back as exactly that module, through this handle and a fresh one.
fn round_trip(subject: &impl CacheUnderTest) -> Checked {
    let (engine, n) = (fixtures::engine(), 1);
    block_on(
        subject
            .cache()
            .save(fixtures::key(n), engine, &fixtures::compiled(n)),
    )
    .map_err(|e| format!("save failed: {e}"))?;
    for (handle, cache) in handles(subject) {
        if !block_on(cache.contains(fixtures::key(n), engine)).map_err(|e| e.to_string())? {
            return Err(format!("{handle}: contains is false after a save"));
        }
        expect_module(handle, block_on(cache.load(fixtures::key(n), engine)), n)?;
    }
    Ok(Outcome::Passed)
}

/// A key never saved is a plain miss ([`CacheError::is_not_found`]), not another error.
fn miss(subject: &impl CacheUnderTest) -> Checked {
    let (engine, n) = (fixtures::engine(), 2);
    for (handle, cache) in handles(subject) {
        match block_on(cache.load(fixtures::key(n), engine)) {
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(format!("{handle}: a miss is an error: {e}")),
            Ok(_) => return Err(format!("{handle}: a key never saved loads a module")),
        }
        if block_on(cache.contains(fixtures::key(n), engine)).map_err(|e| e.to_string())? {
            return Err(format!("{handle}: contains is true for a key never saved"));
        }
    }
    Ok(Outcome::Passed)
}

/// A second save under a key behaves as the cache says ([`CacheUnderTest::overwrite`]):
/// every load returns exactly one of the two modules, the one expected.
fn overwrite(subject: &impl CacheUnderTest) -> Checked {
    let engine = fixtures::engine();
    let (key, first, second) = (fixtures::key(3), 3, 4);
    for n in [first, second] {
        block_on(subject.cache().save(key, engine, &fixtures::compiled(n)))
            .map_err(|e| format!("save of module {n} failed: {e}"))?;
    }
    let expected = match subject.overwrite() {
        Overwrite::Replaces => second,
        Overwrite::FirstWins => first,
    };
    for (handle, cache) in handles(subject) {
        expect_module(handle, block_on(cache.load(key, engine)), expected)?;
    }
    Ok(Outcome::Passed)
}

/// Damaged bytes are a miss or a clear error, never a wrong module and never a panic, and
/// the next save replaces them.
fn corruption(subject: &impl CacheUnderTest) -> Checked {
    let (engine, n) = (fixtures::engine(), 5);
    let key = fixtures::key(n);
    block_on(subject.cache().save(key, engine, &fixtures::compiled(n)))
        .map_err(|e| format!("save failed: {e}"))?;
    if !subject.corrupt(key, engine) {
        return Ok(Outcome::Skipped);
    }
    let reopened = subject.reopen();
    let cache = reopened.as_ref().unwrap_or(subject.cache());
    match block_on(cache.load(key, engine)) {
        Err(_) => {}
        // A cache may notice nothing only if it still hands out the module that was saved.
        Ok(module) => same_module(&module, n).map_err(|e| format!("damaged bytes: {e}"))?,
    }
    block_on(cache.save(key, engine, &fixtures::compiled(n)))
        .map_err(|e| format!("save after damage failed: {e}"))?;
    expect_module("after a new save", block_on(cache.load(key, engine)), n)?;
    Ok(Outcome::Passed)
}

/// Several threads saving and loading at once, some the same key, each see exactly the
/// modules saved.
fn concurrency(subject: &impl CacheUnderTest) -> Checked {
    let engine = fixtures::engine();
    let shared = 6;
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let failures = &failures;
            scope.spawn(move || {
                let own = 7 + thread;
                for _ in 0..ROUNDS {
                    for n in [shared, own] {
                        let key = fixtures::key(n);
                        let outcome = block_on(async {
                            subject
                                .cache()
                                .save(key, engine, &fixtures::compiled(n))
                                .await?;
                            subject.cache().load(key, engine).await
                        });
                        let handle = "a thread";
                        if let Err(e) = expect_module(handle, outcome, n) {
                            lock(failures).push(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(first) = lock(&failures).first() {
        return Err(first.clone());
    }
    if let Some(reopened) = subject.reopen() {
        for n in (7..7 + THREADS).chain([shared]) {
            let loaded = block_on(reopened.load(fixtures::key(n), engine));
            expect_module("a fresh handle after the threads", loaded, n)?;
        }
    }
    Ok(Outcome::Passed)
}

/// The cache under test, then a fresh handle on its storage if it has one.
fn handles<S: CacheUnderTest>(subject: &S) -> Vec<(&'static str, HandleRef<'_, S::Cache>)> {
    let mut handles = vec![("the saving handle", HandleRef::Borrowed(subject.cache()))];
    if let Some(fresh) = subject.reopen() {
        handles.push(("a fresh handle", HandleRef::Owned(fresh)));
    }
    handles
}

/// A handle the checks use: the subject's own, or one it opened for them.
enum HandleRef<'a, C> {
    Borrowed(&'a C),
    Owned(C),
}

impl<C> std::ops::Deref for HandleRef<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        match self {
            HandleRef::Borrowed(cache) => cache,
            HandleRef::Owned(cache) => cache,
        }
    }
}

/// `loaded` is fixture module `n`, exactly.
fn expect_module(handle: &str, loaded: Result<Module, CacheError>, n: u32) -> Result<(), String> {
    let module = loaded.map_err(|e| format!("{handle}: module {n} does not load: {e}"))?;
    same_module(&module, n).map_err(|e| format!("{handle}: {e}"))
}

/// Whether `module` is fixture module `n`: the same artifact, and the same answer when run.
fn same_module(module: &Module, n: u32) -> Result<(), String> {
    let ours = fixtures::compiled(n)
        .serialize()
        .map_err(|e| e.to_string())?;
    let theirs = module.serialize().map_err(|e| e.to_string())?;
    if theirs != ours {
        return Err(format!(
            "the module loaded for {n} is not the one saved ({} bytes, not {})",
            theirs.len(),
            ours.len()
        ));
    }
    let answer = fixtures::answer(module, fixtures::engine());
    if answer != n as i32 {
        return Err(format!("the module loaded for {n} answers {answer}"));
    }
    Ok(())
}

/// Runs `future` on this thread's runtime.
fn block_on<T>(future: impl Future<Output = T>) -> T {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The modules the checks save: module `n` exports `answer`, which returns `n`.
pub mod fixtures {
    use super::*;

    /// The engine the checks use (`Engine::default()`, one per process).
    pub fn engine() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(Engine::default)
    }

    /// A module whose `answer` export returns `n`; `n` extra functions make sizes differ.
    pub fn wat_module(n: u32) -> Vec<u8> {
        let mut wat = format!("(module (func (export \"answer\") (result i32) i32.const {n})");
        for i in 0..n % 16 {
            wat.push_str(&format!(
                " (func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} \
                 i32.add)"
            ));
        }
        wat.push(')');
        wasmer::wat2wasm(wat.as_bytes())
            .expect("test module is valid wat")
            .into_owned()
    }

    /// The key of [`wat_module`]`(n)`: the SHA-256 of its wasm bytes.
    pub fn key(n: u32) -> ModuleHash {
        ModuleHash::new(wat_module(n))
    }

    /// [`wat_module`]`(n)` compiled by [`engine`], once per process.
    pub fn compiled(n: u32) -> Module {
        static MODULES: OnceLock<Mutex<HashMap<u32, Module>>> = OnceLock::new();
        let modules = MODULES.get_or_init(Default::default);
        if let Some(module) = lock(modules).get(&n) {
            return module.clone();
        }
        // Compiled outside the lock, so that threads compiling different modules overlap.
        let module = Module::new(engine(), wat_module(n)).expect("test module compiles");
        lock(modules).entry(n).or_insert(module).clone()
    }

    /// Instantiates `module` with no imports and calls its `answer` export.
    pub fn answer(module: &Module, engine: &Engine) -> i32 {
        let mut store = Store::new(engine.clone());
        let instance =
            Instance::new(&mut store, module, &imports! {}).expect("module instantiates");
        instance
            .exports
            .get_typed_function::<(), i32>(&store, "answer")
            .expect("module exports answer")
            .call(&mut store)
            .expect("answer runs")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::SharedCache;

    /// How a deliberately broken cache breaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Defect {
        /// Saves return `Ok` and keep nothing.
        LosesSaves,
        /// Loads of a saved key return another module.
        ReturnsAnother,
        /// Damaged bytes load as a module all the same.
        IgnoresDamage,
        /// Damaged bytes make loads panic.
        PanicsOnDamage,
    }

    /// A cache over a [`SharedCache`] with one [`Defect`].
    #[derive(Debug)]
    struct Broken {
        defect: Defect,
        modules: SharedCache,
        damaged: AtomicBool,
    }

    #[async_trait::async_trait]
    impl ModuleCache for Broken {
        async fn load(&self, key: ModuleHash, engine: &Engine) -> Result<Module, CacheError> {
            let module = self.modules.load(key, engine).await?;
            let damaged = self.damaged.load(Ordering::SeqCst);
            let wrong = match self.defect {
                Defect::ReturnsAnother => true,
                Defect::IgnoresDamage => damaged,
                Defect::PanicsOnDamage if damaged => panic!("the damaged bytes broke it"),
                Defect::LosesSaves | Defect::PanicsOnDamage => false,
            };
            Ok(if wrong {
                fixtures::compiled(99)
            } else {
                module
            })
        }

        async fn contains(&self, key: ModuleHash, engine: &Engine) -> Result<bool, CacheError> {
            self.modules.contains(key, engine).await
        }

        async fn save(
            &self,
            key: ModuleHash,
            engine: &Engine,
            module: &Module,
        ) -> Result<(), CacheError> {
            self.damaged.store(false, Ordering::SeqCst);
            if self.defect == Defect::LosesSaves {
                return Ok(());
            }
            self.modules.save(key, engine, module).await
        }
    }

    impl CacheUnderTest for Broken {
        type Cache = Broken;

        fn cache(&self) -> &Broken {
            self
        }

        fn reopen(&self) -> Option<Broken> {
            None
        }

        fn corrupt(&self, _: ModuleHash, _: &Engine) -> bool {
            self.damaged.store(true, Ordering::SeqCst);
            true
        }
    }

    fn broken(defect: Defect) -> Broken {
        Broken {
            defect,
            modules: SharedCache::new(),
            damaged: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_cache_that_loses_saves_fails_the_round_trip() {
        let failure = run(&broken(Defect::LosesSaves)).unwrap_err();
        assert_eq!(failure.check, "round trip", "{failure}");
        assert!(failure.message.contains("after a save"), "{failure}");
    }

    #[test]
    fn a_cache_that_returns_another_module_fails_the_round_trip() {
        let failure = run(&broken(Defect::ReturnsAnother)).unwrap_err();
        assert_eq!(failure.check, "round trip", "{failure}");
        assert!(
            failure.message.contains("is not the one saved"),
            "{failure}"
        );
    }

    #[test]
    fn a_cache_that_serves_damaged_bytes_fails_the_corruption_check() {
        let failure = run(&broken(Defect::IgnoresDamage)).unwrap_err();
        assert_eq!(failure.check, "corruption", "{failure}");
        assert!(failure.message.contains("damaged bytes"), "{failure}");
    }

    #[test]
    fn a_cache_that_panics_on_damaged_bytes_fails_the_corruption_check() {
        let failure = run(&broken(Defect::PanicsOnDamage)).unwrap_err();
        assert_eq!(failure.check, "corruption", "{failure}");
        assert_eq!(failure.message, "panicked: the damaged bytes broke it");
    }
}

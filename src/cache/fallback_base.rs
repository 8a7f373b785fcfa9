//! [`FallbackCache`], the type: two caches and their accessors. Its lookups are in
//! `fallback.rs`; the type is here, apart, because the trait's `with_fallback` names it too.

/// Two caches chained: every lookup tries `Primary` first, then `Fallback`; a module found
/// only in the fallback is promoted (saved) into the primary. Usually built with
/// [`ModuleCache::with_fallback`](crate::ModuleCache::with_fallback).
///
/// Unlike wasix's `FallbackCache`, an error from the primary does not fail a lookup: it is
/// logged with `tracing::warn!` and the fallback is asked instead.
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmpak::{ModuleCache, ModuleHash, SharedCache, ThreadLocalCache};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let shared = SharedCache::new();
///     shared.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///
///     let cache = ThreadLocalCache::new().with_fallback(shared);
///     assert!(!cache.primary().contains(key, &engine).await?);
///     cache.load(key, &engine).await?; // found in the fallback, promoted
///     assert!(cache.primary().contains(key, &engine).await?);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FallbackCache<Primary, Fallback> {
    pub(super) primary: Primary,
    pub(super) fallback: Fallback,
}

impl<Primary, Fallback> FallbackCache<Primary, Fallback> {
    /// Chains `fallback` behind `primary`.
    pub fn new(primary: Primary, fallback: Fallback) -> Self {
        FallbackCache { primary, fallback }
    }

    /// The cache tried first.
    pub fn primary(&self) -> &Primary {
        &self.primary
    }

    /// The cache tried when the primary misses.
    pub fn fallback(&self) -> &Fallback {
        &self.fallback
    }

    /// The two caches, primary first.
    pub fn into_inner(self) -> (Primary, Fallback) {
        (self.primary, self.fallback)
    }
}

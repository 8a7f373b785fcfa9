//! The fleet tier: modules in an object store (S3 and compatibles, GCS, Azure, local files,
//! memory), behind any `Arc<dyn ObjectStore>` from Apache Arrow's `object_store`.
//!
//! Assumptions: the store is shared by every node of a fleet, far slower than a local pack
//! (milliseconds per request at best), and sometimes slow or unreachable. So this tier sits
//! behind the local ones ([`ModuleCache::with_fallback`]), every request is bounded by a
//! timeout, a store that failed is left alone for a while, and nothing it does can fail a
//! load: an unreachable store, like a damaged, foreign or stale object, is a miss with a
//! warning. Keys are content hashes, so two nodes saving one key save the same module: the
//! first write wins (`PutMode::Create`) and the others count it as saved.

mod builder;
mod cache;
mod error;
mod module_object;
mod runtime;
mod url;

pub use builder::ObjectStoreCacheBuilder;
pub use cache::ObjectStoreCache;
pub use error::{ObjectStoreStats, RemoteError, RemoteErrorKind};
pub use url::StoreUrl;

#[cfg(test)]
mod tests;

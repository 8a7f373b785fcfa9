//! [`PackCache`]: modules cached in memory-mapped pack files, one per engine identity, behind
//! read-only packs shipped with the application.

mod builder;
mod cache;
mod compaction;
mod discovery;
mod load;
mod maintenance;
mod pack_files;
mod pack_set;
mod slot;
mod stats;

pub use builder::PackCacheBuilder;
pub use cache::PackCache;
pub use stats::CacheStats;

#[cfg(test)]
mod tests;

//! Compiled WebAssembly modules for [wasmer], cached in one memory-mapped, crash-safe pack file.
//!
//! Compiling a module with cranelift takes milliseconds to seconds; loading its compiled
//! artifact takes microseconds to milliseconds. wasmpak keeps those artifacts in a single
//! append-only *pack* file per engine identity, maps it into memory, and hands wasmer a view
//! of the bytes straight from the page cache: no read into a buffer, no copy per process, a
//! checksum before any byte reaches `unsafe` deserialization, and nothing a crashed or
//! concurrent writer can tear.
//!
//! # First example
//!
//! A memory cache in front of a pack cache: the runtime loads by the wasm's hash, and only
//! compiles on a miss.
//!
//! ```
//! # #[cfg(feature = "wasmer")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wasmer::{Engine, Module};
//! use wasmpak::{ModuleCache, ModuleHash, PackCache, SharedCache};
//!
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::default();
//! let wasm = wasmer::wat2wasm(br#"(module (func (export "add") (param i32 i32) (result i32)
//!     local.get 0 local.get 1 i32.add))"#)?;
//! let key = ModuleHash::new(&wasm);
//!
//! let cache = SharedCache::default().with_fallback(PackCache::new(dir.path()));
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let module = runtime.block_on(async {
//!     match cache.load(key, &engine).await {
//!         Ok(module) => Ok(module),
//!         Err(e) if e.is_not_found() => {
//!             let module = Module::new(&engine, &wasm)?;
//!             cache.save(key, &engine, &module).await?;
//!             Ok(module)
//!         }
//!         Err(e) => Err(Box::<dyn std::error::Error>::from(e)),
//!     }
//! })?;
//! assert!(module.exports().any(|e| e.name() == "add"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "wasmer"))]
//! # fn main() {}
//! ```
//!
//! # Concepts
//!
//! - **[`ModuleCache`]** is the trait runtimes plug in, shaped like
//!   `wasmer_wasix::runtime::module_cache::ModuleCache` (with the `wasix` feature our caches
//!   implement that trait too). [`PackCache`] is the one this crate is for; [`SharedCache`],
//!   [`ThreadLocalCache`], [`FileSystemCache`] and [`FallbackCache`] complete the family.
//! - **[`Pack`]** is the store underneath: 32-byte [`Key`]s to byte values, in one file, for any
//!   number of reading and writing processes. It knows nothing of wasmer. Writers append under
//!   an exclusive file lock and publish with a commit slot; readers never lock.
//! - **[`PackIdentity`]** names what a pack's contents are valid for. For wasmer
//!   ([`EngineIdentity`]) that is the engine's deterministic id, artifact format, artifact ABI
//!   version, target triple and CPU features: `Engine::deterministic_id()` alone is just
//!   `"cranelift-opts"`, which would let two wasmer versions read each other's artifacts. An
//!   engine loads a pack built for a subset of its CPU features ([`EngineIdentity::can_load`],
//!   wasmer's own rule), so one pack per [`CpuLevel`] serves a fleet.
//! - **Shipping.** [`PackCacheBuilder::shipped_pack`] and [`PackCacheBuilder::shipped_dir`]
//!   put read-only packs built in CI in front of the cache's own directory; each host reads the
//!   most specific ones it can load.
//! - **Embedding.** [`include_pack!`] compiles a pack into the binary, aligned as artifacts
//!   need; [`Pack::from_static`] / [`Pack::from_bytes`] read a pack held in memory, and
//!   [`PackCacheBuilder::embedded_pack`] puts one in front of a cache, read-only.
//! - **Integrity.** Every value carries a CRC-32, checked before wasmer sees it (once per value
//!   per process by default, see [`Verify`]). Every structure in the file has its own checksum,
//!   and a damaged structure yields an error or a miss, never a wrong value.
//! - **Signatures.** [`Pack::sign`] vouches for every entry with an Ed25519 [`SecretKey`]
//!   (PKCS#8 PEM, as openssl writes it); readers given trusted [`PublicKey`]s
//!   ([`PackOptions::trusted_keys`], [`PackCacheBuilder::trusted_keys`]) refuse any entry no
//!   trusted signature covers or whose BLAKE3 hash differs from the signed one.
//!   [`Pack::install_into`] copies a pack into place verified and sealed, and
//!   [`PackOptions::trust_installed`] then loads it without re-hashing.
//! - **Durability.** A commit `fdatasync`s its records before publishing them, and its commit
//!   slot after ([`Durability::Full`]): once it returned, it survives power loss. Two commit
//!   slots survive a torn slot write; unsynced commits ([`Durability::None`]) never overwrite
//!   the slot of the last synced one, so after a power loss the pack opens at a consistent
//!   commit. A power-loss simulator checks both: every crash state at small crash points,
//!   a sample of them past that (docs/FORMAT.md, section 4.3).
//! - **Maintenance.** Values are never rewritten in place: replaced and removed values become
//!   dead bytes, which [`Pack::compact`] (or [`PackCache`]'s background compaction) reclaims by
//!   writing a new file and renaming it over the old one, optionally evicting the least
//!   recently used entries beyond a [`Retention`] limit.
//!
//! The byte-level format and its crash-safety argument are in `docs/FORMAT.md`; what each
//! module holds is in `docs/ARCHITECTURE.md`. Two modules are public besides the crate root:
//! [`format`](mod@format), the codec layer (pure functions over a pack's bytes, for fuzzers and tools),
//! and [`fs`], the durable file write every file the library creates goes through (a
//! temporary file beside the destination, synced and renamed into place), for tools that put
//! files in place the same way.
//!
//! # Features
//!
//! - `wasmer` (default): the module caches. Without it the crate is the pack store alone, with
//!   no wasmer dependency.
//! - `wasix`: implement `wasmer_wasix::runtime::module_cache::ModuleCache` for our caches, and
//!   run WASI programs from a cache with `WasixHost` (also `wasmpak run PROGRAM.wasm -- ARGS`).
//! - `singlepass`: wasmer's singlepass compiler, for engines built with it.
//! - `wasmer-cache`: [`WasmerCache`], our caches behind the `wasmer-cache` crate's `Cache` trait.
//! - `object-store`: [`ObjectStoreCache`], the fleet tier over S3 and other object stores, and
//!   the tool's `push` and `pull`.
//! - `conformance`: `wasmpak::conformance`, the checks every [`ModuleCache`] runs (a round trip, a
//!   miss, an overwrite, damaged bytes, threads), for caches of your own; not API-stable.
//! - `fault-injection`: testing only (crash points, the storage seam's recorder and fault
//!   injection, `WASMPAK_PORTABLE_IO=1`).
//!
//! # Platforms
//!
//! Linux, macOS and the BSDs, from the same code; Windows is refused at compile time: wasmer 7
//! has no compiler backend there (only V8, which has no artifacts to cache), and the store
//! relies on Unix file semantics (renaming a new pack over one other processes map, file owners
//! and modes). Linux-only calls have portable fallbacks: `copy_file_range` (compaction) falls
//! back to a buffered copy, `fdatasync` to `fsync`, which on macOS is `fcntl(F_FULLFSYNC)`, the
//! only call that flushes the drive's cache there.
//!
//! # Safety
//!
//! The crate has two kinds of `unsafe`: the memory mapping (sound because the format never
//! modifies or truncates committed bytes, see `src/pack/mapping.rs`) and the one
//! deserialization of an artifact, in `src/cache/artifact.rs`, which every cache and
//! [`load_module`] go through (sound because the engine can load the pack's identity and the
//! value's checksum or signature matched; its contract lists every way bytes reach it). Whoever can write a pack can run code in every
//! process that loads from it, so packs writable by other users are refused unless
//! [`PackOptions::allow_shared_write`] says otherwise, and signatures narrow "whoever can write
//! it" to "whoever holds the signing key". One option is `unsafe` to call:
//! [`PackOptions::trust_installed`], which skips the per-process check for installed packs on
//! the caller's promise that nothing modifies them.

#![deny(unsafe_code)]

// With the `wasmer` feature a Windows build stops earlier, in wasmer's compilers (their own
// `compile_error!`, wasmer PR #6826); this is what the store alone says.
#[cfg(not(unix))]
compile_error!(
    "wasmpak supports Unix-like systems only (Linux, macOS, the BSDs): wasmer 7 has no compiler \
     backend on Windows (it supports only V8 there, which has no artifacts to cache), so nothing \
     there can build a pack's modules; and the store relies on Unix file semantics (renaming a \
     new pack over one other processes map, file owners and modes)"
);

mod error;
pub mod format;
pub mod fs;
mod pack;
mod storage;
mod sync;
mod trust;

pub use error::{Error, ErrorKind, Result};
pub use format::identity::{IdentityValue, PackIdentity};
pub use format::key::{Key, ParseKeyError};
pub use pack::{
    Batch, CompactReport, Durability, Entry, LostCommit, LostEntry, Pack, PackOptions, Problem,
    Retention, Stats, Verify, VerifyReport, aligned_bytes,
};
pub use trust::{
    KeyError, KeyErrorKind, PublicKey, SecretKey, SignatureInfo, SignatureReport, SignatureStatus,
    SignedEntry,
};

#[cfg(feature = "wasmer")]
mod cache;
#[cfg(feature = "wasmer")]
mod engine;
#[cfg(feature = "wasix")]
mod wasix;
#[cfg(feature = "wasmer")]
pub use cache::*;
#[cfg(feature = "wasmer")]
pub use engine::{CpuLevel, EngineIdentity, Incompatibility};
/// Apache Arrow's `object_store`, the version [`ObjectStoreCache`] takes stores from.
#[cfg(feature = "object-store")]
pub use object_store;
#[cfg(feature = "wasix")]
pub use wasix::{WasiRunError, WasiRunErrorKind, WasixHost};

/// The storage seam's test hooks (feature `fault-injection` only): recording the operations a
/// workload performs, for the power-loss simulator, and failing chosen ones.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod storage_sim {
    pub use crate::storage::faults::{Fault, OpKind, fail_nth};
    pub use crate::storage::os::portable_io;
    pub use crate::storage::trace::{FileId, Recording, TraceOp};
}

/// The README's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "wasmer"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

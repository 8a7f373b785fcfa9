//! What a wasmer engine's compiled modules depend on, and which packs an engine may load.
//!
//! Not a cache: every cache keys its entries by an engine's [`EngineIdentity`], a pack records
//! the identity it was built for, and the tool names pack files and CPU levels with it.
//!
//! - [`identity`]: [`EngineIdentity`], the fields an artifact depends on, as a pack stores them.
//! - [`incompatibility`]: [`Incompatibility`], why an engine cannot load a pack.
//! - [`cpu_level`]: [`CpuLevel`], the named feature levels a fleet's packs are built for.
//! - [`loadable`]: the check before any artifact reaches wasmer, remembered per engine.

pub(crate) mod cpu_level;
pub(crate) mod identity;
pub(crate) mod incompatibility;
pub(crate) mod loadable;

pub use cpu_level::CpuLevel;
pub use identity::EngineIdentity;
pub use incompatibility::Incompatibility;

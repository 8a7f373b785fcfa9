//! How a pack is opened: checksum policy, durability, permission checks.

use std::path::Path;

use crate::{Pack, PackIdentity, Result};

/// When [`Pack::get`] checks a value's CRC-32 before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// On every `get`.
    Always,
    /// On the first `get` of each value in this process (per open file); later gets of the
    /// same value trust the check already made. The bytes cannot change under us: the format
    /// never rewrites committed bytes.
    #[default]
    Once,
    /// Never: for callers that verify by other means.
    Never,
}

/// How hard a commit works to survive power loss. A process crash loses nothing committed
/// either way: the page cache survives it. docs/FORMAT.md, section 4.3, states both exactly;
/// `tests/power_loss/` proves them by simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Sync the appended records before writing the commit slot, and the slot after (two
    /// `fdatasync`s; `F_FULLFSYNC` on macOS). A commit that returned survives power loss, byte
    /// for byte; one in flight is there whole or not at all.
    #[default]
    Full,
    /// No sync per commit (only the first one after a synced commit syncs, once). After a
    /// power loss the pack still opens, at a commit no older than the last synced one (the
    /// last `Full` commit, the creation or the last compaction); values committed since then
    /// may fail their checksum, which reads report as corruption (unless [`Verify::Never`])
    /// and compaction drops. For caches that can recompute what they lose.
    None,
}

/// Options for opening or creating a [`Pack`].
///
/// # Example
///
/// ```
/// use wasmpak::{Durability, PackIdentity, PackOptions, Verify};
///
/// let dir = tempfile::tempdir()?;
/// let identity = PackIdentity::new().with("engine", "demo");
/// let pack = PackOptions::new()
///     .verify(Verify::Always)
///     .durability(Durability::None)
///     .open_or_create(dir.path().join("scratch.wpk"), &identity)?;
/// assert!(pack.is_empty()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub(crate) verify: Verify,
    pub(crate) durability: Durability,
    pub(crate) allow_shared_write: bool,
}

impl PackOptions {
    /// The defaults: [`Verify::Once`], [`Durability::Full`], refuse packs writable by others.
    pub fn new() -> PackOptions {
        PackOptions::default()
    }

    /// Sets the checksum policy for reads.
    pub fn verify(mut self, verify: Verify) -> Self {
        self.verify = verify;
        self
    }

    /// Sets the durability of commits.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens packs even if users other than the owner or root can write them (by default such
    /// packs are refused with [`ErrorKind::Insecure`](crate::ErrorKind::Insecure), the way ssh
    /// refuses keys others can write).
    pub fn allow_shared_write(mut self, allow: bool) -> Self {
        self.allow_shared_write = allow;
        self
    }

    /// Opens an existing pack, which must have `identity`.
    pub fn open(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::open_with(path.as_ref(), Some(identity), self.clone())
    }

    /// Opens an existing pack of any identity (for tools that inspect packs).
    pub fn open_any(&self, path: impl AsRef<Path>) -> Result<Pack> {
        Pack::open_with(path.as_ref(), None, self.clone())
    }

    /// Creates a new, empty pack; fails with
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) if the path exists.
    pub fn create(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::create_with(path.as_ref(), identity, self.clone())
    }

    /// Opens the pack at `path`, creating it if there is none. Safe against other processes
    /// doing the same at the same time: all of them end up with the same file.
    pub fn open_or_create(&self, path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        Pack::open_or_create_with(path.as_ref(), identity, self.clone())
    }
}

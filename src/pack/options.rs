//! How a pack is opened: checksum policy, durability, permission checks, and the check a
//! layer above the store makes of each value.

use std::path::Path;
use std::sync::Arc;

use crate::{Error, Result};

use super::check::ValueCheck;

/// When [`Pack::get`](crate::Pack::get) checks a value's CRC-32 before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// On every `get`.
    Always,
    /// On the first `get` of each value in this process (per open file); later gets of the
    /// same value trust the check already made. The bytes cannot change under us: the format
    /// never rewrites committed bytes.
    #[default]
    Once,
    /// Never: for callers that verify by other means. Refused with trusted keys, whose check
    /// is the hash of the bytes. `load_module` (feature `wasmer`) refuses such a pack (unless
    /// it is opened with [`trust_installed`](PackOptions::trust_installed)): nothing would
    /// check the bytes it hands to wasmer.
    Never,
}

/// How hard a commit works to survive power loss. A process crash loses nothing committed
/// either way: the page cache survives it. docs/FORMAT.md, section 4.3, states both exactly;
/// `tests/power_loss/` checks them by simulation, trying every crash state where a crash point
/// leaves few unsynced writes and a seeded sample of them where it leaves more.
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

/// Options for opening or creating a [`Pack`](crate::Pack).
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
    /// What vets each value before `get` hands it out (set by
    /// [`PackOptions::trusted_keys`]); `None`: the CRC-32 alone.
    pub(crate) check: Option<Arc<dyn ValueCheck>>,
    /// Skip value hashing for installed packs (see [`PackOptions::trust_installed`]).
    pub(crate) trust_installed: bool,
    /// The lowest release a signature must name to vouch for anything (0: any); the check
    /// above the store applies it (see `PackOptions::min_release`).
    pub(crate) min_release: u64,
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
    /// refuses keys others can write: a file with a group or other write bit, or owned by
    /// another user, or on a path others could replace it through; docs/FORMAT.md, section 15).
    ///
    /// With [`PackOptions::trusted_keys`], every [`Pack::get`](crate::Pack::get) of such a
    /// pack then reads the value into private memory, hashes that copy and hands out the copy,
    /// so that no writer can change the bytes between the check and their use; it costs a copy
    /// of each value on every get. Without trusted keys nothing stops a user who can write the
    /// file from placing code in it: the CRC-32s catch accidents, not forgeries.
    pub fn allow_shared_write(mut self, allow: bool) -> Self {
        self.allow_shared_write = allow;
        self
    }

    /// Loads from an installed pack without hashing its values in every process: the check
    /// was made once, when [`Pack::install_into`](crate::Pack::install_into) (or `wasmpak install`) copied and verified it.
    /// Opening refuses ([`ErrorKind::NotSealed`](crate::ErrorKind::NotSealed)) a pack that is
    /// not sealed by an install, whose file has any write permission bit set, that is owned by
    /// a user other than this one or root, or whose directory users other than its owner can
    /// write. Trusted keys, if set, are still checked against the signed manifest (lengths and
    /// labels), just not against the bytes.
    ///
    /// # Safety
    ///
    /// The values of a pack go to `Module::deserialize_unchecked`, which trusts its input
    /// completely. With this option nothing checks them any more, so the caller promises that
    /// **the file's bytes are exactly the ones the install verified, for as long as any process
    /// loads from it**: no one with write access (the owner or root) changes, truncates or
    /// replaces it in place, the storage below does not corrupt it silently, and the directory
    /// stays writable by its owner alone. If that promise is broken, damaged bytes may reach
    /// deserialization, which is undefined behaviour. A new version is installed beside the
    /// old one and renamed over it, as `install` does, never written into it.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity, PackOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let built = Pack::create(dir.path().join("app.wpk"), &identity)?;
    /// built.insert(&Key::from_bytes([1; 32]), b"value")?;
    /// let installed_dir = dir.path().join("installed");
    /// std::fs::create_dir(&installed_dir)?;
    /// let installed = built.install_into(&installed_dir)?;
    ///
    /// // SAFETY: the installed file is never modified; it is replaced only by another install.
    /// let options = unsafe { PackOptions::new().trust_installed() };
    /// let pack = options.open(installed.path(), &identity)?;
    /// assert_eq!(pack.get(&Key::from_bytes([1; 32]))?.as_deref(), Some(&b"value"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(unsafe_code)] // An `unsafe` option: its contract is the Safety section above.
    // SAFETY: an `unsafe fn`: the caller takes on the contract in "# Safety" above.
    pub unsafe fn trust_installed(mut self) -> Self {
        self.trust_installed = true;
        self
    }

    /// Whether a check above the store (signatures) vets values.
    #[cfg(feature = "wasmer")] // Only the module caches ask.
    pub(crate) fn checks_signatures(&self) -> bool {
        self.check.is_some()
    }

    /// Refuses options that contradict each other, naming `path`: [`Verify::Never`] with
    /// trusted keys (their check is the hash of the bytes), and a minimum release without
    /// trusted keys (only signatures name releases).
    pub(crate) fn check_consistent(&self, path: &Path) -> Result<()> {
        if self.check.is_some() && self.verify == Verify::Never {
            return Err(Error::invalid_input(
                path,
                "Verify::Never cannot be combined with trusted keys, which check each value's \
                 hash: use Verify::Once",
            ));
        }
        if self.check.is_none() && self.min_release > 0 {
            return Err(Error::invalid_input(
                path,
                "a minimum release needs trusted keys: releases are named by signatures",
            ));
        }
        Ok(())
    }
}

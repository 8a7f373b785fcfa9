//! Installed packs: verified once when copied into place, sealed against writers, and then
//! (by the caller's deliberate choice) loaded without re-hashing in every process.

use std::path::Path;

use crate::error::Repr;
use crate::format::seal::{SEAL_AT, Seal};
use crate::format::superblock::{self, DATA_START};
use crate::fs::{self, FileMode, TempFile};
use crate::{Error, Pack, PackOptions, Result};

use super::file::file_identity;

/// Copies are written in pieces of this size, so a full disk stops them early.
const COPY_CHUNK: usize = 8 << 20;

impl Pack {
    /// Whether the pack is sealed: installed by [`Pack::install_into`], closed to writers.
    pub fn is_sealed(&self) -> Result<bool> {
        Ok(self.view()?.file.sealed)
    }

    /// Installs the pack into `dir`, under its own file name, and returns the installed pack
    /// (opened with this handle's options, minus [`PackOptions::trust_installed`]).
    ///
    /// The latest commit is copied to a temporary file in `dir` with the *sealed* flag set
    /// (no writer appends to it again), every byte of the copy is verified (every checksum
    /// and, if this handle has trusted keys, every entry against their signatures by its
    /// BLAKE3 hash), the copy is made read-only (mode 0444) and synced, and only then renamed
    /// over `dir/NAME`. Any failure (a damaged or unsigned pack, a full disk, a directory
    /// that cannot be written) removes the temporary file and leaves whatever was installed
    /// before untouched; processes still reading the old file keep their mapping.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{ErrorKind, Key, Pack, PackIdentity, PackOptions, SecretKey};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let ci = SecretKey::generate()?;
    /// let built = Pack::create(dir.path().join("app.wpk"), &identity)?;
    /// built.insert(&Key::from_bytes([1; 32]), b"module")?;
    /// built.sign(&ci)?;
    ///
    /// let target = dir.path().join("installed");
    /// std::fs::create_dir(&target)?;
    /// let node = PackOptions::new().trusted_keys([ci.public_key()]);
    /// let installed = node.open(built.path(), &identity)?.install_into(&target)?;
    /// assert_eq!(installed.path(), target.join("app.wpk"));
    /// assert_eq!(installed.insert(&Key::from_bytes([2; 32]), b"x").unwrap_err().kind(),
    ///            ErrorKind::ReadOnly);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install_into(&self, dir: impl AsRef<Path>) -> Result<Pack> {
        let dir = dir.as_ref();
        let name = self
            .path()
            .file_name()
            .ok_or_else(|| Error::invalid_input(self.path(), "the path has no file name"))?;
        let dest = dir.join(name);
        let same = |a: &Path, b: &Path| {
            std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
        };
        if same(self.path(), &dest) {
            return Err(Error::invalid_input(
                self.path(),
                "the pack is already in that directory; install it into another one",
            ));
        }
        let create_err = |source| {
            Error::from(Repr::Create {
                path: dest.clone(),
                source,
            })
        };
        let view = self.view()?;
        view.check_not_degraded()?; // a copy would bring back what the lost commit replaced
        let identity = view
            .file
            .identity
            .encode()
            .map_err(|detail| Error::invalid_input(&dest, detail))?;

        // Leftovers of installs that died go first (a live install's are locked).
        fs::remove_leftovers(&dest);
        let temp = TempFile::create(&dest, FileMode::ReadOnly).map_err(create_err)?;
        let data = view.bytes(
            DATA_START,
            view.commit.committed_len - DATA_START,
            "committed data",
        )?;
        let write_err = |source| Error::write(&dest, source);
        // The copy's commit is a synced one: it is synced before anyone opens it.
        let superblock = superblock::superblock_with(
            &superblock::encode_header_with(&identity, true),
            &view.commit.for_copy(),
        );
        temp.write_at(&superblock, 0).map_err(write_err)?;
        for (i, chunk) in data.chunks(COPY_CHUNK).enumerate() {
            let at = DATA_START + (i * COPY_CHUNK) as u64;
            temp.write_at(chunk, at).map_err(write_err)?;
        }
        temp.sync().map_err(write_err)?;

        // Verify the copy, not the source: what gets installed is what was checked.
        let check_options = PackOptions {
            trust_installed: false,
            ..self.inner.options.clone()
        };
        let copy = check_options.open(temp.path(), &self.inner.identity)?;
        let refuse = |detail: String| {
            Error::corrupt(
                &dest,
                format!("not installed, the copy failed verification: {detail}"),
            )
        };
        let report = copy.verify()?;
        if let Some(problem) = report.problems().first() {
            return Err(refuse(problem.to_string()));
        }
        let mut verified_with = Vec::new();
        if let Some(check) = &self.inner.options.check {
            let copy_view = copy.view()?;
            if let Some(problem) = check.check_all(&copy_view)? {
                return Err(match problem.key() {
                    Some(key) => Error::from(Repr::Untrusted {
                        path: dest.clone(),
                        key: *key,
                        reason: format!("not installed: {}", problem.detail()),
                    }),
                    None => refuse(problem.to_string()),
                });
            }
            verified_with = check.seal_keys(&copy_view)?;
        }
        drop(copy);
        // The seal: what was verified, bound to this file (a rename keeps its inode; a copy
        // gets another), so that a copied pack is not taken for an installed one.
        let meta = temp.file().metadata().map_err(write_err)?;
        let file = file_identity(temp.file(), &meta).map_err(write_err)?;
        let seal = Seal::new(file, verified_with).ok_or_else(|| {
            refuse("it is signed by more trusted keys than a seal records".to_string())
        })?;
        temp.write_at(&seal.encode(), SEAL_AT).map_err(write_err)?;
        // Read-only (0444), synced, renamed over `dest`, the directory synced.
        temp.persist().map_err(write_err)?;
        check_options.open(&dest, &self.inner.identity)
    }
}

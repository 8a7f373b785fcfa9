//! Installed packs: verified once when copied into place, sealed against writers, and then
//! (by the caller's deliberate choice) loaded without re-hashing in every process.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::format::superblock::{self, CommitSlot, DATA_START, Publication, SLOT_OFFSETS};
use crate::{Error, Pack, PackOptions, Result};

use super::file::{PackFile, parent_dir};
use super::storage::{Io, Storage};

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
        let create_err = |source| Error::Create {
            path: dest.clone(),
            source,
        };
        let view = self.view()?;
        let identity = view
            .file
            .identity
            .encode()
            .map_err(|detail| Error::invalid_input(&dest, detail))?;

        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".installing")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(create_err)?;
        let mut superblock_bytes = superblock::encode_header_with(&identity, true);
        superblock_bytes.resize(DATA_START as usize, 0);
        // The copy is synced before anyone opens it: its commit is a synced one.
        let slot = CommitSlot {
            superseded: false,
            publication: Publication::Synced,
            ..view.commit
        }
        .encode();
        for offset in SLOT_OFFSETS {
            superblock_bytes[offset as usize..offset as usize + slot.len()].copy_from_slice(&slot);
        }
        let data = view.bytes(
            DATA_START,
            view.commit.committed_len - DATA_START,
            "committed data",
        )?;
        let write_err = |source| Error::write(&dest, source);
        temp.write_all(&superblock_bytes).map_err(write_err)?;
        for chunk in data.chunks(COPY_CHUNK) {
            temp.write_all(chunk).map_err(write_err)?;
        }
        temp.as_file().sync_all().map_err(write_err)?;

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
        if self.inner.options.checks_signatures() {
            let signed = copy.verify_signatures(&self.inner.options.trusted_keys)?;
            if let Some(problem) = signed.problems().first() {
                return Err(match problem.key() {
                    Some(key) => Error::Untrusted {
                        path: dest.clone(),
                        key: *key,
                        reason: format!("not installed: {}", problem.detail()),
                    },
                    None => refuse(problem.to_string()),
                });
            }
        }
        drop(copy);
        temp.as_file()
            .set_permissions(Permissions::from_mode(0o444))
            .and_then(|()| temp.as_file().sync_all())
            .map_err(write_err)?;
        temp.persist(&dest).map_err(|e| write_err(e.error))?;
        Io::sync_dir(parent_dir(&dest)).map_err(write_err)?;
        check_options.open(&dest, &self.inner.identity)
    }
}

/// Refuses the trusted load path for a pack that is not sealed, has any write permission
/// bit, is owned by another user than this one or root, or lies in a directory that others
/// can write (and could replace it in).
pub(crate) fn check_installed(file: &PackFile) -> Result<()> {
    let refuse = |detail: String| Error::NotSealed {
        path: file.path.clone(),
        detail,
    };
    if !file.sealed {
        return Err(refuse(
            "it is not sealed; install it first (wasmpak install, or Pack::install_into)"
                .to_string(),
        ));
    }
    let meta = file
        .os_file()?
        .metadata()
        .map_err(|e| Error::read(&file.path, e))?;
    if meta.mode() & 0o222 != 0 {
        return Err(refuse(format!(
            "the file is writable (mode {:o}); an installed pack is read-only (0444)",
            meta.mode() & 0o7777
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(refuse(format!(
            "the file is owned by user {}, not by this user ({me}) or root",
            meta.uid()
        )));
    }
    let dir = parent_dir(&file.path);
    let dir_meta = std::fs::metadata(dir).map_err(|e| Error::read(&file.path, e))?;
    let sticky = dir_meta.mode() & 0o1000 != 0;
    if dir_meta.mode() & 0o022 != 0 && !sticky {
        return Err(refuse(format!(
            "its directory {} is writable by other users (mode {:o})",
            dir.display(),
            dir_meta.mode() & 0o7777
        )));
    }
    if dir_meta.uid() != me && dir_meta.uid() != 0 {
        return Err(refuse(format!(
            "its directory {} is owned by user {}, not by this user ({me}) or root",
            dir.display(),
            dir_meta.uid()
        )));
    }
    Ok(())
}

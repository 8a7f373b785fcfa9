//! Durable file writes: the one way the library puts a file in place.
//!
//! A file appears whole or not at all. It is written to a temporary file beside its
//! destination, named `.{file name}.{pid}-{nanoseconds}-{counter}.tmp` and locked (`flock`)
//! for as long as its writer holds it; synced; given its final mode; then renamed over the
//! destination, or linked to it if nothing is there; and the directory is synced, so that the
//! new name survives a power loss too. A temporary file dropped before that is removed. A
//! process that dies mid-write leaves its temporary file behind, unlocked:
//! [`remove_leftovers`] removes those of one destination, and leaves alone the ones a live
//! writer still locks.
//!
//! Every step goes through the storage seam (`crate::storage`), so the power-loss simulator
//! sees these writes as it sees a commit's.
//!
//! One rule decides the mode of every file the library creates: [`FileMode`].
//!
//! # Example
//!
//! A download written in pieces (by any thread: a [`TempFile`] is `Sync`), checked, then put
//! in place:
//!
//! ```
//! use wasmpak::fs::{FileMode, TempFile};
//!
//! let dir = tempfile::tempdir()?;
//! let dest = dir.path().join("app.wpk");
//! let temp = TempFile::create(&dest, FileMode::Public)?;
//! std::thread::scope(|scope| {
//!     scope.spawn(|| temp.write_at(b"hello, ", 0)).join().unwrap()
//! })?;
//! temp.write_vectored_at(&[std::io::IoSlice::new(b"world")], 7)?;
//! temp.sync()?;
//! assert_eq!(std::fs::read(temp.path())?, b"hello, world"); // check it before it counts
//! temp.persist()?;
//! assert_eq!(std::fs::read(&dest)?, b"hello, world");
//! assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "no temporary file is left");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, TryLockError};
use std::io::{self, IoSlice};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::storage::{Io, Storage};

/// The mode of a file the library creates: one rule for packs, artifacts, module files, key
/// files, installed packs and recency sidecars alike.
///
/// Nothing the library writes is writable by group or others, whatever the umask: whoever
/// can write a pack, an artifact or a module file can run code in every process that loads
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileMode {
    /// `0o644` less the umask: packs, extracted artifacts, module files, public keys.
    Public,
    /// `0o600` less the umask: readable by its owner alone (secret keys).
    Private,
    /// `0o444`, set when the file is put in place (installed packs, sealed against writers);
    /// `0o600` while it is written.
    ReadOnly,
    /// Exactly these permission bits (no umask), set when the file is put in place; `0o600`
    /// while it is written. Compaction keeps the mode of the pack it replaces.
    Exactly(u32),
}

impl FileMode {
    /// The mode the file is created with (the umask applies): a [`TempFile`]'s, or that of
    /// a file the library rewrites in place under a lock (the recency sidecar).
    pub(crate) fn while_written(self) -> u32 {
        match self {
            FileMode::Public => 0o644,
            FileMode::Private | FileMode::ReadOnly | FileMode::Exactly(_) => 0o600,
        }
    }

    /// The mode set exactly when the file is put in place, if it is not the creation mode.
    fn when_placed(self) -> Option<u32> {
        match self {
            FileMode::Public | FileMode::Private => None,
            FileMode::ReadOnly => Some(0o444),
            FileMode::Exactly(mode) => Some(mode & 0o7777),
        }
    }
}

/// The suffix of every temporary file [`TempFile`] creates.
const TEMP_SUFFIX: &str = ".tmp";
/// Suffixes of temporary files earlier versions wrote without locking them: removed only
/// when this old, as nothing tells a live writer's apart.
const UNLOCKED_SUFFIXES: [&str; 2] = [".creating", ".installing"];
const UNLOCKED_STALE_AFTER: Duration = Duration::from_secs(600);

/// A new file being written beside its destination; see the [module docs](self).
///
/// Removed when dropped unless [`TempFile::persist`] or [`TempFile::persist_new`] put it in
/// place. Its methods take `&self`, so threads may share it (in an `Arc`, or borrowed in a
/// scope) to write it and sync it while another checks it.
#[derive(Debug)]
pub struct TempFile {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
    mode: FileMode,
    /// Set once the temporary name is gone (renamed, or removed after linking).
    gone: bool,
}

impl TempFile {
    /// Creates an empty temporary file beside `dest` (in its directory), locked while this
    /// value lives, with `mode`'s creation mode. Fails if `dest` has no file name or its
    /// directory cannot be written.
    pub fn create(dest: impl AsRef<Path>, mode: FileMode) -> io::Result<TempFile> {
        let dest = dest.as_ref();
        if dest.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", dest.display()),
            ));
        }
        // A sweeper can take a temporary file in the instant between its creation and its
        // lock: then it is (being) removed, and a fresh name is the way on.
        for _ in 0..8 {
            let temp = temp_path(dest);
            let file = Io::create_new(&temp, mode.while_written())?;
            let created = TempFile {
                file,
                temp,
                dest: dest.to_path_buf(),
                mode,
                gone: false,
            };
            match created.file.try_lock() {
                Ok(()) if created.file.metadata()?.nlink() > 0 => return Ok(created),
                Ok(()) | Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    // A file system without `flock` (the store needs it to write, so this
                    // is rare): unlocked, the file is only unprotected from sweepers.
                    tracing::debug!(error = %e, "a temporary file could not be locked");
                    return Ok(created);
                }
            }
        }
        Err(io::Error::other(format!(
            "temporary files beside {} keep being removed as they are created",
            dest.display()
        )))
    }

    /// The open temporary file, for reads and for writes the other methods do not offer
    /// (they bypass the storage seam: the power-loss simulator does not see them).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path (to open it for checking before it is put in place).
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Where the file goes.
    pub fn destination(&self) -> &Path {
        &self.dest
    }

    /// Writes all of `bytes` at `offset`.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        Io::write_at(&self.file, bytes, offset)
    }

    /// Writes all of `bufs`, one after the other, from `offset` on (one system call for
    /// many chunks where the platform allows).
    pub fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        Io::write_vectored_at(&self.file, bufs, offset)
    }

    /// Makes what was written durable (`fsync`). [`TempFile::persist`] syncs again; this is
    /// for a writer that wants the sync done early, or beside a check.
    pub fn sync(&self) -> io::Result<()> {
        Io::sync_all(&self.file)
    }

    /// Puts the file in place, replacing whatever `dest` names: syncs it, sets its final
    /// mode, renames it over `dest`, and syncs the directory. On an error before the rename
    /// the temporary file is removed and `dest` is untouched; after it (the directory sync),
    /// the file is in place but may not survive a power loss.
    pub fn persist(self) -> io::Result<()> {
        self.replace()?.sync_dir()
    }

    /// Puts the file in place only if nothing is at `dest`: as [`TempFile::persist`], but
    /// linked rather than renamed, and an error of kind `AlreadyExists` if a file is there
    /// (which is left untouched). The temporary name is removed either way.
    pub fn persist_new(mut self) -> io::Result<()> {
        self.finish()?;
        let linked = Io::hard_link(&self.temp, &self.dest);
        // Whatever happened, the temporary name goes.
        let _ = Io::remove(&self.temp);
        self.gone = true;
        linked?;
        let dir = parent_dir(&self.dest).to_path_buf();
        drop(self); // unlocked before the directory sync: others may lock the file now
        Io::sync_dir(&dir)
    }

    /// The first half of [`TempFile::persist`]: sync, mode, rename over `dest`, unlock.
    /// The caller syncs the directory with [`Placed::sync_dir`] and learns apart an error
    /// before the rename (nothing changed) from one after it (not durable).
    pub(crate) fn replace(mut self) -> io::Result<Placed> {
        self.finish()?;
        Io::rename(&self.temp, &self.dest)?;
        self.gone = true;
        Ok(Placed {
            dir: parent_dir(&self.dest).to_path_buf(),
        })
    }

    /// Sets the final mode and syncs: everything but naming the file.
    fn finish(&mut self) -> io::Result<()> {
        if let Some(mode) = self.mode.when_placed() {
            Io::set_mode(&self.file, mode)?;
        }
        Io::sync_all(&self.file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.gone {
            let _ = Io::remove(&self.temp);
        }
    }
}

/// A file [`TempFile::replace`] renamed into place, its directory not synced yet.
#[must_use = "the rename is durable only once the directory is synced"]
pub(crate) struct Placed {
    dir: PathBuf,
}

impl Placed {
    /// Makes the rename durable.
    pub(crate) fn sync_dir(self) -> io::Result<()> {
        Io::sync_dir(&self.dir)
    }
}

/// Writes `bytes` to `dest` through a [`TempFile`], replacing any file there: readers see
/// the old file or the new one, never a part of either.
pub fn write_file(dest: impl AsRef<Path>, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    let temp = TempFile::create(dest, mode)?;
    temp.write_at(bytes, 0)?;
    temp.persist()
}

/// Writes `bytes` to `dest` through a [`TempFile`] unless a file is there (an error of kind
/// `AlreadyExists`, and the file untouched).
pub fn write_new_file(dest: impl AsRef<Path>, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    let temp = TempFile::create(dest, mode)?;
    temp.write_at(bytes, 0)?;
    temp.persist_new()
}

/// Renames `from` to `to` (in one directory), replacing `to`, and syncs the directory: the
/// one way the library moves a file it did not write (a pack set aside as unusable).
#[cfg_attr(not(feature = "wasmer"), allow(dead_code))] // Only the module caches use it.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    Io::rename(from, to)?;
    Io::sync_dir(parent_dir(to))
}

/// Removes the temporary files that writers of `dest` which died mid-write left beside it,
/// and returns how many. A temporary file whose writer is alive is locked and stays.
pub fn remove_leftovers(dest: impl AsRef<Path>) -> usize {
    let dest = dest.as_ref();
    let Some(name) = dest.file_name() else {
        return 0;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent_dir(dest)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let stale_unlocked = UNLOCKED_SUFFIXES.iter().any(|s| rest.ends_with(s))
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNLOCKED_STALE_AFTER);
        if !rest.ends_with(TEMP_SUFFIX) && !stale_unlocked {
            continue;
        }
        let path = entry.path();
        // The writer's lock says it is alive; ours, held until the removal, keeps a writer
        // that opens it meanwhile from taking it up.
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if Io::remove(&path).is_ok() {
            tracing::info!(file = %file_name, "removed a leftover temporary file");
            removed += 1;
        }
    }
    removed
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A fresh temporary name beside `dest`, unique in this process and unlikely to clash with
/// another's.
fn temp_path(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_dir(dest).join(format!(
        ".{name}.{}-{nanos}-{count}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> BTreeSet<String> {
        let entries = std::fs::read_dir(dir).unwrap();
        entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_appear_whole_with_their_mode_and_new_ones_replace_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (dest, key) = (dir.path().join("a.bin"), dir.path().join("secret.pem"));
        for (bytes, file_mode, expected) in [
            (&b"first"[..], FileMode::Public, None),
            (b"second", FileMode::ReadOnly, Some(0o444)),
            (b"third", FileMode::Exactly(0o640), Some(0o640)),
        ] {
            write_file(&dest, bytes, file_mode).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), bytes);
            assert_eq!(mode(&dest) & 0o022, 0, "never writable by group or others");
            assert!(expected.is_none_or(|m| m == mode(&dest)), "{file_mode:?}");
        }
        write_new_file(&key, b"key", FileMode::Private).unwrap();
        assert_eq!(mode(&key) & 0o077, 0);
        let err = write_new_file(&key, b"other", FileMode::Private).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        let expected: BTreeSet<String> = ["a.bin", "secret.pem"].map(String::from).into();
        assert_eq!(names(dir.path()), expected, "no temporary file is left");
    }

    #[test]
    fn a_dropped_file_is_removed_and_the_destination_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.bin");
        std::fs::write(&dest, b"old").unwrap();
        let temp = TempFile::create(&dest, FileMode::Public).unwrap();
        temp.write_at(b"half", 0).unwrap();
        assert!(temp.path().exists());
        assert_eq!(temp.destination(), dest);
        drop(temp);
        assert_eq!(names(dir.path()).len(), 1);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert!(TempFile::create("/", FileMode::Public).is_err());
    }

    #[test]
    fn leftovers_of_dead_writers_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("p.wpk");
        let live = TempFile::create(&dest, FileMode::Public).unwrap();
        // A dead writer's file: same scheme, nobody holds its lock.
        let dead = dir.path().join(".p.wpk.1-2-3.tmp");
        std::fs::write(&dead, b"torn").unwrap();
        // Not ours: another destination's, and a name that only looks alike.
        std::fs::write(dir.path().join(".q.wpk.1-2-3.tmp"), b"").unwrap();
        std::fs::write(dir.path().join("p.wpk.recency"), b"").unwrap();
        // An unlocked legacy temporary file, fresh: it may be a live old writer's.
        std::fs::write(dir.path().join(".p.wpk.9.creating"), b"").unwrap();
        assert_eq!(remove_leftovers(&dest), 1);
        assert!(!dead.exists());
        assert!(live.path().exists(), "a live writer's file stays");
        assert_eq!(names(dir.path()).len(), 4);
        live.persist().unwrap();
        assert!(dest.exists());
    }
}

//! The tool's one durable write: a temporary file beside the destination, written, synced,
//! renamed into place, the directory synced; removed if anything fails, and swept up by the
//! next write to the same destination if the process died. `extract` writes through it,
//! `pull`'s download streams into it.
//!
//! The library's durable write (through its storage seam) replaces this module: each caller
//! then makes one call to it instead.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::CliError;

/// A temporary file that becomes `dest` on [`install`](TempFile::install): created beside it
/// and locked while in use, removed unless installed.
#[derive(Debug)]
pub struct TempFile {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
}

impl TempFile {
    /// Creates `.{dest's name}.{purpose}-{pid}-{nanos}.tmp` beside `dest`, first removing the
    /// files of the same purpose left by processes that died (unlocked).
    pub fn create(dest: &Path, purpose: &str) -> Result<TempFile, CliError> {
        let shown = dest.display();
        if dest.is_dir() {
            return Err(CliError::failed(format!(
                "cannot write {shown}: it is a directory, expected a file name"
            )));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| CliError::failed(format!("cannot write {shown}: no file name")))?
            .to_string_lossy();
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let prefix = format!(".{name}.{purpose}-");
        remove_abandoned(dir, &prefix);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let temp = dir.join(format!("{prefix}{}-{nanos}.tmp", std::process::id()));
        let error = |e: std::io::Error| CliError::failed(format!("cannot write {shown}: {e}"));
        // The mode a pack is created with (umask applies), not a temporary file's 0600.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temp)
            .map_err(error)?;
        let temp = TempFile {
            file,
            temp,
            dest: dest.to_path_buf(),
        };
        temp.file.lock().map_err(error)?;
        Ok(temp)
    }

    /// The open file, to write to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path, to open it as what it holds.
    #[cfg(feature = "object-store")]
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Makes the written bytes durable.
    pub fn sync(&self) -> Result<(), CliError> {
        self.file
            .sync_data()
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", self.temp.display())))
    }

    /// Renames the synced file into place and makes the rename durable.
    pub fn install(&self) -> Result<(), CliError> {
        std::fs::rename(&self.temp, &self.dest).map_err(|e| {
            CliError::failed(format!("cannot install {}: {e}", self.dest.display()))
        })?;
        let dir = match self.dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CliError::failed(format!("cannot sync {}: {e}", dir.display())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a successful rename the temporary name is gone; otherwise this cleans up.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Writes `bytes` to `dest` durably: complete or not at all, never half a file.
pub fn write(dest: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let temp = TempFile::create(dest, "write")?;
    let mut file = temp.file();
    file.write_all(bytes)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", dest.display())))?;
    temp.sync()?;
    temp.install()
}

/// Removes temporary files named `{prefix}*.tmp` in `dir` whose process is gone: a live
/// writer holds its file's lock.
fn remove_abandoned(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(".tmp")) {
            continue;
        }
        if let Ok(file) = File::open(entry.path())
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting for them where
/// the system allows: a head start for the sync before the rename, which is the one relied
/// on. Returns whether it started (else the range is left for a later call).
#[cfg(all(target_os = "linux", feature = "object-store"))]
#[allow(unsafe_code)] // One system call std does not offer; its contract is below.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return true;
    };
    // SAFETY: `sync_file_range` takes no pointers, only a descriptor, which stays open for
    // the call because `file` is borrowed; its result is ignored because nothing relies on it.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
    true
}

/// Elsewhere a plain sync does it, once enough has piled up (it waits, but only on the
/// writer's thread, while the download goes on).
#[cfg(all(not(target_os = "linux"), feature = "object-store"))]
pub fn start_writeback(file: &File, _offset: u64, len: u64) -> bool {
    const SYNC_EVERY: u64 = 32 << 20;
    len >= SYNC_EVERY && file.sync_data().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.bin");
        write(&dest, b"first").unwrap();
        write(&dest, b"second").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.bin"]);
        assert!(
            write(dir.path(), b"x").is_err(),
            "a directory is no file name"
        );
    }

    #[test]
    fn sweeps_what_dead_writers_left_and_spares_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("p.wpk");
        let live = TempFile::create(&dest, "pull").unwrap();
        let dead = dir.path().join(".p.wpk.pull-1-2.tmp");
        std::fs::write(&dead, b"abandoned").unwrap();
        let other = dir.path().join(".p.wpk.write-1-2.tmp");
        std::fs::write(&other, b"another purpose").unwrap();
        let next = TempFile::create(&dest, "pull").unwrap();
        assert!(!dead.exists(), "a dead pull's file is swept");
        assert!(
            live.temp.exists(),
            "a live pull's file is locked, so spared"
        );
        assert!(
            other.exists(),
            "files of another purpose are not this write's to sweep"
        );
        let temps = [live.temp.clone(), next.temp.clone()];
        drop((live, next));
        assert!(
            temps.iter().all(|t| !t.exists()),
            "removed unless installed"
        );
        assert!(!dest.exists());
    }
}

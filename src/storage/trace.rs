//! The power-loss simulator's recorder (feature `fault-injection` only).
//!
//! While a [`Recording`] is active on a thread, every operation the store performs through
//! the storage seam on that thread is carried out as usual and also appended to the
//! recording, with the bytes it wrote. `tests/power_loss/` replays such a trace against a
//! model file system that keeps durable and volatile state apart, and builds the files a
//! power loss at any point could have left behind.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Storage;
use super::faults::{OpKind, check};
use super::os::Os;

/// A file, by device and inode number.
pub type FileId = (u64, u64);

/// One operation that changed what is on disk, as the store issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOp {
    /// A new, empty file `file` was created at `path`.
    Create {
        /// Where.
        path: PathBuf,
        /// The new file.
        file: FileId,
    },
    /// `bytes` were written to `file` at `offset` (a copy between files is recorded as the
    /// write of the bytes copied).
    Write {
        /// The file written.
        file: FileId,
        /// Where in it.
        offset: u64,
        /// What.
        bytes: Vec<u8>,
    },
    /// `fdatasync`: the file's data and length are durable.
    SyncData {
        /// The file synced.
        file: FileId,
    },
    /// `fsync`: the file's data, length and metadata are durable.
    SyncAll {
        /// The file synced.
        file: FileId,
    },
    /// `from` was renamed to `to`, replacing it.
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// `to` was linked to the file at `from`.
    HardLink {
        /// The existing name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// The name `path` was removed.
    Remove {
        /// The name.
        path: PathBuf,
    },
    /// The directory `dir` was synced: its entries are durable.
    SyncDir {
        /// The directory.
        dir: PathBuf,
    },
}

thread_local! {
    static TRACE: RefCell<Option<Vec<TraceOp>>> = const { RefCell::new(None) };
}

/// Records the storage operations of the current thread from [`Recording::start`] until
/// [`Recording::finish`] (or until dropped).
///
/// # Example
///
/// ```
/// use wasmpak::storage_sim::{Recording, TraceOp};
/// use wasmpak::{Key, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let recording = Recording::start();
/// let pack = Pack::create(dir.path().join("t.wpk"), &PackIdentity::new().with("a", "b"))?;
/// let created = recording.len();
/// pack.insert(&Key::from_bytes([1; 32]), b"value")?;
/// let trace = recording.finish();
/// assert!(matches!(trace[0], TraceOp::Create { .. }));
/// assert!(trace[created..].iter().any(|op| matches!(op, TraceOp::SyncData { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Recording {
    /// Tied to the thread whose operations it records.
    _thread: PhantomData<*const ()>,
}

impl Recording {
    /// Starts recording this thread's storage operations.
    ///
    /// # Panics
    ///
    /// If a recording is already active on this thread.
    pub fn start() -> Recording {
        TRACE.with(|trace| {
            let mut trace = trace.borrow_mut();
            assert!(
                trace.is_none(),
                "a recording is already active on this thread"
            );
            *trace = Some(Vec::new());
        });
        Recording {
            _thread: PhantomData,
        }
    }

    /// The number of operations recorded so far.
    pub fn len(&self) -> usize {
        TRACE.with(|trace| trace.borrow().as_ref().map_or(0, Vec::len))
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops recording and returns the operations, in the order they were performed.
    pub fn finish(self) -> Vec<TraceOp> {
        TRACE.with(|trace| trace.borrow_mut().take().unwrap_or_default())
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        TRACE.with(|trace| trace.borrow_mut().take());
    }
}

fn recording() -> bool {
    TRACE.with(|trace| trace.borrow().is_some())
}

fn record(op: TraceOp) {
    TRACE.with(|trace| {
        if let Some(ops) = trace.borrow_mut().as_mut() {
            ops.push(op);
        }
    });
}

fn id(file: &File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Records the write of `bytes()` to `file` at `offset`, while recording.
fn record_write(file: &File, offset: u64, bytes: impl FnOnce() -> Vec<u8>) -> io::Result<()> {
    if recording() {
        record(TraceOp::Write {
            file: id(file)?,
            offset,
            bytes: bytes(),
        });
    }
    Ok(())
}

/// Records the sync of `file` as `op` says, while recording.
fn record_sync(file: &File, op: impl FnOnce(FileId) -> TraceOp) -> io::Result<()> {
    if recording() {
        record(op(id(file)?));
    }
    Ok(())
}

/// The system calls of [`Os`], failed as a [`super::faults::Fault`] plans and recorded while a [`Recording`] is active on the thread.
pub(crate) struct Traced;

impl Storage for Traced {
    fn create_new(path: &Path, mode: u32) -> io::Result<File> {
        let file = Os::create_new(path, mode)?;
        if recording() {
            record(TraceOp::Create {
                path: path.to_path_buf(),
                file: id(&file)?,
            });
        }
        Ok(file)
    }

    fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        check(OpKind::Write)?;
        Os::write_at(file, bytes, offset)?;
        record_write(file, offset, || bytes.to_vec())
    }

    fn write_vectored_at(file: &File, bufs: &[io::IoSlice<'_>], offset: u64) -> io::Result<()> {
        check(OpKind::Write)?;
        Os::write_vectored_at(file, bufs, offset)?;
        record_write(file, offset, || {
            bufs.iter().flat_map(|buf| buf.iter().copied()).collect()
        })
    }

    fn copy_range(from: &File, from_at: u64, to: &File, to_at: u64, len: u64) -> io::Result<()> {
        check(OpKind::Write)?;
        Os::copy_range(from, from_at, to, to_at, len)?;
        if recording() {
            let mut bytes = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
            from.read_exact_at(&mut bytes, from_at)?;
            record_write(to, to_at, || bytes)?;
        }
        Ok(())
    }

    fn sync_data(file: &File) -> io::Result<()> {
        check(OpKind::SyncData)?;
        Os::sync_data(file)?;
        record_sync(file, |file| TraceOp::SyncData { file })
    }

    fn sync_all(file: &File) -> io::Result<()> {
        check(OpKind::SyncAll)?;
        Os::sync_all(file)?;
        record_sync(file, |file| TraceOp::SyncAll { file })
    }

    fn set_mode(file: &File, mode: u32) -> io::Result<()> {
        Os::set_mode(file, mode)
    }

    fn rename(from: &Path, to: &Path) -> io::Result<()> {
        check(OpKind::Rename)?;
        Os::rename(from, to)?;
        record(TraceOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
        Os::hard_link(from, to)?;
        record(TraceOp::HardLink {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn remove(path: &Path) -> io::Result<()> {
        Os::remove(path)?;
        record(TraceOp::Remove {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(dir: &Path) -> io::Result<()> {
        check(OpKind::SyncDir)?;
        Os::sync_dir(dir)?;
        record(TraceOp::SyncDir {
            dir: dir.to_path_buf(),
        });
        Ok(())
    }

    fn len(file: &File) -> io::Result<u64> {
        check(OpKind::Len)?;
        Os::len(file)
    }
}

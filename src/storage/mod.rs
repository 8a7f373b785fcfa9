//! The library's file I/O, behind one seam: the bottom layer, importing nothing of ours.
//!
//! Every change the library makes to what is on disk goes through [`Storage`]: creating a
//! file, writing at an offset, copying a range between files, syncing a file, setting its
//! mode, renaming, linking, removing, syncing a directory. The store (`pack/`) and the durable
//! writes of `fs.rs` call it through [`Io`], chosen at compile time:
//! [`os::Os`] (the system calls themselves, a zero-sized type, statically dispatched) in
//! every normal build, and with the `fault-injection` feature [`trace::Traced`], which also
//! records each operation for the power-loss simulator (`tests/power_loss/`) while a
//! [`trace::Recording`] is active on the calling thread, and fails the operation a
//! [`faults::Fault`] names. Reads stay outside the seam:
//! readers map the real file, and a crash changes only what writes left behind.

#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod os;
#[cfg(feature = "fault-injection")]
pub mod trace;

use std::fs::File;
use std::io;
use std::path::Path;

/// The operations that change a pack's files on disk.
pub(crate) trait Storage {
    /// Creates a new file for reading and writing with `mode` (less the umask); fails if
    /// `path` exists. Which mode is `fs::FileMode`'s rule, the one place that decides it.
    fn create_new(path: &Path, mode: u32) -> io::Result<File>;
    /// Writes all of `bytes` at `offset`.
    fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Writes all of `bufs`, one after the other, from `offset` on.
    fn write_vectored_at(file: &File, bufs: &[io::IoSlice<'_>], offset: u64) -> io::Result<()>;
    /// Copies `len` bytes from `from` at `from_at` to `to` at `to_at`.
    fn copy_range(from: &File, from_at: u64, to: &File, to_at: u64, len: u64) -> io::Result<()>;
    /// Makes the file's data (and its length) durable: a barrier between the writes before
    /// it and those after.
    fn sync_data(file: &File) -> io::Result<()>;
    /// Makes the file's data and metadata durable.
    fn sync_all(file: &File) -> io::Result<()>;
    /// Sets the file's permission bits to exactly `mode` (no umask). Not recorded for the
    /// power-loss simulator, which models names and bytes, not modes.
    fn set_mode(file: &File, mode: u32) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(from: &Path, to: &Path) -> io::Result<()>;
    /// Links `to` to the file at `from`; fails if `to` exists.
    fn hard_link(from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the name `path`.
    fn remove(path: &Path) -> io::Result<()>;
    /// Makes the creations, renames, links and removals in directory `dir` durable.
    fn sync_dir(dir: &Path) -> io::Result<()>;
    /// The file's current length.
    fn len(file: &File) -> io::Result<u64>;
}

/// The store's storage: the system calls, recorded in fault-injection builds.
#[cfg(not(feature = "fault-injection"))]
pub(crate) type Io = os::Os;
/// The store's storage: the system calls, recorded in fault-injection builds.
#[cfg(feature = "fault-injection")]
pub(crate) type Io = trace::Traced;

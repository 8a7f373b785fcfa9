//! Starting the writeback of downloaded bytes early, so that the sync before a pull's rename
//! finds little left to do: the one system call std and rustix do not offer.

use std::fs::File;

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting for them where
/// the system allows: a head start for the sync before the rename, which is the one relied
/// on. Returns whether it started (else the range is left for a later call).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // One system call std and rustix do not offer; its contract is below.
pub fn start(file: &File, offset: u64, len: u64) -> bool {
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
#[cfg(not(target_os = "linux"))]
pub fn start(file: &File, _offset: u64, len: u64) -> bool {
    const SYNC_EVERY: u64 = 32 << 20;
    len >= SYNC_EVERY && file.sync_data().is_ok()
}

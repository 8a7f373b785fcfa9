//! The production storage: system calls, with portable fallbacks for the Linux-only ones.
//!
//! Linux (and Android) copy ranges in the kernel with `copy_file_range`; elsewhere, or when the
//! file system refuses, the copy goes through a buffer. `sync_data` is `fdatasync` where it
//! exists (Linux, Android, FreeBSD) and a full sync elsewhere: on Apple platforms that is
//! `fcntl(F_FULLFSYNC)` (which the standard library's `sync_all` and `sync_data` issue there),
//! the only call that makes macOS flush the drive's cache, with a plain `fsync` on file
//! systems that refuse it. With the `fault-injection` feature, `WASMPAK_PORTABLE_IO=1` makes a
//! Linux build take every portable path, so the test suite exercises them where it runs.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Storage;

/// The operating system's file calls.
pub(crate) struct Os;

impl Storage for Os {
    fn create_new(path: &Path, mode: u32) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
    }

    fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(bytes, offset)
    }

    fn write_vectored_at(file: &File, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        #[cfg(not(any(target_os = "solaris", target_os = "haiku", target_os = "redox")))]
        if !portable_io() {
            return write_all_vectored_at(file, bufs, offset);
        }
        let mut at = offset;
        for buf in bufs {
            file.write_all_at(buf, at)?;
            at += buf.len() as u64;
        }
        Ok(())
    }

    fn copy_range(from: &File, from_at: u64, to: &File, to_at: u64, len: u64) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !portable_io() {
            return copy_in_kernel(from, from_at, to, to_at, len);
        }
        copy_buffered(from, from_at, to, to_at, len)
    }

    fn sync_data(file: &File) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if !portable_io() {
            return file.sync_data();
        }
        full_sync(file)
    }

    fn sync_all(file: &File) -> io::Result<()> {
        full_sync(file)
    }

    fn set_mode(file: &File, mode: u32) -> io::Result<()> {
        file.set_permissions(Permissions::from_mode(mode))
    }

    fn rename(from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove(path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(dir: &Path) -> io::Result<()> {
        full_sync(&File::open(dir)?)
    }

    fn len(file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }
}

/// Whether to take the portable fallbacks although the platform has the faster call:
/// `WASMPAK_PORTABLE_IO=1` in a build with the `fault-injection` feature (read once).
#[cfg(feature = "fault-injection")]
pub fn portable_io() -> bool {
    static PORTABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PORTABLE.get_or_init(|| std::env::var_os("WASMPAK_PORTABLE_IO").is_some_and(|v| v == "1"))
}

/// Whether to take the portable fallbacks: never, outside fault-injection builds.
#[cfg(not(feature = "fault-injection"))]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android", target_os = "freebsd")),
    allow(dead_code)
)]
pub(crate) const fn portable_io() -> bool {
    false
}

/// `fsync`, which on Apple platforms the standard library issues as `fcntl(F_FULLFSYNC)`; where
/// a file system refuses that (some network and FUSE file systems do), a plain `fsync`.
fn full_sync(file: &File) -> io::Result<()> {
    let result = file.sync_all();
    #[cfg(target_vendor = "apple")]
    if let Err(e) = &result {
        use rustix::io::Errno;
        let refused = [Errno::INVAL, Errno::NOTSUP, Errno::NOTTY]
            .iter()
            .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()));
        if refused {
            return rustix::fs::fsync(file).map_err(io::Error::from);
        }
    }
    result
}

/// `pwritev` until every buffer is written: one system call for many chunks where it can.
#[cfg(not(any(target_os = "solaris", target_os = "haiku", target_os = "redox")))]
fn write_all_vectored_at(file: &File, bufs: &[IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    let mut owned: Vec<IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).copied().collect();
    let mut bufs = &mut owned[..];
    while !bufs.is_empty() {
        match rustix::io::pwritev(file, bufs, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies in the kernel with `copy_file_range` (no copy through user space, and a reflink on
/// file systems that share extents); through a buffer where the file system cannot.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn copy_in_kernel(
    from: &File,
    mut from_at: u64,
    to: &File,
    mut to_at: u64,
    mut len: u64,
) -> io::Result<()> {
    use rustix::io::Errno;
    while len > 0 {
        let chunk = len.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(from, Some(&mut from_at), to, Some(&mut to_at), chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the pack ended early",
                ));
            }
            Ok(n) => len -= n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                return copy_buffered(from, from_at, to, to_at, len);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies through a buffer of at most 1 MiB: the portable way.
fn copy_buffered(
    from: &File,
    mut from_at: u64,
    to: &File,
    mut to_at: u64,
    mut len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; (1 << 20).min(len as usize)];
    while len > 0 {
        let chunk = (len as usize).min(buf.len());
        from.read_exact_at(&mut buf[..chunk], from_at)?;
        to.write_all_at(&buf[..chunk], to_at)?;
        from_at += chunk as u64;
        to_at += chunk as u64;
        len -= chunk as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_copy_copies_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let from = Os::create_new(&dir.path().join("from"), 0o644).unwrap();
        let to = Os::create_new(&dir.path().join("to"), 0o644).unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        Os::write_at(&from, &bytes, 0).unwrap();
        copy_buffered(&from, 100, &to, 7, 2_500_000).unwrap();
        let mut copied = vec![0u8; 2_500_000];
        to.read_exact_at(&mut copied, 7).unwrap();
        assert_eq!(copied, bytes[100..2_500_100]);
        assert_eq!(Os::len(&to).unwrap(), 2_500_007);
        // Past the end of the source: an error, not a short copy.
        assert!(copy_buffered(&from, 2_999_999, &to, 0, 10).is_err());
    }

    #[test]
    fn vectored_writes_write_every_buffer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = Os::create_new(&dir.path().join("v"), 0o644).unwrap();
        let chunks: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![i as u8; (i % 7) as usize * 1000])
            .collect();
        let slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        Os::write_vectored_at(&file, &slices, 5).unwrap();
        let expected: Vec<u8> = chunks.concat();
        let mut written = vec![0u8; expected.len()];
        file.read_exact_at(&mut written, 5).unwrap();
        assert_eq!(written, expected);
        assert_eq!(Os::len(&file).unwrap(), 5 + expected.len() as u64);
    }

    #[test]
    fn new_files_get_the_mode_asked_for_and_never_replace_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = Os::create_new(&dir.path().join("new"), 0o600).unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o077, 0);
        assert!(Os::create_new(&dir.path().join("new"), 0o600).is_err());
        Os::set_mode(&file, 0o444).unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o444);
    }
}

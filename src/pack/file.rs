//! Opening, creating and checking pack files on disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::format::superblock::{
    self, CommitSlot, DATA_START, HeaderError, PAGE, SLOT_LEN, SLOT_OFFSETS,
};
use crate::{Error, PackIdentity, Result};

use super::storage::{Io, Storage};

/// An open pack file (or a pack held in memory) and what we know about it.
#[derive(Debug)]
pub(crate) struct PackFile {
    pub(crate) source: Source,
    pub(crate) path: PathBuf,
    /// `None` if the file is open for writing, else why not.
    pub(crate) read_only: Option<String>,
    /// Device and inode, to notice that the path now names another file.
    pub(crate) id: (u64, u64),
    pub(crate) identity: PackIdentity,
    /// Sealed by an install: writers refuse it.
    pub(crate) sealed: bool,
    /// The commit slots and file length as read while opening, for the first view.
    pub(crate) opened_with: ([[u8; SLOT_LEN]; 2], u64),
}

/// Where a pack's bytes are.
#[derive(Debug)]
pub(crate) enum Source {
    File(File),
    /// An embedded pack: read-only, never replaced (see `embedded.rs`).
    Memory(bytes::Bytes),
}

impl PackFile {
    /// Opens `path`, preferring write access, and validates its header.
    pub(crate) fn open(path: &Path, allow_shared_write: bool) -> Result<PackFile> {
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open_err)?;
        if meta.is_dir() {
            return Err(Error::not_a_pack(path, "it is a directory"));
        }
        if !meta.is_file() {
            return Err(Error::not_a_pack(path, "it is not a regular file"));
        }
        let (file, read_only) = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => (file, None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                let file = File::open(path).map_err(open_err)?;
                (file, Some(e.to_string()))
            }
            Err(e) => return Err(open_err(e)),
        };
        // One read for the header page and both slot pages, *then* the length: a writer in
        // another process appends before it writes a slot, so every slot we read commits no
        // more than the length measured after it. (Measured before, a commit landing between
        // the two would look like a slot pointing past the end of the file.)
        let mut superblock = vec![0u8; DATA_START as usize];
        read_exact_or_zero(&file, &mut superblock, 0).map_err(|e| Error::read(path, e))?;
        let meta = file.metadata().map_err(open_err)?;
        if !allow_shared_write {
            check_permissions(path, &meta)?;
        }
        let len = meta.len();
        let (identity, sealed) =
            decode_identity(&superblock[..len.min(DATA_START) as usize], len, path)?;
        let mut slots = [[0u8; SLOT_LEN]; 2];
        for (slot, offset) in slots.iter_mut().zip(SLOT_OFFSETS) {
            slot.copy_from_slice(&superblock[offset as usize..offset as usize + SLOT_LEN]);
        }
        Ok(PackFile {
            source: Source::File(file),
            path: path.to_path_buf(),
            read_only,
            id: (meta.dev(), meta.ino()),
            identity,
            sealed,
            opened_with: (slots, len),
        })
    }

    /// The open file, or a read-only error for a pack held in memory: only writers need it.
    pub(crate) fn os_file(&self) -> Result<&File> {
        match &self.source {
            Source::File(file) => Ok(file),
            Source::Memory(_) => Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: super::embedded::READ_ONLY_REASON.to_string(),
            }),
        }
    }

    /// The file's current length.
    pub(crate) fn len(&self) -> Result<u64> {
        match &self.source {
            Source::File(file) => Io::len(file).map_err(|e| Error::read(&self.path, e)),
            Source::Memory(bytes) => Ok(bytes.len() as u64),
        }
    }

    /// Reads both commit slots with `pread`.
    pub(crate) fn read_slots(&self) -> Result<[[u8; SLOT_LEN]; 2]> {
        let file = match &self.source {
            Source::File(file) => file,
            Source::Memory(_) => return Ok(self.opened_with.0),
        };
        let mut slots = [[0u8; SLOT_LEN]; 2];
        for (slot, offset) in slots.iter_mut().zip(SLOT_OFFSETS) {
            read_exact_or_zero(file, slot, offset).map_err(|e| Error::read(&self.path, e))?;
        }
        Ok(slots)
    }

    /// Whether `self.path` still names this file: `Some(true)` if so, `Some(false)` if it names
    /// another file, `None` if nothing is there any more.
    pub(crate) fn path_still_names_me(&self) -> Result<Option<bool>> {
        if let Source::Memory(_) = self.source {
            return Ok(Some(true)); // Nothing replaces bytes in memory.
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(Some((meta.dev(), meta.ino()) == self.id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::read(&self.path, e)),
        }
    }

    /// Fails unless the file was opened for writing.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.sealed {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: "it is sealed (installed): install a new pack instead of changing this one"
                    .to_string(),
            });
        }
        match &self.read_only {
            None => Ok(()),
            Some(reason) => Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
        }
    }
}

/// Reads into `buf` at `offset`; bytes past the end of the file read as zero.
fn read_exact_or_zero(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Decodes the identity and the sealed flag from the first bytes of a file of `len` bytes.
pub(crate) fn decode_identity(
    superblock: &[u8],
    len: u64,
    path: &Path,
) -> Result<(PackIdentity, bool)> {
    let page = &superblock[..superblock.len().min(PAGE as usize)];
    let header = superblock::decode_header(page).map_err(|e| match e {
        HeaderError::NotAPack(reason) => Error::not_a_pack(path, reason),
        HeaderError::UnsupportedVersion(found) => Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: superblock::FORMAT_VERSION,
        },
        HeaderError::Corrupt(detail) => Error::corrupt(path, detail),
    })?;
    if len < DATA_START {
        return Err(Error::corrupt(
            path,
            format!("the file is {len} bytes, shorter than its {DATA_START}-byte superblock"),
        ));
    }
    let identity = PackIdentity::decode(&header.identity)
        .map_err(|detail| Error::corrupt(path, format!("bad identity: {detail}")))?;
    Ok((identity, header.sealed))
}

/// Refuses packs that users other than the owner (or root) could have written: whoever can
/// write a pack can run code in every process that loads from it.
fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let insecure = |detail: String| Error::Insecure {
        path: path.to_path_buf(),
        detail,
    };
    if meta.mode() & 0o002 != 0 {
        return Err(insecure(format!(
            "the file is writable by every user (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(insecure(format!(
            "the file is owned by user {}, not by this user ({me}) or root",
            meta.uid()
        )));
    }
    let dir = parent_dir(path);
    if let Ok(dir_meta) = std::fs::metadata(dir) {
        let mode = dir_meta.mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(insecure(format!(
                "its directory {} is writable by every user and not sticky, so anyone can \
                 replace the pack",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A name for a temporary file beside `path`, unique in this process and unlikely to clash
/// with another's: `.{file name}.{pid}-{nanoseconds}-{counter}{suffix}`. Crashed processes'
/// leftovers keep the `.{file name}.` prefix, by which compaction finds and removes them.
pub(crate) fn temp_path(path: &Path, suffix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(
        ".{name}.{}-{nanos}-{count}{suffix}",
        std::process::id()
    ))
}

/// Creates a new empty pack at `path`, atomically: written in full to a temporary file,
/// synced, then hard-linked into place (which fails if a file exists there) and the directory
/// synced. Returns `Ok(false)` if a file already exists at `path`.
pub(crate) fn create(path: &Path, identity: &PackIdentity) -> Result<bool> {
    let create_err = |source| Error::Create {
        path: path.to_path_buf(),
        source,
    };
    let encoded = identity
        .encode()
        .map_err(|detail| Error::invalid_input(path, detail))?;
    if path.file_name().is_none() {
        return Err(Error::invalid_input(path, "the path has no file name"));
    }
    let temp = temp_path(path, ".creating");
    let file = Io::create_new(&temp).map_err(create_err)?;
    let linked = Io::write_at(
        &file,
        &superblock::encode_superblock(&encoded, &CommitSlot::empty()),
        0,
    )
    .and_then(|()| Io::sync_all(&file))
    .and_then(|()| Io::hard_link(&temp, path));
    // Whatever happened, the temporary name goes (a leftover is harmless: compaction removes
    // old ones).
    let _ = Io::remove(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(create_err(e)),
    }
    Io::sync_dir(parent_dir(path)).map_err(create_err)?;
    Ok(true)
}

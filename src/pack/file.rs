//! A pack's file (or bytes in memory): opening it with every check, reading its slots, and
//! creating a new one.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::Repr;
use crate::format::seal::{SEAL_AT, Seal};
use crate::format::superblock::{
    self, CommitSlot, DATA_START, HeaderError, PAGE, PREVIOUS_SLOT_AT, SLOT_LEN, SLOT_OFFSETS,
};
use crate::format::{ALIGN, DecodeError};
use crate::fs::{FileMode, TempFile};
use crate::storage::{Io, Storage};
use crate::{Error, PackIdentity, PackOptions, Result};

use super::embedded::aligned_buffer;
use super::permissions::{self, Strictness};

/// Why every write to a pack held in memory fails.
pub(crate) const READ_ONLY_REASON: &str = "it is held in memory (an embedded pack)";

/// How many times an open or a writer follows the path to a replacement file before giving up.
pub(crate) const MAX_REOPENS: usize = 64;

/// The name errors give a pack held in memory, in place of a path.
pub(crate) const EMBEDDED_NAME: &str = "<embedded pack>";

/// An open pack file (or a pack held in memory) and what we know about it.
#[derive(Debug)]
pub(crate) struct PackFile {
    pub(crate) source: Source,
    pub(crate) path: PathBuf,
    /// `path` with symlinks resolved, as it led to this file when it was opened (for a pack
    /// held in memory, its name).
    canonical: PathBuf,
    /// `None` if the file is open for writing, else why not.
    pub(crate) read_only: Option<String>,
    /// Device and inode, to notice that the path now names another file.
    pub(crate) id: (u64, u64),
    pub(crate) identity: PackIdentity,
    /// Sealed by an install: writers refuse it.
    pub(crate) sealed: bool,
    /// The seal record of a sealed pack (`None`: none recorded; an error: a damaged one).
    pub(crate) seal: std::result::Result<Option<Seal>, DecodeError>,
    /// Opened on the installed fast path, its seal accepted: reads skip hashing values.
    pub(crate) skips_hashing: bool,
    /// Users other than the owner may write it (opened with `allow_shared_write`): with
    /// trusted keys, values are checked and handed out as private copies.
    pub(crate) others_may_write: bool,
    /// The commit slots and file length as read while opening, for the first view.
    pub(crate) opened_with: ([[u8; SLOT_LEN]; 2], u64),
}

/// Where a pack's bytes are.
#[derive(Debug)]
pub(crate) enum Source {
    File(File),
    /// An embedded pack: read-only, never replaced (see `embedded.rs`).
    Memory(Bytes),
}

/// Where a pack to open is: a file, or bytes the program holds (named `name` in errors).
pub(crate) enum Origin<'a> {
    Path(&'a Path),
    Memory { name: &'a Path, bytes: Bytes },
}

impl PackFile {
    /// Opens a pack: the one way every handle (new, reopened after a compaction, in memory)
    /// gets its file. Checks that `options` go together, the header, then the permissions
    /// (see `permissions.rs`) and, for the installed fast path, the seal; then that the
    /// identity is `expected` (if given).
    pub(crate) fn open(
        origin: Origin<'_>,
        expected: Option<&PackIdentity>,
        options: &PackOptions,
    ) -> Result<PackFile> {
        let mut file = match origin {
            Origin::Path(path) => {
                options.check_consistent(path)?;
                PackFile::open_path(path, options)?
            }
            Origin::Memory { name, bytes } => {
                options.check_consistent(name)?;
                PackFile::in_memory(name, bytes)?
            }
        };
        if options.trust_installed {
            match &file.source {
                Source::File(os_file) => {
                    let meta = os_file.metadata().map_err(|e| Error::read(&file.path, e))?;
                    permissions::check_installed(&file.path, &file.canonical, file.sealed, &meta)?;
                    let verdict =
                        file.seal_binds(os_file, &meta)
                            .and_then(|seal| match &options.check {
                                Some(check) if !check.covers_seal(&seal.keys) => Err(
                                    "its install did not verify it with keys this reader trusts"
                                        .to_string(),
                                ),
                                _ => Ok(()),
                            });
                    match (verdict, &options.check) {
                        (Ok(()), _) => file.skips_hashing = true,
                        // With trusted keys the values are hashed instead, as for any pack.
                        (Err(why), Some(_)) => tracing::info!(
                            path = %file.path.display(),
                            %why,
                            "the installed pack's seal does not cover this reader: hashing its \
                             values"
                        ),
                        (Err(detail), None) => {
                            return Err(Error::from(Repr::NotSealed {
                                path: file.path.clone(),
                                detail,
                            }));
                        }
                    }
                }
                // The trusted path skips hashing because an install verified a file nobody
                // can change since; bytes in memory had no such check.
                Source::Memory(_) => {
                    return Err(Error::from(Repr::NotSealed {
                        path: file.path.clone(),
                        detail: "an embedded pack is not an installed file: open it without \
                                 trust_installed (its entries are checked as they are read)"
                            .to_string(),
                    }));
                }
            }
        }
        if let Some(expected) = expected
            && *expected != file.identity
        {
            return Err(Error::from(Repr::IdentityMismatch {
                path: file.path.clone(),
                expected: expected.clone(),
                found: file.identity,
            }));
        }
        Ok(file)
    }

    /// The seal, if it records an install that sealed this very file (`os_file`, described
    /// by `meta`); otherwise why not, in a phrase for an error.
    fn seal_binds(&self, os_file: &File, meta: &Metadata) -> std::result::Result<&Seal, String> {
        let seal = match &self.seal {
            Ok(Some(seal)) => seal,
            Ok(None) => {
                return Err(
                    "it was sealed by an older wasmpak, which did not record what the \
                            install verified: install it again"
                        .to_string(),
                );
            }
            Err(e) => {
                return Err(format!(
                    "its seal record is damaged ({e}): install it again"
                ));
            }
        };
        let this = file_identity(os_file, meta).map_err(|e| format!("its file system: {e}"))?;
        if seal.file() != this {
            return Err(format!(
                "it is a copy of an installed pack, not the file its install sealed (inode {} \
                 on file system {:#x}; this is inode {} on {:#x}): install it with wasmpak \
                 install or Pack::install_into instead of copying it",
                seal.inode, seal.fsid, this.0, this.1
            ));
        }
        Ok(seal)
    }

    /// The `len` bytes at `offset`, read into private memory at a 64-byte aligned address:
    /// for packs other users may write, whose mapping can change after a check.
    pub(crate) fn read_private(&self, offset: u64, len: u64) -> Result<Bytes> {
        let read_err = |e| Error::read(&self.path, e);
        let len = usize::try_from(len).map_err(|_| {
            read_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "value too large",
            ))
        })?;
        match &self.source {
            Source::File(file) => {
                aligned_buffer(len, |buffer| file.read_exact_at(buffer, offset)).map_err(read_err)
            }
            // Bytes in memory never change: a slice of them is as private as a copy.
            Source::Memory(bytes) => usize::try_from(offset)
                .ok()
                .and_then(|start| bytes.get(start..start.checked_add(len)?))
                .map(|_| bytes.slice(offset as usize..offset as usize + len))
                .ok_or_else(|| Error::corrupt(&self.path, "a value lies past the end of the pack")),
        }
    }

    /// Opens `path`, preferring write access, and validates its header. A pack replaced
    /// while it is being opened (by a compaction or an install: renamed over) is opened again.
    fn open_path(path: &Path, options: &PackOptions) -> Result<PackFile> {
        for _ in 0..MAX_REOPENS {
            if let Some(file) = PackFile::open_path_once(path, options)? {
                return Ok(file);
            }
        }
        Err(Error::from(Repr::Insecure {
            path: path.to_path_buf(),
            detail: format!(
                "its path was replaced while it was being opened, {MAX_REOPENS} times in a row"
            ),
        }))
    }

    /// [`PackFile::open_path`] once: `None` if the path named another file by the end.
    fn open_path_once(path: &Path, options: &PackOptions) -> Result<Option<PackFile>> {
        let open_err = |source| {
            Error::from(Repr::Open {
                path: path.to_path_buf(),
                source,
            })
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
        let Some(canonical) = permissions::resolve(path, &meta)? else {
            return Ok(None);
        };
        if !options.allow_shared_write {
            let strictness = match options.check {
                Some(_) => Strictness::Strict,
                None => Strictness::Lenient,
            };
            permissions::check_not_shared(path, &canonical, &meta, strictness)?;
        }
        let len = meta.len();
        let (identity, sealed, seal) =
            decode_identity(&superblock[..len.min(DATA_START) as usize], len, path)?;
        Ok(Some(PackFile {
            opened_with: (slots_of(&superblock), len),
            source: Source::File(file),
            path: path.to_path_buf(),
            canonical,
            read_only,
            id: (meta.dev(), meta.ino()),
            identity,
            sealed,
            seal,
            skips_hashing: false,
            others_may_write: options.allow_shared_write && !options.trust_installed,
        }))
    }

    /// A pack held in `bytes`: its header checked, and its alignment (see `embedded.rs`).
    fn in_memory(name: &Path, bytes: Bytes) -> Result<PackFile> {
        let len = bytes.len() as u64;
        let (identity, sealed, seal) =
            decode_identity(&bytes[..bytes.len().min(DATA_START as usize)], len, name)?;
        if !(bytes.as_ptr() as usize).is_multiple_of(ALIGN as usize) {
            return Err(Error::invalid_input(
                name,
                format!(
                    "the bytes start at address {:#x}, which is not {ALIGN}-byte aligned: embed \
                     packs with wasmpak::include_pack!, not include_bytes!",
                    bytes.as_ptr() as usize
                ),
            ));
        }
        Ok(PackFile {
            opened_with: (slots_of(&bytes), len),
            source: Source::Memory(bytes),
            path: name.to_path_buf(),
            canonical: name.to_path_buf(),
            read_only: Some(READ_ONLY_REASON.to_string()),
            id: (0, 0),
            identity,
            sealed,
            seal,
            skips_hashing: false,
            others_may_write: false,
        })
    }

    /// The open file, or a read-only error for a pack held in memory: only writers need it.
    pub(crate) fn os_file(&self) -> Result<&File> {
        match &self.source {
            Source::File(file) => Ok(file),
            Source::Memory(_) => Err(Error::from(Repr::ReadOnly {
                path: self.path.clone(),
                reason: READ_ONLY_REASON.to_string(),
            })),
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
        match &self.source {
            Source::File(_) => self.read_slot_pages_at(0),
            Source::Memory(_) => Ok(self.opened_with.0),
        }
    }

    /// The copies of the commits the slots' synced commits followed (docs/FORMAT.md, section
    /// 4.4), as read now: what a reader falls back to when the newest commit is damaged.
    pub(crate) fn read_previous_slots(&self) -> Result<[[u8; SLOT_LEN]; 2]> {
        self.read_slot_pages_at(PREVIOUS_SLOT_AT)
    }

    /// The 64 bytes at `within` of each slot page.
    fn read_slot_pages_at(&self, within: u64) -> Result<[[u8; SLOT_LEN]; 2]> {
        let mut slots = [[0u8; SLOT_LEN]; 2];
        for (slot, offset) in slots.iter_mut().zip(SLOT_OFFSETS) {
            let at = offset + within;
            match &self.source {
                Source::File(file) => {
                    read_exact_or_zero(file, slot, at).map_err(|e| Error::read(&self.path, e))?
                }
                Source::Memory(bytes) => {
                    if let Some(b) = bytes.get(at as usize..at as usize + SLOT_LEN) {
                        slot.copy_from_slice(b);
                    }
                }
            }
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
            return Err(Error::from(Repr::ReadOnly {
                path: self.path.clone(),
                reason: "it is sealed (installed): install a new pack instead of changing this one"
                    .to_string(),
            }));
        }
        match &self.read_only {
            None => Ok(()),
            Some(reason) => Err(Error::from(Repr::ReadOnly {
                path: self.path.clone(),
                reason: reason.clone(),
            })),
        }
    }
}

/// Both commit slots of a superblock at least [`DATA_START`] bytes long.
fn slots_of(superblock: &[u8]) -> [[u8; SLOT_LEN]; 2] {
    SLOT_OFFSETS.map(|offset| {
        let mut slot = [0u8; SLOT_LEN];
        slot.copy_from_slice(&superblock[offset as usize..offset as usize + SLOT_LEN]);
        slot
    })
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

/// What a pack's superblock says besides its commits: its identity, whether it is sealed,
/// and the seal record (read only from a sealed pack).
type Described = (
    PackIdentity,
    bool,
    std::result::Result<Option<Seal>, DecodeError>,
);

/// Decodes the identity, the sealed flag and the seal record from the first bytes of a file
/// of `len` bytes.
fn decode_identity(superblock: &[u8], len: u64, path: &Path) -> Result<Described> {
    let page = &superblock[..superblock.len().min(PAGE as usize)];
    let header = superblock::decode_header(page).map_err(|e| match e {
        HeaderError::NotAPack(reason) => Error::not_a_pack(path, reason),
        HeaderError::UnsupportedVersion(found) => Error::from(Repr::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: superblock::FORMAT_VERSION,
        }),
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
    let seal = match header.sealed {
        true => Seal::decode(superblock.get(SEAL_AT as usize..).unwrap_or_default()),
        false => Ok(None),
    };
    Ok((identity, header.sealed, seal))
}

/// Creates a new empty pack at `path`, atomically (see `crate::fs`): written in full beside
/// it, synced, linked into place if nothing is there, the directory synced. Returns
/// `Ok(false)` if a file already exists at `path`.
pub(crate) fn create(path: &Path, identity: &PackIdentity) -> Result<bool> {
    let create_err = |source| {
        Error::from(Repr::Create {
            path: path.to_path_buf(),
            source,
        })
    };
    let encoded = identity
        .encode()
        .map_err(|detail| Error::invalid_input(path, detail))?;
    if path.file_name().is_none() {
        return Err(Error::invalid_input(path, "the path has no file name"));
    }
    let temp = TempFile::create(path, FileMode::Public).map_err(create_err)?;
    temp.write_at(
        &superblock::encode_superblock(&encoded, &CommitSlot::empty()),
        0,
    )
    .map_err(create_err)?;
    match temp.persist_new() {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(create_err(e)),
    }
}

/// What names the file an install sealed, as a seal records it: its inode, the id of its file
/// system (`statvfs`'s `f_fsid`) and its birth time in nanoseconds (0 where the file system
/// does not report one). `meta` is `file`'s.
pub(crate) fn file_identity(file: &File, meta: &Metadata) -> io::Result<(u64, u64, u64)> {
    let fsid = rustix::fs::fstatvfs(file)?.f_fsid;
    let birth = birth_nanos(file).unwrap_or_else(|| {
        meta.created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    });
    Ok((meta.ino(), fsid, birth))
}

/// The file's birth time in nanoseconds, asked of the kernel with `statx` directly: std's
/// `Metadata::created` asks `statx` only on glibc, so a musl build would see none and could
/// not tell a file extracted in place (with the inode number just freed) from the one sealed.
#[cfg(target_os = "linux")]
fn birth_nanos(file: &File) -> Option<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let stx = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME).ok()?;
    if stx.stx_mask & StatxFlags::BTIME.bits() == 0 {
        return None;
    }
    let secs = u64::try_from(stx.stx_btime.tv_sec).ok()?;
    Some(secs.saturating_mul(1_000_000_000) + u64::from(stx.stx_btime.tv_nsec))
}

#[cfg(not(target_os = "linux"))]
fn birth_nanos(_file: &File) -> Option<u64> {
    None
}

//! Packs the program already holds in memory: embedded in the binary with
//! [`include_pack!`](crate::include_pack), or received as [`Bytes`].
//!
//! Such a pack reads exactly like a file pack (same lookups, same checksum policy, same
//! errors for damaged bytes) but is read-only: nothing can append to bytes the program does
//! not own as a file, and a `&'static` slice is immutable. The bytes are checked once at open:
//! long enough for the superblock, a pack's header, 64-byte aligned (the alignment the format
//! gives payloads relative to the file start, which wasmer's artifacts rely on), and a commit
//! slot whose committed length lies within them. Every later read is bounds-checked against
//! that committed length, as for a mapping.

use std::path::Path;

use bytes::Bytes;

use crate::format::ALIGN;
use crate::{Pack, PackIdentity, PackOptions, Result, sync};

use super::file::{EMBEDDED_NAME, Origin, PackFile, Source};

impl Pack {
    /// Opens a pack embedded in the binary, which must have `identity`, with default options.
    /// Read-only: writes fail with [`ErrorKind::ReadOnly`](crate::ErrorKind::ReadOnly).
    ///
    /// The bytes must start at a 64-byte aligned address, which
    /// [`include_pack!`](crate::include_pack) guarantees and `include_bytes!` does not;
    /// misaligned or truncated bytes are refused with an error, never read. Values are
    /// returned as zero-copy slices of `bytes`. Errors name the pack `<embedded pack>`, which
    /// is also what [`Pack::path`] returns.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{ErrorKind, Key, Pack, PackIdentity};
    ///
    /// static PACK: &[u8] = wasmpak::include_pack!("../../examples/demo.wpk");
    ///
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let pack = Pack::from_static(PACK, &identity)?;
    /// let key = Key::from_bytes([1; 32]);
    /// assert_eq!(pack.get(&key)?.as_deref(), Some(&b"hello from the binary"[..]));
    /// let refused = pack.insert(&key, b"new").unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::ReadOnly);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_static(bytes: &'static [u8], identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open_bytes(Bytes::from_static(bytes), identity)
    }

    /// Opens a pack held in `bytes` (read from the network, a database, a larger file), which
    /// must have `identity`, with default options. As [`Pack::from_static`]: read-only,
    /// 64-byte aligned, values are zero-copy slices of `bytes`.
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wasmpak::{Key, Pack, PackIdentity};
    ///
    /// // A pack built on disk, then handed over as bytes (a `Vec`'s buffer from the global
    /// // allocator is not guaranteed to be 64-byte aligned, so copy into an aligned one).
    /// let dir = tempfile::tempdir()?;
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let built = Pack::create(dir.path().join("p.wpk"), &identity)?;
    /// built.insert(&Key::from_bytes([2; 32]), b"value")?;
    /// let bytes = wasmpak::aligned_bytes(&std::fs::read(built.path())?);
    ///
    /// let pack = Pack::from_bytes(bytes, &identity)?;
    /// assert_eq!(pack.len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: Bytes, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open_bytes(bytes, identity)
    }

    /// Whether this pack is held in memory ([`Pack::from_static`], [`Pack::from_bytes`]) rather
    /// than in a file.
    pub fn is_in_memory(&self) -> bool {
        matches!(sync::read(&self.inner.view).file.source, Source::Memory(_))
    }
}

impl PackOptions {
    /// Opens a pack held in `bytes`, which must have `identity`, with these options (the
    /// [`Verify`](crate::Verify) policy applies as for a file; durability is moot). See
    /// [`Pack::from_bytes`].
    pub fn open_bytes(&self, bytes: Bytes, identity: &PackIdentity) -> Result<Pack> {
        open_memory(
            Path::new(EMBEDDED_NAME),
            bytes,
            Some(identity),
            self.clone(),
        )
    }

    /// Opens a pack of any identity held in `bytes` (for tools that inspect packs).
    pub fn open_bytes_any(&self, bytes: Bytes) -> Result<Pack> {
        open_memory(Path::new(EMBEDDED_NAME), bytes, None, self.clone())
    }
}

/// A copy of `bytes` that starts at a 64-byte aligned address, as [`Pack::from_bytes`] needs.
/// For a pack read from a file or received over the network into a `Vec`, whose alignment
/// the allocator does not promise.
///
/// # Example
///
/// ```
/// let bytes = wasmpak::aligned_bytes(b"any bytes");
/// assert_eq!(bytes.as_ptr() as usize % 64, 0);
/// assert_eq!(&bytes[..], b"any bytes");
/// ```
pub fn aligned_bytes(bytes: &[u8]) -> Bytes {
    let Ok(copy) = aligned_buffer::<std::convert::Infallible>(bytes.len(), |buffer| {
        buffer.copy_from_slice(bytes);
        Ok(())
    });
    copy
}

/// `len` bytes at a 64-byte aligned address, as `fill` writes them: the one way the crate
/// makes an aligned copy (of a pack in memory, or of a value read privately from a file).
pub(crate) fn aligned_buffer<E>(
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), E>,
) -> std::result::Result<Bytes, E> {
    let align = ALIGN as usize;
    let mut buffer = bytes::BytesMut::zeroed(len + align - 1);
    let start = buffer.as_ptr().align_offset(align).min(align - 1);
    fill(&mut buffer[start..start + len])?;
    // `freeze` and `slice` keep the buffer where it is, so the alignment found above holds.
    Ok(buffer.freeze().slice(start..start + len))
}

/// Opens the pack in `bytes`, named `name` in errors.
pub(crate) fn open_memory(
    name: &Path,
    bytes: Bytes,
    identity: Option<&PackIdentity>,
    options: PackOptions,
) -> Result<Pack> {
    let file = PackFile::open(Origin::Memory { name, bytes }, identity, &options)?;
    Pack::from_file(name, file, options)
}

/// Embeds a pack file in the binary, aligned as packs need: expands to a `&'static [u8]` for
/// [`Pack::from_static`] or
/// [`PackCacheBuilder::embedded_pack`](crate::PackCacheBuilder::embedded_pack). The path is
/// relative to the file invoking the macro, as for `include_bytes!`.
///
/// Why not `include_bytes!` alone: it gives a byte array of alignment 1, placed wherever the
/// linker likes. A pack puts each value at a 64-byte aligned offset from the start of the
/// file, and wasmer's zero-copy deserialization reads the archived artifact in place, so the
/// pack's first byte must itself be 64-byte aligned; a misaligned pack is refused at open.
/// This macro wraps the bytes in a `#[repr(C, align(4096))]` struct: the format's page, so
/// each of the pack's superblock pages is one 4 KiB page of the binary (on machines with larger
/// pages the pack is still aligned far beyond the 64 bytes it needs).
///
/// # Example
///
/// ```
/// use wasmpak::{Pack, PackIdentity};
///
/// static PACK: &[u8] = wasmpak::include_pack!("../../examples/demo.wpk");
///
/// assert_eq!(PACK.as_ptr() as usize % 4096, 0);
/// let pack = Pack::from_static(PACK, &PackIdentity::new().with("engine", "demo"))?;
/// assert!(pack.is_in_memory());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! include_pack {
    ($path:expr $(,)?) => {{
        #[repr(C, align(4096))]
        struct PageAligned<Bytes: ?Sized>(Bytes);
        static ALIGNED: &PageAligned<[u8]> = &PageAligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}

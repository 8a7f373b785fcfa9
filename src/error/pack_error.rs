//! [`Error`]: what the store returns, opaque as `std::io::Error` is.

use std::fmt;
use std::io;
use std::path::Path;

use super::kind::ErrorKind;
use super::repr::Repr;
use crate::{Key, PackIdentity};

/// A specialized `Result` for pack operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a pack. Every message names the pack's path.
///
/// Match on [`Error::kind`]; read what a kind carries through the accessors
/// ([`path`](Error::path), [`detail`](Error::detail), [`io_error`](Error::io_error),
/// [`expected_identity`](Error::expected_identity), [`found_identity`](Error::found_identity),
/// [`key`](Error::key)) and the cause through [`source`](std::error::Error::source).
///
/// # Example
///
/// ```
/// use wasmpak::{ErrorKind, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("modules.wpk");
/// std::fs::write(&path, b"hello, not a pack")?;
/// let err = Pack::open(&path, &PackIdentity::new().with("engine", "demo")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotAPack);
/// assert!(err.to_string().contains("modules.wpk"));
/// assert_eq!(err.path(), path);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Error {
    // Boxed: a `Result<T, Error>` stays two words wide on every path that does not fail.
    repr: Box<Repr>,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.repr.kind()
    }

    /// The path of the pack the error is about.
    pub fn path(&self) -> &Path {
        self.repr.path()
    }

    /// The underlying I/O error, if there is one (also the [`source`](std::error::Error::source)).
    pub fn io_error(&self) -> Option<&io::Error> {
        self.repr.io_error()
    }

    /// What is damaged, for an error of kind [`Corrupt`](ErrorKind::Corrupt), without the
    /// `pack PATH is corrupt: ` its message starts with; the whole message for any other
    /// kind. For reports that list the problems of one pack.
    ///
    /// # Example
    ///
    /// ```
    /// use std::os::unix::fs::FileExt;
    /// use wasmpak::{ErrorKind, Key, Pack, PackIdentity};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("modules.wpk");
    /// let pack = Pack::create(&path, &PackIdentity::new().with("engine", "demo"))?;
    /// let key = Key::from_bytes([1; 32]);
    /// pack.insert(&key, &[7u8; 1000])?;
    /// let value_at = pack.iter()?.next().unwrap().offset();
    /// let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    /// file.write_all_at(b"\xde\xad", value_at + 100)?; // a flipped value, as a bad disk would
    /// let err = Pack::open_any(&path)?.get(&key).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Corrupt);
    /// let prefix = format!("pack {} is corrupt: ", path.display());
    /// assert_eq!(err.to_string(), format!("{prefix}{}", err.detail()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn detail(&self) -> String {
        match &*self.repr {
            Repr::Corrupt { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    /// For an error of kind [`IdentityMismatch`](ErrorKind::IdentityMismatch): the identity
    /// the caller asked for.
    pub fn expected_identity(&self) -> Option<&PackIdentity> {
        match &*self.repr {
            Repr::IdentityMismatch { expected, .. } => Some(expected),
            _ => None,
        }
    }

    /// For an error of kind [`IdentityMismatch`](ErrorKind::IdentityMismatch): the identity
    /// the pack holds.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{ErrorKind, Pack, PackIdentity};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("modules.wpk");
    /// let theirs = PackIdentity::new().with("engine", "cranelift");
    /// Pack::create(&path, &theirs)?;
    /// let ours = PackIdentity::new().with("engine", "llvm");
    /// let err = Pack::open(&path, &ours).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::IdentityMismatch);
    /// assert_eq!(err.found_identity(), Some(&theirs));
    /// assert_eq!(err.expected_identity(), Some(&ours));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn found_identity(&self) -> Option<&PackIdentity> {
        match &*self.repr {
            Repr::IdentityMismatch { found, .. } => Some(found),
            _ => None,
        }
    }

    /// For an error of kind [`Untrusted`](ErrorKind::Untrusted): the key of the entry
    /// refused.
    pub fn key(&self) -> Option<&Key> {
        match &*self.repr {
            Repr::Untrusted { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The representation, for the cache layer, which turns I/O failures into its own.
    #[cfg(feature = "wasmer")]
    pub(crate) fn into_repr(self) -> Repr {
        *self.repr
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        let (path, detail) = (path.to_path_buf(), detail.into());
        Repr::Corrupt { path, detail }.into()
    }

    pub(crate) fn not_a_pack(path: &Path, reason: impl Into<String>) -> Error {
        let (path, reason) = (path.to_path_buf(), reason.into());
        Repr::NotAPack { path, reason }.into()
    }

    pub(crate) fn invalid_input(path: &Path, detail: impl Into<String>) -> Error {
        let (path, detail) = (path.to_path_buf(), detail.into());
        Repr::InvalidInput { path, detail }.into()
    }

    pub(crate) fn read(path: &Path, source: io::Error) -> Error {
        let path = path.to_path_buf();
        Repr::Read { path, source }.into()
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> Error {
        let path = path.to_path_buf();
        Repr::Write { path, source }.into()
    }

    pub(crate) fn not_durable(path: &Path, source: io::Error) -> Error {
        let path = path.to_path_buf();
        Repr::NotDurable { path, source }.into()
    }
}

impl From<Repr> for Error {
    fn from(repr: Repr) -> Error {
        Error {
            repr: Box::new(repr),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.repr, f)
    }
}

// As the variant it holds, as before the representation was private.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.repr, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.repr)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let path = Path::new("p.wpk");
        let full = Error::write(path, io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.kind(), ErrorKind::StorageFull);
        let efbig = Error::write(path, io::Error::from_raw_os_error(27));
        assert_eq!(efbig.kind(), ErrorKind::StorageFull);
        let denied = Error::read(path, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        assert_eq!(denied.path(), path);
        assert!(denied.io_error().is_some());
        let landed = Error::not_durable(path, io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(landed.kind(), ErrorKind::NotDurable);
        assert!(landed.io_error().is_some());
        assert!(landed.source().is_some());
        assert!(!landed.to_string().contains('\n'));
    }

    #[test]
    fn messages_name_the_path_in_one_line() {
        let err = Error::corrupt(Path::new("dir/x.wpk"), "index entry 3 checksum mismatch");
        let text = err.to_string();
        assert!(text.starts_with("pack dir/x.wpk is corrupt"), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(err.detail(), "index entry 3 checksum mismatch");
        assert!(err.source().is_none() && err.found_identity().is_none() && err.key().is_none());
        let other = Error::invalid_input(Path::new("x.wpk"), "label too long");
        assert_eq!(other.detail(), other.to_string());
    }
}

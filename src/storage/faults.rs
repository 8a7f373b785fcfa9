//! Failing chosen storage operations on purpose (feature `fault-injection` only), to test
//! what a failed write or sync leaves behind and what the caller is told.

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;

/// A kind of storage operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Writing at an offset (records, commit slots).
    Write,
    /// `fdatasync` of a pack.
    SyncData,
    /// `fsync` of a new or compacted pack.
    SyncAll,
    /// Reading a file's length.
    Len,
    /// Renaming a compacted pack into place.
    Rename,
    /// Syncing a directory.
    SyncDir,
}

thread_local! {
    static PLAN: Cell<Option<(OpKind, usize, io::ErrorKind)>> = const { Cell::new(None) };
}

/// While alive, one storage operation of this thread fails: see [`fail_nth`].
#[derive(Debug)]
pub struct Fault {
    _thread: PhantomData<*const ()>,
}

impl Fault {
    /// Whether the planned failure has not happened yet.
    pub fn pending(&self) -> bool {
        PLAN.with(|plan| plan.get().is_some())
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        PLAN.with(|plan| plan.set(None));
    }
}

/// Makes the `nth` (counting from 0) operation of `kind` that this thread issues from now on
/// fail with an error of `error`, once. Replaces any earlier plan.
///
/// # Example
///
/// ```
/// use wasmpak::storage_sim::{OpKind, fail_nth};
/// use wasmpak::{ErrorKind, Key, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let pack = Pack::create(dir.path().join("f.wpk"), &PackIdentity::new().with("a", "b"))?;
/// let fault = fail_nth(OpKind::SyncData, 0, std::io::ErrorKind::StorageFull);
/// let err = pack.insert(&Key::from_bytes([1; 32]), b"value").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::StorageFull);
/// assert!(!fault.pending());
/// assert!(pack.is_empty()?, "a commit whose first sync failed is not there");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fail_nth(kind: OpKind, nth: usize, error: io::ErrorKind) -> Fault {
    PLAN.with(|plan| plan.set(Some((kind, nth, error))));
    Fault {
        _thread: PhantomData,
    }
}

/// Called before each operation of `kind`: the planned error if this is the one to fail.
pub(crate) fn check(kind: OpKind) -> io::Result<()> {
    PLAN.with(|plan| match plan.get() {
        Some((planned, 0, error)) if planned == kind => {
            plan.set(None);
            Err(io::Error::new(error, "injected fault"))
        }
        Some((planned, n, error)) if planned == kind => {
            plan.set(Some((planned, n - 1, error)));
            Ok(())
        }
        _ => Ok(()),
    })
}

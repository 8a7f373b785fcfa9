//! Many appends, one commit; and single inserts and removals, which are batches of one.

use crate::format::index::EntryKind;
use crate::{Key, Pack, Result};

use super::session::Session;

/// A write transaction: values appended to it become visible to readers, all at once, when it
/// commits. Dropping a batch without committing discards it.
///
/// The pack's writer lock is taken at the first write and held until the batch commits or is
/// dropped, so other writers (in this process or others) wait for it; readers never do.
/// Appends stream straight to the file, so a batch of gigabytes needs no memory for values.
///
/// # Example
///
/// ```
/// use wasmpak::{Key, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let pack = Pack::create(dir.path().join("bulk.wpk"), &PackIdentity::new().with("app", "x"))?;
/// let mut batch = pack.batch();
/// for i in 0..100u8 {
///     batch.insert_with_label(&Key::from_bytes([i; 32]), &[i; 1000], &format!("module-{i}"))?;
/// }
/// assert_eq!(pack.len()?, 0, "nothing is visible before the commit");
/// batch.commit()?;
/// assert_eq!(pack.len()?, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch<'a> {
    pack: &'a Pack,
    session: Option<Session<'a>>,
}

impl Pack {
    /// Stores `value` under `key` in one commit, replacing any earlier value. Errors as
    /// [`Batch::commit`]'s.
    pub fn insert(&self, key: &Key, value: &[u8]) -> Result<()> {
        self.insert_with_label(key, value, "")
    }

    /// Stores `value` under `key` with a label (at most 1024 bytes, e.g. a file name) in one
    /// commit.
    pub fn insert_with_label(&self, key: &Key, value: &[u8], label: &str) -> Result<()> {
        let mut batch = self.batch();
        batch.insert_with_label(key, value, label)?;
        batch.commit()
    }

    /// Removes `key` in one commit (appends a tombstone). Returns whether it had a value.
    pub fn remove(&self, key: &Key) -> Result<bool> {
        let mut batch = self.batch();
        let removed = batch.remove(key)?;
        batch.commit()?;
        Ok(removed)
    }

    /// Starts a batch: many appends, one commit. See [`Batch`].
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }
}

impl<'a> Batch<'a> {
    fn new(pack: &'a Pack) -> Batch<'a> {
        Batch {
            pack,
            session: None,
        }
    }

    fn session(&mut self) -> Result<&mut Session<'a>> {
        if self.session.is_none() {
            self.session = Some(self.pack.begin()?);
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    /// Appends `value` under `key`.
    pub fn insert(&mut self, key: &Key, value: &[u8]) -> Result<()> {
        self.insert_with_label(key, value, "")
    }

    /// Appends `value` under `key` with a label of at most 1024 bytes.
    pub fn insert_with_label(&mut self, key: &Key, value: &[u8], label: &str) -> Result<()> {
        self.session()?.append(key, label, value, EntryKind::Value)
    }

    /// Removes `key`; returns whether it had a value (counting this batch's appends).
    pub fn remove(&mut self, key: &Key) -> Result<bool> {
        let session = self.session()?;
        if !session.contains(key)? {
            return Ok(false);
        }
        session.append(key, "", b"", EntryKind::Tombstone)?;
        Ok(true)
    }

    /// Whether `key` has a value, counting this batch's appends. Takes the writer lock, so the
    /// answer cannot change before the commit: use it to skip work another writer already did.
    pub fn contains(&mut self, key: &Key) -> Result<bool> {
        self.session()?.contains(key)
    }

    /// Number of records appended so far.
    pub fn len(&self) -> usize {
        self.session.as_ref().map_or(0, Session::pending_len)
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes every append in one commit and releases the writer lock.
    ///
    /// An error means nothing was published, except
    /// [`ErrorKind::NotDurable`](crate::ErrorKind::NotDurable): the commit landed and readers
    /// see it, but syncing it failed, so it may not survive a power loss (do not redo it).
    pub fn commit(self) -> Result<()> {
        match self.session {
            Some(session) => session.commit().map(|_| ()),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("pack", &self.pack.path())
            .field("appended", &self.len())
            .finish()
    }
}

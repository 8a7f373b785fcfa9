//! A write session: the writer locks, the commit it builds on, and the records appended so far.
//!
//! A [`Session`] holds the process-wide writer mutex and the file's exclusive lock from its
//! first append to its commit (or until dropped). Every byte it writes lies at or past the
//! committed length it found under the lock, except the commit slots, written last by
//! [`super::publish`]: the format's invariant.

use std::fs::File;
use std::io;
use std::sync::{Arc, MutexGuard, TryLockError};

use crate::error::Repr;
use crate::format::index::{EntryKind, IndexEntry};
use crate::{Error, Key, Pack, Result, sync};

use super::append::Appender;
use super::file::MAX_REOPENS;
use super::view::View;

/// An open write transaction: appended records become visible at [`Session::commit`].
pub(crate) struct Session<'a> {
    pub(super) pack: &'a Pack,
    _exclusive: MutexGuard<'a, ()>,
    /// The live commit under the lock: what this session's commit follows.
    pub(super) base: Arc<View>,
    /// Where the next record goes.
    pub(super) tail: u64,
    /// Index entries of the records appended so far, in append order.
    pub(super) pending: Vec<IndexEntry>,
    /// Why an earlier write of this session failed: its I/O error kind (so that later calls
    /// report the same [`crate::ErrorKind`], e.g. `StorageFull`) and message.
    failed: Option<(io::ErrorKind, String)>,
}

impl Pack {
    /// Starts a write session, waiting for other writers.
    pub(crate) fn begin(&self) -> Result<Session<'_>> {
        Session::begin(self)
    }
}

impl<'a> Session<'a> {
    /// Takes the writer locks, waiting for other writers, and reads the latest commit.
    /// Refuses a pack whose newest commit was found damaged (docs/FORMAT.md, section 4.4): a
    /// commit on top of the one before it would bring back values the damaged one replaced
    /// or removed. Compaction, which repairs such a pack, uses [`Session::begin_repair`].
    pub(crate) fn begin(pack: &'a Pack) -> Result<Session<'a>> {
        let session = Self::begin_repair(pack)?;
        session.base.check_not_degraded()?;
        Ok(session)
    }

    /// Like [`Session::begin`], also on a pack whose newest commit was found damaged.
    pub(crate) fn begin_repair(pack: &'a Pack) -> Result<Session<'a>> {
        let exclusive = sync::lock(&pack.inner.writer);
        Self::begin_locked(pack, exclusive, true)?.ok_or_else(|| unreachable_busy(pack))
    }

    /// Like [`Session::begin_repair`], but `Ok(None)` instead of waiting if another writer is
    /// busy.
    pub(crate) fn try_begin(pack: &'a Pack) -> Result<Option<Session<'a>>> {
        let exclusive = match pack.inner.writer.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        Self::begin_locked(pack, exclusive, false)
    }

    fn begin_locked(
        pack: &'a Pack,
        exclusive: MutexGuard<'a, ()>,
        wait: bool,
    ) -> Result<Option<Session<'a>>> {
        for _ in 0..MAX_REOPENS {
            let view = pack.view()?;
            view.file.check_writable()?;
            let lock_err = |source| {
                Error::from(Repr::Lock {
                    path: view.file.path.clone(),
                    source,
                })
            };
            if wait {
                view.file.os_file()?.lock().map_err(lock_err)?;
            } else {
                match view.file.os_file()?.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
                }
            }
            match Self::latest_under_lock(&view) {
                Ok(Some(base)) => {
                    let base = Arc::new(base);
                    pack.cache_view(base.clone());
                    return Ok(Some(Session {
                        pack,
                        _exclusive: exclusive,
                        tail: base.commit.committed_len,
                        base,
                        pending: Vec::new(),
                        failed: None,
                    }));
                }
                Ok(None) => {
                    let _ = view.file.os_file().map(File::unlock);
                    pack.reopen(view)?;
                }
                Err(e) => {
                    let _ = view.file.os_file().map(File::unlock);
                    return Err(e);
                }
            }
        }
        Err(Error::corrupt(
            pack.path(),
            "the pack keeps being replaced while we try to write to it",
        ))
    }

    /// The latest commit of `view`'s file, or `None` if the file was replaced or superseded.
    fn latest_under_lock(view: &Arc<View>) -> Result<Option<View>> {
        match view.file.path_still_names_me()? {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => {
                return Err(Error::from(Repr::Open {
                    path: view.file.path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        "the pack was removed while it was open",
                    ),
                }));
            }
        }
        let fresh = View::load(view.file.clone(), Some(view))?;
        Ok((!fresh.commit.superseded).then_some(fresh))
    }

    /// Number of records appended so far.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether `key` has a value as of this session's appends so far.
    pub(crate) fn contains(&self, key: &Key) -> Result<bool> {
        if let Some(last) = self.pending.iter().rev().find(|e| e.key == *key) {
            return Ok(last.kind == EntryKind::Value);
        }
        Ok(self
            .base
            .lookup(key)?
            .is_some_and(|e| e.kind == EntryKind::Value))
    }

    /// Fails if an earlier write of this session failed: its records may be torn.
    pub(super) fn check_failed(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some((kind, reason)) => Err(Error::write(
                &self.base.file.path,
                io::Error::new(
                    *kind,
                    format!("an earlier write in this batch failed: {reason}"),
                ),
            )),
        }
    }

    /// Remembers `result`'s error, if any, so that the session refuses to go on.
    pub(super) fn remember<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.failed = Some(match error.io_error() {
                Some(source) => (source.kind(), source.to_string()),
                None => (io::ErrorKind::Other, error.to_string()),
            });
        }
        result
    }

    /// Runs `f` with an appender at this session's tail, and keeps the tail it leaves.
    pub(super) fn appending<T>(
        &mut self,
        f: impl FnOnce(&mut Appender<'_>) -> Result<T>,
    ) -> Result<T> {
        let base = self.base.clone();
        let mut appender = Appender::new(base.file.os_file()?, &base.file.path, self.tail);
        let result = f(&mut appender);
        self.tail = appender.tail();
        result
    }

    /// Appends an entry or tombstone record at the tail.
    pub(crate) fn append(
        &mut self,
        key: &Key,
        label: &str,
        payload: &[u8],
        kind: EntryKind,
    ) -> Result<()> {
        self.check_failed()?;
        let result = self.appending(|appender| appender.entry(key, label, payload, kind));
        // A label that does not fit wrote nothing: the session goes on.
        let entry = match result {
            Err(e) if e.kind() == crate::ErrorKind::InvalidInput => return Err(e),
            other => self.remember(other)?,
        };
        self.pending.push(entry);
        Ok(())
    }

    /// Appends records already encoded for the tail (a signature chain, see
    /// `signatures.rs`), which must be where they were encoded for; returns the offset they
    /// start at.
    pub(crate) fn append_encoded(&mut self, bytes: &[u8]) -> Result<u64> {
        self.check_failed()?;
        let result = self.appending(|appender| appender.encoded(bytes));
        self.remember(result)
    }

    /// The offset the next append lands at.
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// The locked file's current view (for compaction).
    pub(crate) fn base_arc(&self) -> &Arc<View> {
        &self.base
    }
}

fn unreachable_busy(pack: &Pack) -> Error {
    Error::from(Repr::Lock {
        path: pack.path().to_path_buf(),
        source: io::Error::other("the writer lock was busy although we waited for it"),
    })
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Releasing an flock cannot meaningfully fail; closing the file would release it too.
        let _ = self.base.file.os_file().map(File::unlock);
    }
}

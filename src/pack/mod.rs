//! The store: one pack file, mapped for readers, appended to under a lock by writers.
//!
//! The store knows nothing of wasmer: keys are 32 bytes, values are byte strings. See
//! docs/FORMAT.md for the bytes and the crash-safety argument.

mod append;
mod batch;
mod commit;
mod compact;
mod digest;
pub(crate) mod embedded;
mod file;
mod mapping;
mod merge;
mod options;
mod publish;
pub(crate) mod recency;
mod seal;
mod session;
mod sign;
mod signature;
mod signature_report;
mod stats;
pub(crate) mod storage;
mod verify;
mod view;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::format::index::EntryKind;
use crate::{Error, Key, PackIdentity, Result};

pub use batch::Batch;
pub use compact::{CompactReport, Retention};
pub use embedded::aligned_bytes;
pub use options::{Durability, PackOptions, Verify};
pub use signature_report::{SignatureInfo, SignatureReport, SignatureStatus, SignedEntry};
pub use stats::{Entry, Stats};
pub use verify::{Problem, VerifyReport};

use file::PackFile;
use session::Session;
use view::{Found, View};

/// A pack file of compiled artifacts (or any values) under 32-byte keys.
///
/// Cheap to clone: clones share one file handle and one mapping. `Send + Sync`; any number of
/// threads and processes may read and write the same pack. Readers never lock and never wait
/// for writers; a writer holds an exclusive file lock only while appending and committing.
///
/// # Example
///
/// ```
/// use wasmpak::{Key, Pack, PackIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let identity = PackIdentity::new().with("engine", "demo").with("abi", 1u32);
/// let pack = Pack::open_or_create(dir.path().join("demo.wpk"), &identity)?;
///
/// let key = Key::from_bytes([7; 32]);
/// pack.insert_with_label(&key, b"compiled bytes", "hello.wasm")?;
/// assert_eq!(pack.get(&key)?.as_deref(), Some(&b"compiled bytes"[..]));
///
/// // Another handle, as another process would open it, sees the commit.
/// let other = Pack::open(pack.path(), &identity)?;
/// assert_eq!(other.len()?, 1);
/// assert!(other.remove(&key)?);
/// assert_eq!(pack.get(&key)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pack {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: PackOptions,
    identity: PackIdentity,
    view: RwLock<Arc<View>>,
    /// Serializes this process's writers: the file lock is per open file, not per thread.
    writer: Mutex<()>,
    /// When a miss last checked whether the path names a new file (milliseconds since open).
    last_path_check: AtomicU64,
    opened: Instant,
    /// The signature chain of the latest commit, judged against `options.trusted_keys`.
    signatures: signature::ChainCache,
}

/// How often a miss may `stat` the path to notice a replaced file.
const PATH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("path", &self.inner.path)
            .field("identity", &self.inner.identity.to_string())
            .finish_non_exhaustive()
    }
}

impl Pack {
    /// Opens an existing pack, which must have `identity`, with default options.
    pub fn open(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open(path, identity)
    }

    /// Creates a new, empty pack with default options; fails if `path` exists.
    pub fn create(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().create(path, identity)
    }

    /// Opens the pack at `path`, creating it if missing, with default options.
    pub fn open_or_create(path: impl AsRef<Path>, identity: &PackIdentity) -> Result<Pack> {
        PackOptions::new().open_or_create(path, identity)
    }

    /// Opens a pack of any identity, with default options.
    pub fn open_any(path: impl AsRef<Path>) -> Result<Pack> {
        PackOptions::new().open_any(path)
    }

    pub(crate) fn open_with(
        path: &Path,
        identity: Option<&PackIdentity>,
        options: PackOptions,
    ) -> Result<Pack> {
        let file = PackFile::open(path, options.allow_shared_write)?;
        if options.trust_installed {
            seal::check_installed(&file)?;
        }
        if let Some(expected) = identity
            && *expected != file.identity
        {
            return Err(Error::IdentityMismatch {
                path: path.to_path_buf(),
                expected: expected.clone(),
                found: file.identity.clone(),
            });
        }
        let identity = file.identity.clone();
        let view = View::first(Arc::new(file))?;
        Ok(Pack {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                identity,
                view: RwLock::new(Arc::new(view)),
                writer: Mutex::new(()),
                last_path_check: AtomicU64::new(0),
                opened: Instant::now(),
                signatures: signature::ChainCache::default(),
            }),
        })
    }

    pub(crate) fn create_with(
        path: &Path,
        identity: &PackIdentity,
        options: PackOptions,
    ) -> Result<Pack> {
        if !file::create(path, identity)? {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        Pack::open_with(path, Some(identity), options)
    }

    pub(crate) fn open_or_create_with(
        path: &Path,
        identity: &PackIdentity,
        options: PackOptions,
    ) -> Result<Pack> {
        match Pack::open_with(path, Some(identity), options.clone()) {
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                // Losing a creation race is fine: the winner's pack is the one we open.
                file::create(path, identity)?;
                Pack::open_with(path, Some(identity), options)
            }
            other => other,
        }
    }

    /// The path the pack was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The identity stored in the pack.
    pub fn identity(&self) -> &PackIdentity {
        &self.inner.identity
    }

    /// The view of the latest commit: the cached one unless a slot changed (two word loads).
    pub(crate) fn view(&self) -> Result<Arc<View>> {
        let current = self
            .inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if current.is_current() {
            return Ok(current);
        }
        let fresh = View::load(current.file.clone(), Some(&current))?;
        if fresh.commit.superseded {
            drop(fresh);
            return self.reopen(current);
        }
        let fresh = Arc::new(fresh);
        self.install(fresh.clone());
        Ok(fresh)
    }

    /// Replaces the cached view unless a newer one of the same file got there first.
    pub(crate) fn install(&self, fresh: Arc<View>) {
        let mut slot = self
            .inner
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let same_file = Arc::ptr_eq(&slot.file, &fresh.file);
        if !same_file || fresh.commit.generation >= slot.commit.generation {
            *slot = fresh;
        }
    }

    /// Opens the path again: compaction replaced the file `previous` (the caller's view of
    /// the old file) belongs to. Both the cached view and `previous` are then let go of with
    /// [`retire`], so the caller never pays for unmapping the old file.
    pub(crate) fn reopen(&self, previous: Arc<View>) -> Result<Arc<View>> {
        let file = PackFile::open(&self.inner.path, self.inner.options.allow_shared_write)?;
        if self.inner.options.trust_installed {
            seal::check_installed(&file)?;
        }
        if file.identity != self.inner.identity {
            return Err(Error::IdentityMismatch {
                path: self.inner.path.clone(),
                expected: self.inner.identity.clone(),
                found: file.identity,
            });
        }
        let view = Arc::new(View::first(Arc::new(file))?);
        let old = std::mem::replace(
            &mut *self
                .inner
                .view
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            view.clone(),
        );
        retire(old);
        retire(previous);
        Ok(view)
    }

    /// The value stored under `key`, borrowed zero-copy from the mapping: the returned
    /// `Bytes` keeps the mapping alive. Its checksum is verified according to the pack's
    /// [`Verify`] policy; a mismatch is an [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt)
    /// error naming the key.
    pub fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let (view, found) = self.lookup(key)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let entry = found.entry;
        let (offset, payload) = view.payload(&entry)?;
        let first_time = !view.is_verified(&found);
        let options = &self.inner.options;
        let check = !options.trust_installed
            && match options.verify {
                Verify::Always => true,
                Verify::Once => first_time,
                Verify::Never => false,
            };
        if options.checks_signatures() {
            // The signed BLAKE3 hash stands in for the CRC-32: it catches everything the CRC
            // would, and forgeries.
            self.check_signed(&view, &entry, payload, check)?;
        } else if check && mapping::checksum(payload) != entry.payload_crc {
            return Err(view.corrupt(format!(
                "value of {key} at offset {offset}: checksum mismatch"
            )));
        }
        if first_time {
            view.set_verified(&found);
        }
        Ok(Some(view.shared_bytes(offset, entry.payload_len)?))
    }

    /// The view and the live value entry for `key`, looking at a replaced file after a miss.
    fn lookup(&self, key: &Key) -> Result<(Arc<View>, Option<Found>)> {
        let view = self.view()?;
        let found = view.find(key)?.filter(|f| f.entry.kind == EntryKind::Value);
        if found.is_none()
            && let Some(replacement) = self.replaced_view()?
        {
            let found = replacement
                .find(key)?
                .filter(|f| f.entry.kind == EntryKind::Value);
            return Ok((replacement, found));
        }
        Ok((view, found))
    }

    /// After a miss: if the path now names another file (replaced by compaction or by another
    /// tool without the superseded mark a clean compaction leaves), the view of that file.
    /// Rate-limited, so a stream of misses costs one `stat` per interval.
    fn replaced_view(&self) -> Result<Option<Arc<View>>> {
        let now = self.inner.opened.elapsed().as_millis() as u64;
        let last = self.inner.last_path_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PATH_CHECK_INTERVAL.as_millis() as u64
            || self
                .inner
                .last_path_check
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(None);
        }
        let current = self.view()?;
        match current.file.path_still_names_me() {
            Ok(Some(false)) => match self.reopen(current) {
                Ok(view) => Ok(Some(view)),
                Err(e) => {
                    tracing::warn!(error = %e, "the pack was replaced by a file we cannot use");
                    Ok(None)
                }
            },
            _ => Ok(None),
        }
    }

    /// Whether `key` has a value (no checksum is computed).
    pub fn contains(&self, key: &Key) -> Result<bool> {
        Ok(self.lookup(key)?.1.is_some())
    }

    /// The length of the value under `key`, found in the index without touching the value:
    /// lets the module cache decide, before the checksum reads every page of a large value,
    /// to read it off the async executor.
    #[cfg_attr(not(feature = "wasmer"), allow(dead_code))]
    pub(crate) fn value_len(&self, key: &Key) -> Result<Option<u64>> {
        Ok(self.lookup(key)?.1.map(|found| found.entry.payload_len))
    }

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

    /// The number of keys with a value.
    pub fn len(&self) -> Result<u64> {
        Ok(self.view()?.root.live_entries)
    }

    /// Whether the pack holds no values.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    pub(crate) fn begin(&self) -> Result<Session<'_>> {
        Session::begin(self)
    }
}

/// Lets go of the view of a file this handle no longer reads (compaction replaced it). If
/// this is the last reference, dropping it unmaps the file and closes it, and for a replaced
/// file that is also when the kernel frees its blocks: measured at 100–140 ms for a 96 MiB
/// pack. That work goes to a short-lived thread so that neither `compact` nor the reader
/// that noticed the replacement waits for it; if no thread can be started it happens here.
fn retire(old: Arc<View>) {
    if Arc::strong_count(&old) > 1 {
        return; // Someone else still reads it; the last of them lets go.
    }
    // A failed spawn drops the closure, and the view with it, right here.
    if let Err(e) = std::thread::Builder::new()
        .name("wasmpak-retire".into())
        .spawn(move || drop(old))
    {
        tracing::debug!(error = %e, "released a replaced pack file inline");
    }
}

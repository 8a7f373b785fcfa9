//! The pack handle: one open pack, its options, and the view of its latest commit, shared by
//! every clone.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::{PackIdentity, PackOptions, Result, sync};

use super::file::{Origin, PackFile};
use super::view::View;

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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) path: PathBuf,
    pub(super) options: PackOptions,
    pub(super) identity: PackIdentity,
    pub(super) view: RwLock<Arc<View>>,
    /// Serializes this process's writers: the file lock is per open file, not per thread.
    pub(super) writer: Mutex<()>,
    /// When a miss last checked whether the path names a new file (milliseconds since open).
    pub(super) last_path_check: AtomicU64,
    pub(super) opened: Instant,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("path", &self.inner.path)
            .field("identity", &self.inner.identity.to_string())
            .finish_non_exhaustive()
    }
}

impl Pack {
    /// A handle on `file`, opened (and checked) at `path` with `options`.
    pub(super) fn from_file(path: &Path, file: PackFile, options: PackOptions) -> Result<Pack> {
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
            }),
        })
    }

    /// The path the pack was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The identity stored in the pack.
    pub fn identity(&self) -> &PackIdentity {
        &self.inner.identity
    }

    /// The options the pack was opened with.
    pub(crate) fn options(&self) -> &PackOptions {
        &self.inner.options
    }

    /// The view of the latest commit: the cached one unless a slot changed (two word loads).
    pub(crate) fn view(&self) -> Result<Arc<View>> {
        let current = sync::read(&self.inner.view).clone();
        if current.is_current() {
            return Ok(current);
        }
        let fresh = View::load(current.file.clone(), Some(&current))?;
        if fresh.commit.superseded {
            drop(fresh);
            return self.reopen(current);
        }
        let fresh = Arc::new(fresh);
        self.cache_view(fresh.clone());
        Ok(fresh)
    }

    /// Makes `fresh` the cached view, unless a newer one of the same file got there first.
    pub(crate) fn cache_view(&self, fresh: Arc<View>) {
        let mut slot = sync::write(&self.inner.view);
        let same_file = Arc::ptr_eq(&slot.file, &fresh.file);
        if !same_file || fresh.commit.generation >= slot.commit.generation {
            *slot = fresh;
        }
    }

    /// Opens the path again: compaction replaced the file `previous` (the caller's view of
    /// the old file) belongs to. Both the cached view and `previous` are then let go of with
    /// [`retire`], so the caller never pays for unmapping the old file.
    pub(crate) fn reopen(&self, previous: Arc<View>) -> Result<Arc<View>> {
        let file = PackFile::open(
            Origin::Path(&self.inner.path),
            Some(&self.inner.identity),
            &self.inner.options,
        )?;
        let view = Arc::new(View::first(Arc::new(file))?);
        let old = std::mem::replace(&mut *sync::write(&self.inner.view), view.clone());
        retire(old);
        retire(previous);
        Ok(view)
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

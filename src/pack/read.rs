//! Reading a pack: lookups, and the checks a value passes before [`Pack::get`] hands it out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::format::index::{EntryKind, IndexEntry};
use crate::{ErrorKind, Key, Pack, Result};

use super::check::ValueCheck;
use super::mapping;
use super::options::Verify;
use super::view::{Found, View};

/// How often a miss may `stat` the path to notice a replaced file.
const PATH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

impl Pack {
    /// The value stored under `key`, borrowed zero-copy from the mapping: the returned
    /// `Bytes` keeps the mapping alive. Its checksum is verified according to the pack's
    /// [`Verify`] policy; a mismatch is an [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt)
    /// error naming the key. (With trusted keys on a pack opened with
    /// [`allow_shared_write`](crate::PackOptions::allow_shared_write), the value is a private
    /// copy, checked on every get.)
    pub fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let (view, found) = self.lookup(key)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let entry = found.entry;
        let options = self.options();
        if let Some(check) = &options.check
            && view.file.others_may_write
        {
            return private_value(&view, &entry, check.as_ref()).map(Some);
        }
        let (offset, payload) = view.payload(&entry)?;
        let first_time = !view.is_verified(&found);
        let check_bytes = !view.file.skips_hashing
            && match options.verify {
                Verify::Always => true,
                Verify::Once => first_time,
                Verify::Never => false,
            };
        match &options.check {
            // The check above the store (signatures: a BLAKE3 hash) stands in for the CRC-32:
            // it catches everything the CRC would, and forgeries.
            Some(check) => check.check_value(&view, &entry, check_bytes.then_some(payload))?,
            None if check_bytes && mapping::checksum(payload) != entry.payload_crc => {
                return Err(view.corrupt(format!(
                    "value of {key} at offset {offset}: checksum mismatch"
                )));
            }
            None => {}
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
        let inner = &self.inner;
        let now = inner.opened.elapsed().as_millis() as u64;
        let last = inner.last_path_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PATH_CHECK_INTERVAL.as_millis() as u64
            || inner
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

    /// Whether [`get`](Pack::get) checks the bytes of a value before handing it out (its
    /// CRC-32, or the hash a trusted key signed; every time or the first time), or the file
    /// is an installed pack an install verified. `false` for [`Verify::Never`] without
    /// `trust_installed`, trusted keys or not: then only lengths and labels are checked, so
    /// nothing may hand its values to an unchecked deserializer.
    #[cfg_attr(not(feature = "wasmer"), allow(dead_code))]
    pub(crate) fn verifies_values(&self) -> bool {
        let options = self.options();
        options.trust_installed || options.verify != Verify::Never
    }

    /// Whether `key` has a value that [`Pack::get`] would hand out as far as the index tells,
    /// without reading the value: with trusted keys, only if a valid signature by one of them
    /// lists it with its length and label (at the minimum release, if one is set). Whether
    /// the bytes are what was signed (or match their checksum) is learned by `get`.
    pub fn contains(&self, key: &Key) -> Result<bool> {
        let (view, found) = self.lookup(key)?;
        match (found, &self.options().check) {
            (None, _) => Ok(false),
            (Some(_), None) => Ok(true),
            (Some(found), Some(check)) => match check.check_value(&view, &found.entry, None) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::Untrusted => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// The length of the value under `key`, found in the index without touching the value:
    /// lets the module cache decide, before the checksum reads every page of a large value,
    /// to read it off the async executor.
    #[cfg_attr(not(feature = "wasmer"), allow(dead_code))]
    pub(crate) fn value_len(&self, key: &Key) -> Result<Option<u64>> {
        Ok(self.lookup(key)?.1.map(|found| found.entry.payload_len))
    }

    /// The number of keys with a value.
    pub fn len(&self) -> Result<u64> {
        Ok(self.view()?.root.live_entries)
    }

    /// Whether the pack holds no values.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The value of `entry` in a pack other users may write: read once into private memory,
/// checked, and that copy handed out, so that no write after the check reaches the caller
/// (docs/FORMAT.md, section 15). The index is checked first, so that nothing is allocated
/// for a length no trusted signature names.
fn private_value(view: &View, entry: &IndexEntry, check: &dyn ValueCheck) -> Result<Bytes> {
    check.check_value(view, entry, None)?;
    let (offset, _) = view.payload(entry)?;
    let copy = view.file.read_private(offset, entry.payload_len)?;
    check.check_value(view, entry, Some(&copy))?;
    Ok(copy)
}

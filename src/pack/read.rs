//! Reading a pack: lookups, and the checks a value passes before [`Pack::get`] hands it out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::format::index::EntryKind;
use crate::{Key, Pack, Result};

use super::mapping;
use super::options::Verify;
use super::view::{Found, View};

/// How often a miss may `stat` the path to notice a replaced file.
const PATH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

impl Pack {
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
        let options = self.options();
        let check_bytes = !options.trust_installed
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

    /// The number of keys with a value.
    pub fn len(&self) -> Result<u64> {
        Ok(self.view()?.root.live_entries)
    }

    /// Whether the pack holds no values.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

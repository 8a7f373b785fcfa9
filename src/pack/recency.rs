#![cfg_attr(not(feature = "wasmer"), allow(dead_code))]

//! When each entry was last used, for least-recently-used retention.
//!
//! Loads must not write to disk, so each process stamps keys in memory (an atomic store
//! under a shared lock) and merges its stamps into a small sidecar file next to the pack,
//! `{pack}.recency`, off the load path: before it compacts, after it saves, and at most once
//! a minute from a background thread. Compaction reads the merged stamps of every process
//! that flushed. The sidecar is advisory: if it is lost or torn, LRU order degrades to write
//! order and nothing else happens.
//!
//! The sidecar's bytes are `format::recency`'s; each flush replaces it whole, through the one
//! durable write, under an exclusive `flock` (so a power loss leaves the old sidecar or the
//! new one, never a torn one).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::DecodeError;
use crate::format::recency;
use crate::fs::{self, FileMode};
use crate::{Key, sync};

/// Milliseconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This process's stamps for one pack.
#[derive(Debug)]
pub(crate) struct Recency {
    stamps: RwLock<HashMap<Key, AtomicU64>>,
    last_flush: AtomicU64,
    /// Whether a stamp changed since the last flush (so a final flush can be skipped).
    dirty: AtomicBool,
}

impl Default for Recency {
    /// The first periodic flush is a full interval away: a process that loads a few modules
    /// and exits should not pay for a sidecar write on its first load.
    fn default() -> Recency {
        Recency {
            stamps: RwLock::default(),
            last_flush: AtomicU64::new(now()),
            dirty: AtomicBool::new(false),
        }
    }
}

impl Recency {
    /// Notes a use of `key` now. A shared lock and an atomic store once the key is known.
    pub(crate) fn touch(&self, key: &Key) {
        self.stamp(key, now());
        // After the stamp, so that a flush clearing the flag has seen it or leaves it set.
        // Read first: loads on many threads must not all write one shared cache line.
        if !self.dirty.load(Ordering::SeqCst) {
            self.dirty.store(true, Ordering::SeqCst);
        }
    }

    fn stamp(&self, key: &Key, stamp: u64) {
        {
            let stamps = sync::read(&self.stamps);
            if let Some(slot) = stamps.get(key) {
                slot.fetch_max(stamp, Ordering::Relaxed);
                return;
            }
        }
        sync::write(&self.stamps)
            .entry(*key)
            .or_default()
            .fetch_max(stamp, Ordering::Relaxed);
    }

    /// Whether a stamp changed since the last flush.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// Whether a background flush is due (and claims it).
    pub(crate) fn flush_due(&self, every_secs: u64) -> bool {
        let now = now();
        let last = self.last_flush.load(Ordering::Relaxed);
        now.saturating_sub(last) >= every_secs * 1000
            && self
                .last_flush
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn snapshot(&self) -> HashMap<Key, u64> {
        sync::read(&self.stamps)
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect()
    }

    /// Merges this process's stamps into the sidecar of `pack_path` and returns the merged
    /// stamps of every process. `keep` limits what is written back (after a compaction, the
    /// keys still in the pack); `None` keeps everything.
    ///
    /// The sidecar is replaced whole, through the one durable write (`fs::write_file`), under
    /// an exclusive `flock` on the file it replaces: a flusher that waited for that lock finds
    /// the path naming a newer file, and merges into that one instead.
    pub(crate) fn flush(
        &self,
        pack_path: &Path,
        keep: Option<&dyn Fn(&Key) -> bool>,
    ) -> io::Result<HashMap<Key, u64>> {
        let path = sidecar_path(pack_path);
        // Cleared before the snapshot: a touch racing with this flush marks it dirty again.
        self.dirty.store(false, Ordering::SeqCst);
        let result = self.merge_into(&path, keep);
        if result.is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        }
        self.last_flush.store(now(), Ordering::Relaxed);
        result
    }

    fn merge_into(
        &self,
        path: &Path,
        keep: Option<&dyn Fn(&Key) -> bool>,
    ) -> io::Result<HashMap<Key, u64>> {
        let merge = |mut merged: HashMap<Key, u64>| {
            for (key, stamp) in self.snapshot() {
                let slot = merged.entry(key).or_insert(stamp);
                *slot = (*slot).max(stamp);
            }
            if let Some(keep) = keep {
                merged.retain(|k, _| keep(k));
                // And forget them here: the next flush would write an evicted key back.
                sync::write(&self.stamps).retain(|k, _| keep(k));
            }
            merged
        };
        for _ in 0..MAX_REPLACED {
            let mut file = match File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The first flush: a new file, unless another process's got there first.
                    let merged = merge(HashMap::new());
                    match fs::write_new_file(path, &recency::encode(&merged), FileMode::Public) {
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        other => return other.map(|()| merged),
                    }
                }
                Err(e) => return Err(e),
            };
            file.lock()?;
            let locked = file.metadata()?;
            let current = std::fs::metadata(path)
                .is_ok_and(|now| (now.dev(), now.ino()) == (locked.dev(), locked.ino()));
            let result = if current {
                let merged = merge(read(&mut file).unwrap_or_default());
                fs::write_file(path, &recency::encode(&merged), FileMode::Public).map(|()| merged)
            } else {
                Err(io::Error::from(io::ErrorKind::Interrupted)) // replaced meanwhile
            };
            let _ = file.unlock();
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
        Err(io::Error::other(format!(
            "{} keeps being replaced while we merge into it",
            path.display()
        )))
    }
}

/// How many times a flush follows the sidecar's path to a newer file before giving up.
const MAX_REPLACED: usize = 16;

/// The stamps in the sidecar of `pack_path`; empty if it is missing, torn or foreign.
pub(crate) fn read_sidecar(pack_path: &Path) -> HashMap<Key, u64> {
    let Ok(mut file) = File::open(sidecar_path(pack_path)) else {
        return HashMap::new();
    };
    if file.lock_shared().is_err() {
        return HashMap::new();
    }
    let stamps = read(&mut file).unwrap_or_default();
    let _ = file.unlock();
    stamps
}

/// The sidecar's path for a pack.
pub(crate) fn sidecar_path(pack_path: &Path) -> PathBuf {
    let mut name = pack_path.file_name().unwrap_or_default().to_os_string();
    name.push(".recency");
    pack_path.with_file_name(name)
}

fn read(file: &mut File) -> io::Result<HashMap<Key, u64>> {
    let invalid = |e: DecodeError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = vec![0u8; recency::HEADER_LEN];
    if file.read(&mut bytes)? < recency::HEADER_LEN {
        return Ok(HashMap::new());
    }
    let count = recency::decode_count(&bytes).map_err(invalid)?;
    // The count is the file's word: allocate by it only once the file is that long.
    let len = (recency::HEADER_LEN + recency::body_len(count)) as u64;
    if file.metadata()?.len() != len {
        return Err(invalid(DecodeError::new(
            "recency sidecar length disagrees with its count",
        )));
    }
    bytes.resize(len as usize, 0);
    file.read_exact(&mut bytes[recency::HEADER_LEN..])?;
    recency::decode(&bytes).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evicted_key_is_not_written_back_by_a_later_flush() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("p.wpk");
        let recency = Recency::default();
        let (kept, evicted) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        recency.touch(&kept);
        recency.touch(&evicted);
        recency.flush(&pack, None).unwrap();
        let after_compaction = recency.flush(&pack, Some(&|k: &Key| *k == kept)).unwrap();
        assert_eq!(after_compaction.len(), 1);
        recency.touch(&kept);
        recency.flush(&pack, None).unwrap();
        let stamps = read_sidecar(&pack);
        assert!(stamps.contains_key(&kept) && !stamps.contains_key(&evicted));
    }

    #[test]
    fn processes_merge_their_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("p.wpk");
        let a = Recency::default();
        let b = Recency::default();
        a.touch(&Key::from_bytes([1; 32]));
        b.touch(&Key::from_bytes([2; 32]));
        a.flush(&pack, None).unwrap();
        let merged = b.flush(&pack, None).unwrap();
        assert_eq!(merged.len(), 2);
        let kept = a
            .flush(&pack, Some(&|k: &Key| k.as_bytes()[0] == 2))
            .unwrap();
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            vec![&Key::from_bytes([2; 32])]
        );
    }

    #[test]
    fn a_torn_or_foreign_sidecar_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("p.wpk");
        let r = Recency::default();
        r.touch(&Key::from_bytes([1; 32]));
        r.flush(&pack, None).unwrap();
        let side = sidecar_path(&pack);
        let mut bytes = std::fs::read(&side).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&side, &bytes).unwrap();
        let fresh = Recency::default();
        assert!(fresh.flush(&pack, None).unwrap().is_empty());
        std::fs::write(&side, b"garbage that is long enough to read a header").unwrap();
        assert!(fresh.flush(&pack, None).unwrap().is_empty());
        let mut huge = Vec::from(*recency::MAGIC);
        huge.extend_from_slice(&recency::VERSION.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&side, &huge).unwrap();
        assert!(fresh.flush(&pack, None).unwrap().is_empty());
    }
}

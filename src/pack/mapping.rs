//! The read-only memory mapping of a pack file (or the bytes of a pack the program already
//! holds in memory), and the `Bytes` owner that keeps it alive.
//!
//! This file holds the store's only `unsafe` code. Everything rests on the format's invariant
//! (docs/FORMAT.md, section 2): bytes below the committed length are never modified and the
//! file is never truncated, so a slice of committed bytes stays valid and unchanged for as
//! long as the mapping exists. The commit slots are the one place written in place; they are
//! read here only with atomic loads, never through a slice. A slice is handed out only below
//! a [`CommittedLen`], which only a commit slot read from the file provides: the precondition
//! is part of the signature, not a comment callers have to honour.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw, UncheckedAdvice};

use crate::format::superblock::{
    CommitSlot, DATA_START, SLOT_CRC_WORD_AT, SLOT_GENERATION_AT, SLOT_OFFSETS,
};

/// The committed length of a commit slot read from the mapped file: every byte below it was
/// written before that slot and is never written again while the file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommittedLen(u64);

impl CommittedLen {
    /// The committed length of `slot`, which must have been read from the file that is mapped.
    pub(crate) fn of(slot: &CommitSlot) -> CommittedLen {
        CommittedLen(slot.committed_len)
    }

    /// The length in bytes.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// A read-only shared mapping of the first `len` bytes of a pack file, or the bytes of an
/// embedded pack. An enum, not a trait object: a file pack's reads pay one predictable branch.
#[derive(Debug)]
pub(crate) enum Mapping {
    File(MmapRaw),
    /// Immutable bytes (`&'static` or owned by a `Bytes`): no commit slot ever changes, and
    /// every range is checked against their length.
    Memory(Bytes),
}

/// The two words of a commit slot a reader compares to notice a new commit.
pub(crate) type SlotWords = (u64, u64);

impl Mapping {
    /// Maps the first `len` bytes of `file`, which must be at least [`DATA_START`] long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Mapping> {
        if len < DATA_START {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file is shorter than the superblock",
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Mapping::File(raw))
    }

    /// The mapped length.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Mapping::File(raw) => raw.len() as u64,
            Mapping::Memory(bytes) => bytes.len() as u64,
        }
    }

    /// The generation and checksum words of both commit slots, read without a system call.
    /// Any difference from the values seen at the last refresh means a writer touched a slot.
    pub(crate) fn slot_words(&self) -> [SlotWords; 2] {
        SLOT_OFFSETS.map(|slot| {
            (
                self.load_word(slot as usize + SLOT_GENERATION_AT),
                self.load_word(slot as usize + SLOT_CRC_WORD_AT),
            )
        })
    }

    #[allow(unsafe_code)]
    fn load_word(&self, offset: usize) -> u64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= DATA_START as usize);
        let raw = match self {
            Mapping::File(raw) => raw,
            // Nothing writes these bytes: a plain read, bounds-checked (`from_memory` refuses
            // bytes shorter than DATA_START, so the fallback is never taken).
            Mapping::Memory(bytes) => {
                let mut word = [0u8; 8];
                if let Some(src) = bytes.get(offset..offset + 8) {
                    word.copy_from_slice(src);
                }
                return u64::from_le_bytes(word);
            }
        };
        let ptr = raw.as_ptr().wrapping_add(offset) as *mut u64;
        // SAFETY: `Mapping::new` only maps files at least DATA_START bytes long, and slot words
        // lie below DATA_START, so `ptr` is in bounds; it is 8-byte aligned because the mapping
        // is page-aligned and `offset` is a multiple of 8. The slot pages are written in place
        // by other processes (pwrite through the page cache), so we never form a reference to
        // them and read with a relaxed atomic load, which the standard library documents as
        // sound on read-only memory for word-sized loads. A torn value only sends the reader to
        // the slow path, which re-reads the slots with `pread` and checks their CRCs.
        unsafe { AtomicU64::from_ptr(ptr).load(Ordering::Relaxed) }
    }

    /// The committed bytes `[offset, offset + len)`, or `None` unless the range lies in the
    /// data area of this mapping and below `within`.
    #[allow(unsafe_code)]
    pub(crate) fn committed(&self, within: CommittedLen, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if offset < DATA_START || end > within.get() || end > self.len() {
            return None;
        }
        let raw = match self {
            Mapping::File(raw) => raw,
            Mapping::Memory(bytes) => return bytes.get(offset as usize..end as usize),
        };
        // SAFETY: `[offset, end)` lies inside the mapping (checked above) and at or after
        // DATA_START, so it excludes the commit slots; it lies below `within`, the committed
        // length of a commit slot read from this file, and by the format's invariant those
        // bytes are never written again while any mapping of the file exists. Nothing
        // truncates the file (assumption 5 of docs/FORMAT.md), so the pages stay mapped and
        // unchanged for the lifetime of `&self`, which the mapping outlives.
        Some(unsafe { std::slice::from_raw_parts(raw.as_ptr().add(offset as usize), len as usize) })
    }
}

impl Mapping {
    /// Drops this process's page-table entries for the whole pages of `bytes` that lie in this
    /// file mapping (nothing for bytes elsewhere, or for bytes in memory): the pages stay in
    /// the page cache, and a later read of them maps them again, with the same bytes. So a
    /// process that checked and loaded a value holds on to none of its pages until it reads
    /// them again. Costs one system call, more for many small page-cache folios (about 150 ns
    /// a 4 KiB page) than for large ones.
    #[allow(unsafe_code)]
    #[cfg_attr(not(feature = "wasmer"), allow(dead_code))] // Only the module caches use it.
    pub(crate) fn release(&self, bytes: &[u8]) {
        let Mapping::File(raw) = self else {
            return;
        };
        let mapped = raw.as_ptr() as usize..raw.as_ptr() as usize + raw.len();
        let (start, end) = (
            bytes.as_ptr() as usize,
            bytes.as_ptr() as usize + bytes.len(),
        );
        if !mapped.contains(&start) || end > mapped.end {
            return;
        }
        let page = rustix::param::page_size();
        let first = (start - mapped.start).next_multiple_of(page);
        let last = (end - mapped.start) / page * page;
        if last <= first {
            return;
        }
        // SAFETY: `[first, last)` lies inside this mapping, which is shared, read-only and
        // backed by the pack file. MADV_DONTNEED removes only the page-table entries: the next
        // access maps the same page-cache pages again (a shared file mapping's pages are never
        // zero-filled or discarded, and none is dirty in a read-only mapping). Those bytes are
        // unchanged since they were read (committed bytes are never modified, and the commit
        // slots are read only with atomic loads, which want the current bytes), so every slice
        // borrowed from the mapping stays valid and keeps its contents.
        let released =
            unsafe { raw.unchecked_advise_range(UncheckedAdvice::DontNeed, first, last - first) };
        if let Err(error) = released {
            tracing::debug!(%error, "could not release the pages of a value");
        }
    }

    /// The bytes of a pack held in memory, which must be at least [`DATA_START`] long.
    pub(crate) fn from_memory(bytes: Bytes) -> io::Result<Mapping> {
        if (bytes.len() as u64) < DATA_START {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the bytes are shorter than the superblock",
            ));
        }
        Ok(Mapping::Memory(bytes))
    }
}

/// The committed data area `[DATA_START, within)` of `map` as one `Bytes`, so that values are
/// handed out as slices of it: for a file, an owner keeping the mapping alive; for bytes in
/// memory, a slice of them (zero-copy either way).
pub(crate) fn data_area(map: &Arc<Mapping>, within: CommittedLen) -> Option<Bytes> {
    let len = within.get().checked_sub(DATA_START)?;
    map.committed(within, DATA_START, len)?;
    match &**map {
        Mapping::Memory(bytes) => Some(bytes.slice(DATA_START as usize..within.get() as usize)),
        Mapping::File(_) => {
            MappedRange::new(map.clone(), within, DATA_START, len).map(Bytes::from_owner)
        }
    }
}

/// The CRC-32 of `payload`, on the calling thread: it reads the mapped pages at about the
/// memory bandwidth of one core, and a second thread started for a large payload cost more
/// than it saved (measured in fresh processes: thread start and wake-up against half the
/// checksum of a 4 MiB artifact, about 70 µs); on a busy machine the wait for it to be
/// scheduled cost milliseconds. (Asking the kernel to map the pages in first with
/// `MADV_POPULATE_READ`, or touching a byte a few pages ahead of the checksum, measured
/// slower than letting the checksum fault them in.)
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// The owner behind a `Bytes` handed out by [`crate::Pack::get`]: a committed range of a
/// mapping, which stays mapped for as long as any clone of the `Bytes` lives.
pub(crate) struct MappedRange {
    map: Arc<Mapping>,
    within: CommittedLen,
    offset: u64,
    len: u64,
}

impl MappedRange {
    /// Wraps a range that [`Mapping::committed`] accepts; `None` otherwise.
    pub(crate) fn new(
        map: Arc<Mapping>,
        within: CommittedLen,
        offset: u64,
        len: u64,
    ) -> Option<MappedRange> {
        map.committed(within, offset, len)?;
        Some(MappedRange {
            map,
            within,
            offset,
            len,
        })
    }
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        // The range was checked in `new` and the mapping never shrinks.
        self.map
            .committed(self.within, self.offset, self.len)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ALIGN;
    use crate::format::superblock::{CommitSlot, SLOT_GENERATION_AT};

    /// Found in review: `committed` trusted callers to stay below the committed length, which
    /// it could not check. The bound is now an argument, and only a commit slot provides one.
    #[test]
    fn committed_ranges_stop_at_the_committed_length() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(DATA_START + 4096).unwrap();
        let map = Mapping::new(&file, DATA_START + 4096).unwrap();
        let within = CommittedLen::of(&CommitSlot {
            committed_len: DATA_START + 128,
            ..CommitSlot::empty()
        });
        assert_eq!(
            map.committed(within, DATA_START, 128).map(<[u8]>::len),
            Some(128)
        );
        assert_eq!(
            map.committed(within, DATA_START + 64, 64).map(<[u8]>::len),
            Some(64)
        );
        // Mapped, but past the commit: the bytes a writer may be writing right now.
        assert!(map.committed(within, DATA_START, 129).is_none());
        assert!(map.committed(within, DATA_START + 128, 1).is_none());
        // The commit slots and header, and overflowing ranges.
        assert!(map.committed(within, DATA_START - 1, 1).is_none());
        assert!(map.committed(within, u64::MAX, 2).is_none());
        let past_the_map = CommittedLen::of(&CommitSlot {
            committed_len: DATA_START + 8192,
            ..CommitSlot::empty()
        });
        assert!(map.committed(past_the_map, DATA_START, 4097).is_none());
    }

    /// The mapping needs nothing of the page size but a page-aligned base: a pack maps from
    /// offset 0, its data area starts 12 KiB in (inside the first page when pages are 16 or
    /// 64 KiB) and ends anywhere in its last page. CI runs this under qemu-user with 64 KiB
    /// pages too, where `WASMPAK_EXPECT_PAGE_SIZE` makes sure it really did.
    #[test]
    fn maps_packs_whatever_the_page_size() {
        let page = rustix::param::page_size();
        if let Some(expected) = std::env::var_os("WASMPAK_EXPECT_PAGE_SIZE") {
            assert_eq!(expected.to_str(), Some(page.to_string().as_str()));
        }
        for len in [DATA_START + 64, 2 * DATA_START.max(page as u64) + 64] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut file = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut file, &bytes).unwrap();
            let map = Mapping::new(&file, len).unwrap();
            let Mapping::File(raw) = &map else {
                panic!("a file pack is mapped")
            };
            assert!((raw.as_ptr() as usize).is_multiple_of(page));

            let slot = SLOT_OFFSETS[1] as usize + SLOT_GENERATION_AT;
            let word = u64::from_le_bytes(bytes[slot..slot + 8].try_into().unwrap());
            assert_eq!(map.slot_words()[1].0, word);
            let within = CommittedLen::of(&CommitSlot {
                committed_len: len,
                ..CommitSlot::empty()
            });
            let data = map.committed(within, DATA_START, len - DATA_START).unwrap();
            assert_eq!(data, &bytes[DATA_START as usize..]);
            assert!((data.as_ptr() as usize).is_multiple_of(ALIGN as usize));
        }
    }

    /// Kilobytes of this process's resident set in the mapping that holds `address`.
    #[cfg(target_os = "linux")]
    fn resident_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or_default();
            if let Some((start, end)) = range.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                inside = (start..end).contains(&address);
            } else if inside && let Some(rss) = line.strip_prefix("Rss:") {
                return rss.trim().trim_end_matches(" kB").parse().unwrap();
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_leave_the_resident_set_and_read_the_same() {
        use std::os::unix::fs::FileExt;
        let len = 1 << 20;
        let pattern: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&pattern, DATA_START).unwrap();
        let map = Mapping::new(&file, DATA_START + len as u64).unwrap();
        let within = CommittedLen::of(&CommitSlot {
            committed_len: DATA_START + len as u64,
            ..CommitSlot::empty()
        });
        let value = map.committed(within, DATA_START, len as u64).unwrap();
        assert_eq!(value, &pattern[..]);
        let address = value.as_ptr() as usize;
        let before = resident_kib(address);
        assert!(
            before >= 1024,
            "the whole value was read: {before} KiB resident"
        );

        map.release(value);
        let after = resident_kib(address);
        // Only whole pages inside the value are given back: at most the partial page at each
        // end stays (none with 4 KiB pages, where the value is page-aligned; with 64 KiB pages
        // the value starts 12 KiB into one).
        let page_kib = rustix::param::page_size() as u64 / 1024;
        assert!(
            after <= 2 * page_kib,
            "{before} KiB resident before, {after} after ({page_kib} KiB pages)"
        );
        // Read again, the pages come back with the same bytes.
        assert_eq!(value, &pattern[..]);

        // Bytes that are not in the mapping are left alone.
        map.release(&pattern);
        map.release(&value[..100]);
        assert_eq!(value, &pattern[..]);
    }
}

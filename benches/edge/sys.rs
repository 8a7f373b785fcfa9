//! What the benchmark asks of Linux: evicting files from the page cache, proportional memory,
//! disk use.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every regular file under `dir`.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// Drops every file under `dir` from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`,
/// after an fsync so that no page is dirty): the state of a node right after boot. Pages
/// another process maps stay; the caller makes sure none does.
pub fn evict(dir: &Path) {
    for path in files(dir) {
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }
}

/// Bytes of the files under `dir` that are in the page cache (`mincore`), to check eviction.
pub fn resident_bytes(dir: &Path) -> u64 {
    let page = 4096u64;
    let mut resident = 0;
    for path in files(dir) {
        let file = std::fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        if len == 0 {
            continue;
        }
        // SAFETY: a private read-only mapping of a file nobody truncates during the benchmark;
        // only its residency is queried, no byte is read.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let pages = len.div_ceil(page) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: `map` covers `len` bytes from a page-aligned address and `vec` has one byte
        // per page of it, as mincore(2) requires.
        let rc = unsafe {
            libc::mincore(
                map.as_ptr() as *mut libc::c_void,
                len as usize,
                vec.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore failed");
        resident += vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page;
    }
    resident
}

/// Proportional set size and its anonymous and file-backed parts, in bytes, of process `pid`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pss {
    pub total: u64,
    pub anon: u64,
    pub file: u64,
}

pub fn pss(pid: u32) -> Pss {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            * 1024
    };
    Pss {
        total: field("Pss"),
        anon: field("Pss_Anon"),
        file: field("Pss_File"),
    }
}

/// (files, apparent bytes, allocated bytes) under `dir`.
pub fn disk_use(dir: &Path) -> (usize, u64, u64) {
    let files = files(dir);
    let (apparent, allocated) = files.iter().fold((0, 0), |(a, b), f| {
        let meta = std::fs::metadata(f).unwrap();
        (a + meta.len(), b + meta.blocks() * 512)
    });
    (files.len(), apparent, allocated)
}

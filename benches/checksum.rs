//! Where a large artifact's checksum time goes in a fresh process, and what was tried to hide
//! it (issue 19). Each measurement is one fresh process that maps a file from a warm page
//! cache (as a first load maps its pack), builds a 2-worker tokio runtime (as a server has
//! before its first request), evicts the CPU caches, and times one CRC-32 of the file:
//!
//! - *one thread*: `crc32fast::hash` over the mapping, what a pack's first load does;
//! - *second pass*: the same, timed the second time over the same bytes (the arithmetic alone,
//!   the bytes already in the CPU caches and mapped);
//! - *prefetch* (x86_64): 4 KiB at a time, each step asking for the lines of the page ahead
//!   (hardware prefetchers stop at page edges);
//! - *populate* (Linux): `MADV_POPULATE_READ` over the mapping first (one call maps every
//!   page);
//! - *split*: the second half offered to a parked tokio worker (no thread started), the first
//!   half hashed here, then the second half by whoever claims it first; `combine`d;
//! - *read lines*: no checksum, one 8-byte load from every 64-byte line: the memory traffic
//!   that any check of every byte pays at least, on one core (the worker computes its CRC
//!   after the timed part, for the check below).
//!
//! ```sh
//! cargo bench --profile ci --bench checksum                 # 21 rounds
//! cargo bench --profile ci --bench checksum -- --rounds 7
//! ```
//!
//! Every worker's CRC is checked against the file's. The file's content does not change a
//! CRC's speed, so the files are generated, not compiled modules.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// About the 4 MB and 22 MB artifacts of `benches/first_load.rs`.
const SIZES: [usize; 2] = [4_110_904, 21_928_224];
const MODES: [&str; 6] = [
    "one thread",
    "second pass",
    "prefetch",
    "populate",
    "split",
    "read lines",
];
const PAGE: usize = 4096;

fn main() {
    if let Ok(spec) = std::env::var("CHECKSUM_WORKER") {
        let (mode, path) = spec.split_once(';').expect("MODE;PATH");
        worker(mode, Path::new(path));
        return;
    }
    let rounds = common::rounds(21);
    let dir = tempfile::tempdir().unwrap();
    let modes: Vec<&str> = MODES
        .into_iter()
        .filter(|mode| *mode != "prefetch" || cfg!(target_arch = "x86_64"))
        .filter(|mode| *mode != "populate" || cfg!(target_os = "linux"))
        .collect();
    println!(
        "CRC-32 of a mapped file in a fresh process, CPU caches evicted: medians of {rounds} \
         interleaved rounds"
    );
    print!("{:>9}", "file");
    for mode in &modes {
        print!(" | {mode:>11}");
    }
    println!();
    for size in SIZES {
        let path = dir.path().join(format!("{size}.bin"));
        let bytes = generated(size);
        std::fs::write(&path, &bytes).unwrap();
        let expected = crc32fast::hash(&bytes);
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
        for round in 0..rounds {
            for turn in 0..modes.len() {
                let which = (turn + round) % modes.len();
                times[which].push(spawn(modes[which], &path, expected));
            }
        }
        print!("{:>5.1} MiB", size as f64 / (1 << 20) as f64);
        for mut mode_times in times {
            mode_times.sort();
            print!(" | {:>11}", show(mode_times[mode_times.len() / 2]));
        }
        println!();
    }
}

/// Runs one worker and returns the time it measured, after checking its CRC.
fn spawn(mode: &str, path: &Path, expected: u32) -> Duration {
    let spec = format!("{mode};{}", path.display());
    let text = common::run_worker(&[("CHECKSUM_WORKER", &spec)], mode);
    let (nanos, crc) = text.trim().split_once(' ').unwrap();
    assert_eq!(
        crc.parse::<u32>().unwrap(),
        expected,
        "{mode} got another CRC"
    );
    Duration::from_nanos(nanos.parse().unwrap())
}

fn worker(mode: &str, path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the file is this bench's own, written whole before any worker started and
    // never changed while one runs.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let bytes: &'static [u8] = Box::leak(Box::new(map));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Both workers started and parked again, as between a server's requests.
    runtime.block_on(async { tokio::spawn(async {}).await.unwrap() });
    std::thread::sleep(Duration::from_millis(20));
    if mode == "second pass" {
        std::hint::black_box(crc32fast::hash(bytes));
    } else {
        common::evict_cpu_caches();
    }
    let started = Instant::now();
    let crc = match mode {
        "one thread" | "second pass" => crc32fast::hash(bytes),
        "prefetch" => prefetching(bytes),
        "populate" => {
            // Best effort, as it would be in the pack: an older kernel refuses the advice.
            let _ = map_advise_populate(bytes);
            crc32fast::hash(bytes)
        }
        "split" => split(bytes, runtime.handle()),
        "read lines" => {
            std::hint::black_box(read_lines(bytes));
            0
        }
        other => panic!("unknown mode {other}"),
    };
    let elapsed = started.elapsed();
    let crc = match mode {
        "read lines" => crc32fast::hash(bytes),
        _ => crc,
    };
    println!("{} {crc}", elapsed.as_nanos());
}

/// The CRC of `bytes` a page at a time, asking for the next page's lines before each.
#[cfg(target_arch = "x86_64")]
fn prefetching(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let mut hasher = crc32fast::Hasher::new();
    for (i, page) in bytes.chunks(PAGE).enumerate() {
        let ahead = bytes.get((i + 1) * PAGE..).unwrap_or_default();
        for line in ahead.iter().take(PAGE).step_by(64) {
            // SAFETY: SSE, which the instruction needs, is part of every x86_64 CPU; a
            // prefetch is a hint that never faults and changes nothing the program reads.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(line).cast()) };
        }
        hasher.update(page);
    }
    hasher.finalize()
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetching(_: &[u8]) -> u32 {
    unreachable!("prefetch is measured on x86_64 only")
}

/// Asks the kernel to map every page of `bytes` (a whole mapping) at once.
#[cfg(target_os = "linux")]
fn map_advise_populate(bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: `bytes` is a whole, page-aligned, read-only shared file mapping that stays
    // mapped for the whole process; MADV_POPULATE_READ only faults its pages in, as reading
    // them would.
    let result = unsafe {
        libc::madvise(
            bytes.as_ptr().cast_mut().cast(),
            bytes.len(),
            libc::MADV_POPULATE_READ,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn map_advise_populate(_: &[u8]) -> std::io::Result<()> {
    unreachable!("MADV_POPULATE_READ is Linux's")
}

/// One half of a split checksum: free, claimed, or hashed.
struct Half {
    state: AtomicU8,
    hashed: Mutex<Option<crc32fast::Hasher>>,
    done: Condvar,
}

const FREE: u8 = 0;
const CLAIMED: u8 = 1;

impl Half {
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The CRC of `bytes`, its second half offered to a parked worker of `runtime`.
fn split(bytes: &'static [u8], runtime: &tokio::runtime::Handle) -> u32 {
    let middle = (bytes.len() / 2).next_multiple_of(PAGE).min(bytes.len());
    let half = Arc::new(Half {
        state: AtomicU8::new(FREE),
        hashed: Mutex::new(None),
        done: Condvar::new(),
    });
    let offered = half.clone();
    runtime.spawn(async move {
        if offered.claim() {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&bytes[middle..]);
            *offered.hashed.lock().unwrap() = Some(hasher);
            offered.done.notify_one();
        }
    });
    let mut first = crc32fast::Hasher::new();
    first.update(&bytes[..middle]);
    let second = if half.claim() {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[middle..]);
        hasher
    } else {
        let mut hashed = half.hashed.lock().unwrap();
        loop {
            match hashed.take() {
                Some(hasher) => break hasher,
                None => hashed = half.done.wait(hashed).unwrap(),
            }
        }
    };
    first.combine(&second);
    first.finalize()
}

/// One 8-byte load from every 64-byte line of `bytes`, folded so that none is optimized away.
fn read_lines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(64)
        .map(|line| {
            let mut word = [0u8; 8];
            let n = line.len().min(8);
            word[..n].copy_from_slice(&line[..n]);
            u64::from_ne_bytes(word)
        })
        .fold(0, |acc, word| acc ^ word)
}

/// Random bytes (a CRC's speed does not depend on them).
fn generated(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn show(time: Duration) -> String {
    match time.as_secs_f64() {
        s if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        s => format!("{:.0} µs", s * 1e6),
    }
}

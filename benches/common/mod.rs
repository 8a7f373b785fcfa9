//! What the benches that time fresh processes share: their `--rounds` argument, running this
//! bench again as a worker process, and emptying the CPU caches before the timed part.

use std::process::Command;

/// Bytes overwritten before a timed part, more than any x86 or ARM server's last-level cache
/// per core complex.
const EVICT_BYTES: usize = 64 << 20;

/// The `--rounds N` argument of this bench, or `default`.
pub fn rounds(default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// Runs this bench's own executable as a worker, with `env` set, and returns what it printed;
/// a worker that fails fails the bench, with its standard error.
pub fn run_worker(env: &[(&str, &str)], what: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{what} worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Overwrites a buffer larger than the last-level cache, so that nothing read before (by this
/// process or the previous worker) is still cached.
pub fn evict_cpu_caches() {
    let mut buffer = vec![1u8; EVICT_BYTES];
    for (i, byte) in buffer.iter_mut().enumerate().step_by(64) {
        *byte = byte.wrapping_add(i as u8);
    }
    std::hint::black_box(&buffer);
}

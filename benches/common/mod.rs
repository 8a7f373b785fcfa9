//! What the benches that time fresh processes share: their `--rounds` argument and emptying
//! the CPU caches before the timed part.

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

/// Overwrites a buffer larger than the last-level cache, so that nothing read before (by this
/// process or the previous worker) is still cached.
pub fn evict_cpu_caches() {
    let mut buffer = vec![1u8; EVICT_BYTES];
    for (i, byte) in buffer.iter_mut().enumerate().step_by(64) {
        *byte = byte.wrapping_add(i as u8);
    }
    std::hint::black_box(&buffer);
}

//! Helpers shared by the pack tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use wasmpak::{Key, PackIdentity};

/// The identity the pack tests use.
pub fn identity() -> PackIdentity {
    PackIdentity::new()
        .with("engine", "test")
        .with("abi", 1u32)
        .with("target", "test-target")
}

/// A key derived from a number, spread like a hash.
pub fn key(n: u64) -> Key {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Key::from_bytes(std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }))
}

/// A value of `len` bytes derived from a seed.
pub fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_add(0x2545_F491_4F6C_DD1D) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A fresh directory and a pack path inside it.
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.wpk");
    (dir, path)
}

/// Flips one bit of the file at `offset`.
pub fn flip(path: &Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= mask;
    file.write_all_at(&byte, offset).unwrap();
}

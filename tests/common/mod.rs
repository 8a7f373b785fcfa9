//! What the tests share: keys, values and scratch packs; raw access to a pack's bytes; child
//! processes; and prerequisites of the machine, which fail a test unless opted out.
#![allow(dead_code)]

mod machine;
#[cfg(feature = "wasmer")]
pub mod modules;
mod process;

use std::path::{Path, PathBuf};

use wasmpak::{Key, PackIdentity};

pub use machine::{
    NOBODY, installed, is_root, missing, nobody_can_run, on_read_only_fs, run_unprivileged,
    set_mode,
};
pub use process::{Victim, assert_passed, child, env_path, env_u64, played};

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
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= mask;
    file.write_all_at(&byte, offset).unwrap();
}

/// Raw access to a pack's bytes for crafting damaged files.
pub mod raw {
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    use wasmpak::format::record::{RecordHeader, RecordKind, payload_padding};
    use wasmpak::format::superblock::{self, CommitSlot, SLOT_LEN, SLOT_OFFSETS};

    /// The live commit slot of the pack at `path`.
    pub fn live(path: &Path) -> CommitSlot {
        let bytes = std::fs::read(path).unwrap();
        let slot = |i: usize| &bytes[SLOT_OFFSETS[i] as usize..SLOT_OFFSETS[i] as usize + SLOT_LEN];
        superblock::live_slot([slot(0), slot(1)], bytes.len() as u64)
            .unwrap()
            .1
    }

    /// A whole record: header, label, payload, padding.
    pub fn record(kind: RecordKind, key: [u8; 32], label: &[u8], payload: &[u8]) -> Vec<u8> {
        let header = RecordHeader::for_payload(kind, key, label.len() as u16, payload);
        let mut out = header.encode_with_label(label);
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(
            0,
            payload_padding(payload.len() as u64),
        ));
        out
    }

    /// Writes `bytes` at the committed length and publishes a commit whose root is at
    /// `root_at` bytes into them (or `root_offset` verbatim when `absolute`).
    pub fn commit(path: &Path, bytes: &[u8], root: RootAt) {
        let base = live(path);
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, base.committed_len).unwrap();
        let root_offset = match root {
            RootAt::Relative(at) => base.committed_len + at,
            RootAt::Absolute(offset) => offset,
        };
        let slot = CommitSlot {
            generation: base.generation + 1,
            committed_len: base.committed_len + bytes.len() as u64,
            root_offset,
            superseded: false,
            publication: superblock::Publication::Synced,
            signature_offset: 0,
        };
        write_slots(path, &slot);
    }

    /// Where a crafted commit's root is.
    pub enum RootAt {
        /// Offset into the appended bytes.
        Relative(u64),
        /// A file offset.
        Absolute(u64),
    }

    /// The file offsets of `key`'s index entries in the live index, newest block first.
    pub fn index_entries_of(path: &Path, key: &wasmpak::Key) -> Vec<u64> {
        use wasmpak::format::index::{ENTRY_LEN, Root};
        let bytes = std::fs::read(path).unwrap();
        let payload_at = |offset: u64| {
            let (header, _) = RecordHeader::decode(&bytes[offset as usize..]).unwrap();
            let start = header.payload_offset(offset).unwrap();
            (start, header.payload_len)
        };
        let (root_at, root_len) = payload_at(live(path).root_offset);
        let root = Root::decode(&bytes[root_at as usize..(root_at + root_len) as usize]).unwrap();
        let mut found = Vec::new();
        for block in root.blocks {
            let (at, _) = payload_at(block.offset);
            for i in 0..block.count {
                let entry = at + i * ENTRY_LEN as u64;
                if bytes[entry as usize..entry as usize + 32] == key.as_bytes()[..] {
                    found.push(entry);
                }
            }
        }
        found
    }

    /// Writes `slot` into both commit slots.
    pub fn write_slots(path: &Path, slot: &CommitSlot) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        for offset in SLOT_OFFSETS {
            file.write_all_at(&slot.encode(), offset).unwrap();
        }
    }
}

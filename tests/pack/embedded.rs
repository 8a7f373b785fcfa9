//! Packs held in memory: `Pack::from_static`, `Pack::from_bytes` and `include_pack!`.

use crate::common::{identity, key, scratch, value};
use bytes::Bytes;
use wasmpak::format::superblock::DATA_START;
use wasmpak::{ErrorKind, Key, Pack, PackIdentity, PackOptions, Verify, aligned_bytes};

/// A pack file with `count` values (of a few sizes) and its bytes, 64-byte aligned.
fn built(count: u64) -> (Pack, Bytes, tempfile::TempDir) {
    let (dir, path) = scratch();
    let pack = Pack::create(&path, &identity()).unwrap();
    let mut batch = pack.batch();
    for n in 0..count {
        let label = format!("module-{n}.wasm");
        batch
            .insert_with_label(&key(n), &value(n, 100 + 700 * n as usize), &label)
            .unwrap();
    }
    batch.commit().unwrap();
    let bytes = aligned_bytes(&std::fs::read(&path).unwrap());
    (pack, bytes, dir)
}

#[test]
fn reads_like_the_file_it_was_built_from() {
    let (file_pack, bytes, _dir) = built(12);
    let memory = Pack::from_bytes(bytes.clone(), &identity()).unwrap();
    assert!(memory.is_in_memory());
    assert!(!file_pack.is_in_memory());
    assert_eq!(memory.identity(), file_pack.identity());
    assert_eq!(memory.len().unwrap(), 12);
    for n in 0..12 {
        let got = memory.get(&key(n)).unwrap().unwrap();
        assert_eq!(got, file_pack.get(&key(n)).unwrap().unwrap());
        // Zero-copy: the value is a slice of the bytes handed in.
        let start = got.as_ptr() as usize - bytes.as_ptr() as usize;
        assert!(start + got.len() <= bytes.len());
        assert_eq!(start % 64, 0, "payloads are 64-byte aligned");
        assert!(memory.contains(&key(n)).unwrap());
    }
    assert_eq!(memory.get(&key(99)).unwrap(), None);
    assert!(!memory.contains(&key(99)).unwrap());

    let labels = |pack: &Pack| -> Vec<(Key, String, u64)> {
        pack.iter()
            .unwrap()
            .map(|e| (*e.key(), e.label().to_string(), e.size()))
            .collect()
    };
    assert_eq!(labels(&memory), labels(&file_pack));
    let (ours, theirs) = (memory.stats().unwrap(), file_pack.stats().unwrap());
    assert_eq!(ours.generation, theirs.generation);
    assert_eq!(ours.file_size, bytes.len() as u64);
    let report = memory.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems());
    assert_eq!(report.entries(), 12);
}

#[test]
fn every_write_is_refused_as_read_only() {
    let (_file, bytes, _dir) = built(3);
    let pack = Pack::from_bytes(bytes, &identity()).unwrap();
    let refusals = [
        pack.insert(&key(50), b"new").unwrap_err(),
        pack.insert_with_label(&key(0), b"replaced", "x")
            .unwrap_err(),
        pack.remove(&key(0)).unwrap_err(),
        // A batch refuses its first append, before any work.
        pack.batch().insert(&key(51), b"batched").unwrap_err(),
        pack.compact().unwrap_err(),
    ];
    for error in refusals {
        assert_eq!(error.kind(), ErrorKind::ReadOnly, "{error}");
        let message = error.to_string();
        assert!(message.contains("<embedded pack>"), "{message}");
        assert!(message.contains("read-only"), "{message}");
    }
    // Nothing changed.
    assert_eq!(pack.len().unwrap(), 3);
    assert_eq!(pack.get(&key(50)).unwrap(), None);
    assert!(pack.get(&key(0)).unwrap().is_some());
}

#[test]
fn misaligned_bytes_are_refused() {
    let (_file, bytes, _dir) = built(2);
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&bytes);
    let aligned = aligned_bytes(&shifted);
    let misaligned = aligned.slice(1..);
    assert_eq!(misaligned, bytes, "the same pack, one byte off");
    let error = Pack::from_bytes(misaligned, &identity()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("64-byte aligned"), "{error}");
    assert!(error.to_string().contains("include_pack!"), "{error}");
}

#[test]
fn truncated_bytes_are_refused_at_every_length() {
    let (file_pack, bytes, _dir) = built(6);
    let committed = bytes.len();
    let first_record = file_pack.iter().unwrap().map(|e| e.record_offset()).min();
    let first_record = first_record.unwrap() as usize;
    let classes = [
        (0, "empty"),
        (100, "inside the header"),
        (DATA_START as usize - 1, "shorter than the superblock"),
        (DATA_START as usize, "the superblock alone"),
        (first_record + 40, "inside the first record"),
        (committed - 10, "inside the index at the end"),
    ];
    for (len, class) in classes {
        let cut = aligned_bytes(&bytes[..len]);
        let error = Pack::from_bytes(cut, &identity()).expect_err(class);
        assert!(
            matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::NotAPack),
            "{class}: {error}"
        );
        assert!(error.to_string().contains("<embedded pack>"), "{error}");
    }
    // And every other length, in steps: an error, never a panic or a wrong value.
    for len in (0..committed).step_by(97) {
        let cut = aligned_bytes(&bytes[..len]);
        assert!(Pack::from_bytes(cut, &identity()).is_err(), "length {len}");
    }
    // Bytes past the committed length (an appender's unfinished tail) are ignored.
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(&[0xEE; 1000]);
    let pack = Pack::from_bytes(aligned_bytes(&longer), &identity()).unwrap();
    assert_eq!(pack.len().unwrap(), 6);
}

#[test]
fn a_changed_value_is_a_corrupt_error_never_returned() {
    let (file_pack, bytes, _dir) = built(4);
    let victim = key(3);
    let original = file_pack.get(&victim).unwrap().unwrap();
    let at = bytes
        .windows(original.len())
        .position(|w| w == &original[..])
        .unwrap();
    let mut damaged = bytes.to_vec();
    damaged[at + original.len() / 2] ^= 0x01;
    for verify in [Verify::Once, Verify::Always] {
        let pack = PackOptions::new()
            .verify(verify)
            .open_bytes(aligned_bytes(&damaged), &identity())
            .unwrap();
        for _ in 0..2 {
            let error = pack.get(&victim).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
            assert!(error.to_string().contains(&victim.to_string()), "{error}");
        }
        // The others are intact, and verify names the damaged one.
        assert_eq!(pack.get(&key(0)).unwrap(), file_pack.get(&key(0)).unwrap());
        let report = pack.verify().unwrap();
        assert_eq!(report.problems().len(), 1);
        assert_eq!(report.problems()[0].key(), Some(&victim));
    }
}

#[test]
fn another_identity_is_refused() {
    let (_file, bytes, _dir) = built(1);
    let other = PackIdentity::new().with("engine", "other");
    let error = Pack::from_bytes(bytes.clone(), &other).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IdentityMismatch, "{error}");
    let any = PackOptions::new().open_bytes_any(bytes).unwrap();
    assert_eq!(any.identity(), &identity());
}

#[test]
fn bytes_that_are_not_a_pack_are_refused() {
    let junk = aligned_bytes(&vec![0x5A; 3 * DATA_START as usize]);
    let error = Pack::from_bytes(junk, &identity()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAPack, "{error}");
}

static DEMO: &[u8] = wasmpak::include_pack!("../../examples/demo.wpk");

/// The committed demo pack and its recipe (how `examples/demo.wpk` was made): regenerate it
/// with `WASMPAK_WRITE_DEMO_PACK=examples/demo.wpk cargo test -p wasmpak --test tests --
/// pack::embedded`.
#[test]
fn the_included_demo_pack_is_aligned_and_matches_its_recipe() {
    assert_eq!(DEMO.as_ptr() as usize % 4096, 0);
    let demo_identity = PackIdentity::new().with("engine", "demo");
    let (_dir, path) = scratch();
    let recipe = Pack::create(&path, &demo_identity).unwrap();
    let mut batch = recipe.batch();
    let greeting = Key::from_bytes([1; 32]);
    let pattern = Key::from_bytes([2; 32]);
    batch
        .insert_with_label(&greeting, b"hello from the binary", "greeting")
        .unwrap();
    batch
        .insert_with_label(&pattern, &[0xA5; 300], "pattern")
        .unwrap();
    batch.commit().unwrap();
    if let Some(out) = std::env::var_os("WASMPAK_WRITE_DEMO_PACK") {
        std::fs::copy(&path, out).unwrap();
    }

    let pack = Pack::from_static(DEMO, &demo_identity).unwrap();
    let entries = |pack: &Pack| -> Vec<(Key, String, Bytes)> {
        pack.iter()
            .unwrap()
            .map(|e| {
                (
                    *e.key(),
                    e.label().to_string(),
                    pack.get(e.key()).unwrap().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(entries(&pack), entries(&recipe));
    // A `&'static` pack's values are slices of the binary itself.
    let got = pack.get(&greeting).unwrap().unwrap();
    let range = DEMO.as_ptr_range();
    assert!(range.contains(&got.as_ptr()));
}

#[test]
fn a_signed_embedded_pack_is_checked_against_its_signatures() {
    use wasmpak::SecretKey;
    let (file_pack, _, _dir) = built(3);
    let vendor = SecretKey::generate().unwrap();
    file_pack.sign(&vendor).unwrap();
    let mut raw = std::fs::read(file_pack.path()).unwrap();
    let trusting = PackOptions::new().trusted_keys([vendor.public_key()]);
    let memory = trusting
        .open_bytes(aligned_bytes(&raw), &identity())
        .unwrap();
    for n in 0..3 {
        assert_eq!(
            memory.get(&key(n)).unwrap(),
            file_pack.get(&key(n)).unwrap()
        );
    }
    // One byte of a value changed (tests/pack_signatures.rs also fixes the CRCs up): with
    // trusted keys the signed hash refuses it.
    let entry = file_pack
        .iter()
        .unwrap()
        .find(|e| *e.key() == key(1))
        .unwrap();
    raw[entry.offset() as usize] ^= 0xff;
    let forged = trusting
        .open_bytes(aligned_bytes(&raw), &identity())
        .unwrap();
    let error = forged.get(&key(1)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Untrusted, "{error}");
    assert_eq!(
        forged.get(&key(0)).unwrap(),
        file_pack.get(&key(0)).unwrap()
    );
}

#[test]
fn the_trusted_installed_path_refuses_bytes_in_memory() {
    let (_, bytes, _dir) = built(1);
    // SAFETY: never reached: the open is refused.
    let options = unsafe { PackOptions::new().trust_installed() };
    let error = options.open_bytes(bytes, &identity()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotSealed, "{error}");
}

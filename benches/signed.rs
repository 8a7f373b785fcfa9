//! Signed packs: what checking signatures costs when opening a pack, and hashing values.
//!
//! Run: `cargo bench --bench signed`. Goal: opening a 10,000-entry signed pack and checking
//! its signature (the manifest's BLAKE3 hash and the Ed25519 signature, made on the first
//! lookup) within 1 ms, on a warm page cache. Ends with a table of medians measured by
//! interleaving the variants round by round (so drift in the machine's speed hits them alike).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use wasmpak::{Durability, Key, PackIdentity, PackOptions, PublicKey, SecretKey};

fn identity() -> PackIdentity {
    PackIdentity::new()
        .with("bench", "signed")
        .with("abi", 1u32)
}

fn key(n: u64) -> Key {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Key::from_bytes(std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }))
}

/// A pack of `n` labelled 256-byte entries, signed by `signer`.
fn build(dir: &Path, n: u64, signer: &SecretKey) -> PathBuf {
    let path = dir.join(format!("{n}.wpk"));
    let pack = PackOptions::new()
        .durability(Durability::None)
        .create(&path, &identity())
        .unwrap();
    let mut batch = pack.batch();
    for i in 0..n {
        batch
            .insert_with_label(&key(i), &[i as u8; 256], &format!("module-{i:05}.wasm"))
            .unwrap();
    }
    batch.commit().unwrap();
    pack.sign(signer).unwrap();
    path
}

const SIZES: [u64; 3] = [10, 1_000, 10_000];

/// Open, then the first lookup of a key (which checks the signature chain when keys are set).
fn open_and_get(path: &Path, trusted: Option<PublicKey>, i: u64) {
    let options = match trusted {
        Some(key) => PackOptions::new().trusted_keys([key]),
        None => PackOptions::new(),
    };
    open_and_get_with(options, path, i);
}

fn open_and_get_with(options: PackOptions, path: &Path, i: u64) {
    let pack = options.open(path, &identity()).unwrap();
    black_box(pack.get(&key(i)).unwrap().unwrap());
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let signer = SecretKey::generate().unwrap();
    let public = signer.public_key();
    let mut group = c.benchmark_group("open_and_first_get");
    for n in SIZES {
        let path = build(dir.path(), n, &signer);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("unsigned_check", n), &path, |b, path| {
            b.iter(|| {
                i = (i + 7919) % n;
                open_and_get(path, None, i)
            })
        });
        group.bench_with_input(BenchmarkId::new("signature_check", n), &path, |b, path| {
            b.iter(|| {
                i = (i + 7919) % n;
                open_and_get(path, Some(public), i)
            })
        });
    }
    group.finish();

    let value: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut hashing = c.benchmark_group("hash_8MiB");
    hashing.throughput(Throughput::Bytes(value.len() as u64));
    hashing.bench_function("crc32_one_thread", |b| {
        b.iter(|| crc32fast::hash(black_box(&value)))
    });
    hashing.bench_function("blake3_one_thread", |b| {
        b.iter(|| blake3::hash(black_box(&value)))
    });
    hashing.finish();
}

/// Medians of interleaved rounds: open + first get without and with the signature check, and
/// with it on a pack opened with `allow_shared_write` (the value read into private memory and
/// hashed there: docs/FORMAT.md, section 15.1).
fn table() {
    const ROUNDS: usize = 201;
    let dir = tempfile::tempdir().unwrap();
    let signer = SecretKey::generate().unwrap();
    let public = signer.public_key();
    println!("\nopen + first get: medians of {ROUNDS} interleaved rounds");
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>12} {:>8}",
        "entries", "unsigned", "signed", "ratio", "shared", "/signed"
    );
    // Fresh options per open, as for the others: trusted keys cache the chains they judged.
    let shared_options = || {
        PackOptions::new()
            .allow_shared_write(true)
            .trusted_keys([public])
    };
    for n in SIZES {
        let path = build(dir.path(), n, &signer);
        let (mut plain, mut signed, mut shared) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS as u64 {
            let i = (round * 7919) % n;
            let start = Instant::now();
            open_and_get(&path, None, i);
            plain.push(start.elapsed());
            let start = Instant::now();
            open_and_get(&path, Some(public), i);
            signed.push(start.elapsed());
            let start = Instant::now();
            open_and_get_with(shared_options(), &path, i);
            shared.push(start.elapsed());
        }
        let median = |mut times: Vec<Duration>| -> Duration {
            times.sort();
            times[ROUNDS / 2]
        };
        let (p, s, w) = (median(plain), median(signed), median(shared));
        println!(
            "{n:>8} {:>12.1?} {:>12.1?} {:>8.2} {:>12.1?} {:>8.2}",
            p,
            s,
            s.as_secs_f64() / p.as_secs_f64(),
            w,
            w.as_secs_f64() / s.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    table();
}

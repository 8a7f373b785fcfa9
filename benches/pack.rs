//! The pack store alone: open + first lookup, lookup latency by pack size, insert throughput.
//!
//! Run: `cargo bench --bench pack`. Targets (docs/FORMAT.md design goals): open + first lookup
//! on a 100k-entry pack under 1 ms with a warm page cache; lookup cost within 2x from 10 to
//! 100k entries.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wasmpak::{Durability, Key, Pack, PackIdentity, PackOptions};

fn identity() -> PackIdentity {
    PackIdentity::new().with("bench", "pack").with("abi", 1u32)
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

/// A pack of `n` entries of 256 bytes, built in one batch.
fn build(dir: &std::path::Path, n: u64) -> std::path::PathBuf {
    let path = dir.join(format!("{n}.wpk"));
    let pack = PackOptions::new()
        .durability(Durability::None)
        .create(&path, &identity())
        .unwrap();
    let mut batch = pack.batch();
    for i in 0..n {
        batch.insert(&key(i), &[i as u8; 256]).unwrap();
    }
    batch.commit().unwrap();
    path
}

const SIZES: [u64; 4] = [10, 1_000, 10_000, 100_000];

fn open_and_first_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("open_and_first_get");
    for n in SIZES {
        let path = build(dir.path(), n);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| {
                i = (i + 7919) % n;
                let pack = Pack::open(path, &identity()).unwrap();
                black_box(pack.get(&key(i)).unwrap().unwrap());
            })
        });
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("get");
    for n in SIZES {
        let path = build(dir.path(), n);
        let pack = Pack::open(&path, &identity()).unwrap();
        for i in 0..n {
            pack.get(&key(i)).unwrap();
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(pack.get(&key(i)).unwrap().unwrap());
            })
        });
        let mut miss = 0;
        group.bench_function(BenchmarkId::new("miss", n), |b| {
            b.iter(|| {
                miss += 1;
                black_box(pack.get(&key(n + miss)).unwrap());
            })
        });
    }
    group.finish();
}

fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert");
    group.measurement_time(Duration::from_secs(5));
    let value = vec![0x5a; 64 * 1024];
    group.throughput(Throughput::Bytes(value.len() as u64));
    for (name, durability) in [("fsync", Durability::Full), ("no_fsync", Durability::None)] {
        let dir = tempfile::tempdir().unwrap();
        let pack = PackOptions::new()
            .durability(durability)
            .create(dir.path().join("insert.wpk"), &identity())
            .unwrap();
        let mut n = 0;
        group.bench_function(BenchmarkId::new("64KiB_per_commit", name), |b| {
            b.iter(|| {
                n += 1;
                pack.insert(&key(n), &value).unwrap();
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let pack = Pack::create(dir.path().join("batch.wpk"), &identity()).unwrap();
    group.throughput(Throughput::Bytes(value.len() as u64 * 100));
    let mut n = 0;
    group.bench_function("100x64KiB_per_batch_fsync", |b| {
        b.iter(|| {
            let mut batch = pack.batch();
            for _ in 0..100 {
                n += 1;
                batch.insert(&key(n), &value).unwrap();
            }
            batch.commit().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, open_and_first_get, get, insert);
criterion_main!(benches);

//! Compaction: throughput against a plain copy of the same live bytes, and what a concurrent
//! compaction does to reader latency.
//!
//! Run: `cargo bench --bench compact`. Target: compaction throughput at least 50% of a plain
//! file copy of the same live bytes.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wasmpak::{Durability, Key, Pack, PackIdentity, PackOptions};

const VALUES: u64 = 64;
const VALUE_LEN: usize = 1 << 20;

fn identity() -> PackIdentity {
    PackIdentity::new().with("bench", "compact")
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

/// A pack of 64 live 1 MiB values, half of them written twice: 64 MiB live, 32 MiB dead.
fn build(path: &Path) {
    let _ = std::fs::remove_file(path);
    let pack = PackOptions::new()
        .durability(Durability::None)
        .create(path, &identity())
        .unwrap();
    let value = vec![0x5a; VALUE_LEN];
    for round in 0..2 {
        let mut batch = pack.batch();
        for i in 0..VALUES {
            if round == 0 || i % 2 == 0 {
                batch.insert(&key(i), &value).unwrap();
            }
        }
        batch.commit().unwrap();
    }
    // A real pack is written with durable commits: start from clean pages, as it would.
    std::fs::File::open(path).unwrap().sync_all().unwrap();
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compact.wpk");
    let live = VALUES * VALUE_LEN as u64;
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(live));
    group.bench_function("compact_64MiB_live_32MiB_dead", |b| {
        b.iter_batched(
            || {
                build(&path);
                Pack::open(&path, &identity()).unwrap()
            },
            |pack| black_box(pack.compact().unwrap()),
            BatchSize::PerIteration,
        )
    });
    let source = dir.path().join("plain.bin");
    std::fs::write(&source, vec![0x5a; live as usize]).unwrap();
    let target = dir.path().join("plain-copy.bin");
    group.bench_function("plain_copy_64MiB", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_file(&target);
            },
            |()| {
                std::fs::copy(&source, &target).unwrap();
                // Compaction syncs its output before the rename; so does the baseline.
                std::fs::File::open(&target).unwrap().sync_all().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn reader_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readers.wpk");
    build(&path);
    let reader = Pack::open(&path, &identity()).unwrap();
    let mut group = c.benchmark_group("get_1MiB");
    let mut i = 0;
    group.bench_function("idle", |b| {
        b.iter(|| {
            i = (i + 1) % VALUES;
            black_box(reader.get(&key(i)).unwrap().unwrap());
        })
    });
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let compactor = Pack::open(&path, &identity()).unwrap();
        let stop = &stop;
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                compactor.compact().unwrap();
            }
        });
        group.bench_function("during_compaction", |b| {
            b.iter(|| {
                i = (i + 1) % VALUES;
                black_box(reader.get(&key(i)).unwrap().unwrap());
            })
        });
        stop.store(true, Ordering::Relaxed);
    });
    group.finish();
}

criterion_group!(benches, throughput, reader_latency);
criterion_main!(benches);

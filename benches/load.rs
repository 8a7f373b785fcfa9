//! Loading a compiled module: PackCache against every alternative, on synthetic modules from
//! about 7 KB to about 50 MB of artifact.
//!
//! Run: `cargo bench --bench load` (`WASMPAK_BENCH_SHAPES=46KB,0.9MB` for only some sizes). Each iteration uses a fresh `Engine` (wasmer keeps every
//! artifact it deserializes alive for the engine's lifetime) and, for "first load", a fresh
//! `PackCache`, so the pack is mapped anew as in a new process; the page cache is warm.
//!
//! Targets, as ratios within one run: PackCache first load (checksum included) at most 1.25x
//! the floor (`deserialize_unchecked` of bytes already in memory), at most 0.9x wasix's
//! `deserialize_from_file`, at most 0.4x `fs::read` + `deserialize` on large modules; a
//! repeated load under 2 µs. `embedded_*` load the same pack held in memory
//! (`PackCacheBuilder::embedded_pack`), as a binary that `include_pack!`s it would.
//!
//! Signed and installed packs (issue 12): *signed 1st* is a first load through a `PackCache`
//! with trusted keys (the artifact's BLAKE3 hash instead of its CRC-32, spread over the
//! cores, plus the signature chain on the pack's first lookup); goal at most 1.5x the floor
//! from 1 MB. *installed 1st* is a first load from an installed pack through
//! `trust_installed` (no hash at all); goal at most 1.05x wasix's `deserialize_from_file`.
//!
//! Besides criterion's numbers, the run ends with a ratio table measured by interleaving the
//! variants round by round (medians of 21 rounds), so that drift in the machine's speed
//! affects every variant alike. That table is what the README reports.

use std::future::Future;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group};
use wasmer::{Engine, Module};
use wasmpak::{
    FileSystemCache, ModuleCache, ModuleHash, Pack, PackCache, PackCacheBuilder, SecretKey,
};

/// The key the benchmark's packs are signed with.
fn signer() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::generate().unwrap())
}

/// Where the installed copy of the packs in `packs` goes.
fn installed_dir(packs: &Path) -> PathBuf {
    packs.with_file_name("installed")
}

/// Signs the pack in `packs` and installs it into [`installed_dir`].
fn sign_and_install(packs: &Path, engine: &Engine) {
    let path = PackCache::new(packs)
        .pack_path(engine)
        .expect("the cache has a directory");
    let pack = Pack::open_any(&path).unwrap();
    pack.sign(signer()).unwrap();
    let installed = installed_dir(packs);
    std::fs::create_dir_all(&installed).unwrap();
    pack.install_into(&installed).unwrap();
}

/// A cache that trusts the benchmark's signing key.
fn signed_cache(packs: &Path) -> PackCache {
    PackCache::builder(packs)
        .trusted_keys([signer().public_key()])
        .build()
}

/// A cache on the trusted path over the installed packs.
fn installed_cache(packs: &Path) -> PackCache {
    // SAFETY: the installed packs are written once by `sign_and_install` and never modified.
    unsafe { PackCache::builder(installed_dir(packs)).trust_installed() }.build()
}

/// One way of loading a module, timed once with fresh state.
type Variant = (&'static str, fn(&Case, &Path, &Path) -> Duration);

/// Outside a runtime our caches finish on the first poll.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("not ready on the first poll"),
    }
}

struct Case {
    name: &'static str,
    wasm: Vec<u8>,
    key: ModuleHash,
    artifact: Bytes,
    artifact_file: PathBuf,
}

/// (name, functions, ops): about 7 KB, 46 KB, 0.9 MB, 7.5 MB and 47 MB of artifact.
const SHAPES: [(&str, u32, u32); 5] = [
    ("7KB", 1, 4),
    ("46KB", 20, 100),
    ("0.9MB", 200, 250),
    ("7.5MB", 1000, 500),
    ("47MB", 4000, 2000),
];

/// Compiles each shape once and keeps the artifact under the target directory, so later runs
/// skip the (up to a minute long) compile of the largest.
fn cases(dir: &Path) -> Vec<Case> {
    let cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmpak-bench-artifacts");
    std::fs::create_dir_all(&cache_dir).unwrap();
    let engine = Engine::default();
    let identity = wasmpak::EngineIdentity::of(&engine).file_stem();
    // `WASMPAK_BENCH_SHAPES=46KB,0.9MB` runs only those sizes (the largest takes a minute to
    // compile the first time).
    let only = std::env::var("WASMPAK_BENCH_SHAPES").ok();
    SHAPES
        .iter()
        .filter(|(name, ..)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == *name))
        })
        .map(|&(name, functions, ops)| {
            let wat = wasmpak_samples::module_wat(1, functions, ops);
            let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
            let key = ModuleHash::new(&wasm);
            let cached = cache_dir.join(format!("{identity}-{key}.bin"));
            let artifact = match std::fs::read(&cached) {
                Ok(bytes) => Bytes::from(bytes),
                Err(_) => {
                    eprintln!("compiling the {name} sample once...");
                    let bytes = Module::new(&engine, &wasm).unwrap().serialize().unwrap();
                    std::fs::write(&cached, &bytes).unwrap();
                    bytes
                }
            };
            let artifact_file = dir.join(format!("{name}.bin"));
            std::fs::write(&artifact_file, &artifact).unwrap();
            Case {
                name,
                wasm,
                key,
                artifact,
                artifact_file,
            }
        })
        .collect()
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    let packs = dir.path().join("packs");
    let files = dir.path().join("files");
    {
        let engine = Engine::default();
        let pack_cache = PackCache::new(&packs);
        let file_cache = FileSystemCache::new(&files);
        for case in &cases {
            let module = FileSystemCache::load_file(&case.artifact_file, &engine).unwrap();
            ready(pack_cache.save(case.key, &engine, &module)).unwrap();
            ready(file_cache.save(case.key, &engine, &module)).unwrap();
        }
        sign_and_install(&packs, &engine);
    }

    // The same pack, held in memory as an embedded pack would be.
    let embedded = {
        let own = PackCache::new(&packs)
            .pack_path(&Engine::default())
            .unwrap();
        wasmpak::aligned_bytes(&std::fs::read(own).unwrap())
    };
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for case in &cases {
        group.bench_function(
            BenchmarkId::new("floor_deserialize_unchecked_in_memory", case.name),
            |b| {
                b.iter_batched(
                    Engine::default,
                    |engine| {
                        // SAFETY: as above: bytes from `Module::serialize` of this configuration.
                        let module = unsafe {
                            Module::deserialize_unchecked(&engine, case.artifact.clone())
                        };
                        (engine, black_box(module.unwrap()))
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        group.bench_function(BenchmarkId::new("packcache_first_load", case.name), |b| {
            b.iter_batched(
                || (Engine::default(), PackCache::new(&packs)),
                |(engine, cache)| {
                    let module = ready(cache.load(case.key, &engine)).unwrap();
                    (engine, cache, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("signed_first_load", case.name), |b| {
            b.iter_batched(
                || (Engine::default(), signed_cache(&packs)),
                |(engine, cache)| {
                    let module = ready(cache.load(case.key, &engine)).unwrap();
                    (engine, cache, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("installed_first_load", case.name), |b| {
            b.iter_batched(
                || (Engine::default(), installed_cache(&packs)),
                |(engine, cache)| {
                    let module = ready(cache.load(case.key, &engine)).unwrap();
                    (engine, cache, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(
            BenchmarkId::new("packcache_repeated_load", case.name),
            |b| {
                let engine = Engine::default();
                let cache = PackCache::new(&packs);
                ready(cache.load(case.key, &engine)).unwrap();
                b.iter(|| black_box(ready(cache.load(case.key, &engine)).unwrap()))
            },
        );
        group.bench_function(BenchmarkId::new("embedded_first_load", case.name), |b| {
            b.iter_batched(
                || {
                    let cache = PackCacheBuilder::new()
                        .embedded_pack(embedded.clone())
                        .build();
                    (Engine::default(), cache)
                },
                |(engine, cache)| {
                    let module = ready(cache.load(case.key, &engine)).unwrap();
                    (engine, cache, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("embedded_repeated_load", case.name), |b| {
            let engine = Engine::default();
            let cache = PackCacheBuilder::new()
                .embedded_pack(embedded.clone())
                .build();
            ready(cache.load(case.key, &engine)).unwrap();
            b.iter(|| black_box(ready(cache.load(case.key, &engine)).unwrap()))
        });
        group.bench_function(BenchmarkId::new("filesystemcache_load", case.name), |b| {
            b.iter_batched(
                || (Engine::default(), FileSystemCache::new(&files)),
                |(engine, cache)| {
                    let module = ready(cache.load(case.key, &engine)).unwrap();
                    (engine, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(
            BenchmarkId::new("wasix_deserialize_from_file", case.name),
            |b| {
                b.iter_batched(
                    Engine::default,
                    |engine| {
                        // SAFETY: the file holds `Module::serialize` output of this configuration.
                        let module =
                            unsafe { Module::deserialize_from_file(&engine, &case.artifact_file) };
                        (engine, black_box(module.unwrap()))
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        group.bench_function(BenchmarkId::new("read_then_deserialize", case.name), |b| {
            b.iter_batched(
                Engine::default,
                |engine| {
                    let bytes = std::fs::read(&case.artifact_file).unwrap();
                    // SAFETY: the file holds `Module::serialize` output of this configuration.
                    let module = unsafe { Module::deserialize(&engine, bytes) };
                    (engine, black_box(module.unwrap()))
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    let mut compile = c.benchmark_group("compile");
    compile.sample_size(10);
    for case in cases.iter().filter(|c| c.artifact.len() < 16 << 20) {
        compile.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter_batched(
                Engine::default,
                |engine| {
                    let module = Module::new(&engine, &case.wasm).unwrap();
                    (engine, black_box(module))
                },
                BatchSize::PerIteration,
            )
        });
    }
    compile.finish();
}

fn time_one<T>(setup: impl FnOnce() -> Engine, run: impl FnOnce(&Engine) -> T) -> Duration {
    let engine = setup();
    let start = Instant::now();
    let out = black_box(run(&engine));
    let elapsed = start.elapsed();
    drop(out);
    drop(engine);
    elapsed
}

/// A cache of `kind` over `packs` kept open in this thread across rounds, with no memo: each
/// load is the first load of an artifact in a process that has the pack open already (what an
/// edge runtime serving many modules pays per module), not counting the open itself.
fn open_cache(packs: &Path, kind: &'static str) -> PackCache {
    thread_local! {
        static CACHES: std::cell::RefCell<Vec<(PathBuf, &'static str, PackCache)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        if let Some((_, _, cache)) = caches.iter().find(|(p, k, _)| p == packs && *k == kind) {
            return cache.clone();
        }
        let cache = match kind {
            "signed" => PackCacheBuilder::new()
                .dir(packs)
                .trusted_keys([signer().public_key()])
                .memo_entries(0)
                .verify_every_load(true)
                .build(),
            // SAFETY: the installed packs are written once by `sign_and_install` and never
            // modified.
            "installed" => unsafe {
                PackCacheBuilder::new()
                    .dir(installed_dir(packs))
                    .trust_installed()
            }
            .memo_entries(0)
            .build(),
            _ => unreachable!("unknown cache kind {kind}"),
        };
        caches.push((packs.to_path_buf(), kind, cache.clone()));
        cache
    })
}

/// The own pack in `packs`, in memory and aligned, as `include_pack!` would hold it.
fn embedded_bytes(packs: &Path) -> bytes::Bytes {
    thread_local! {
        static BYTES: std::cell::RefCell<Option<(PathBuf, bytes::Bytes)>> =
            const { std::cell::RefCell::new(None) };
    }
    BYTES.with(|held| {
        let mut held = held.borrow_mut();
        if let Some((p, bytes)) = held.as_ref()
            && p == packs
        {
            return bytes.clone();
        }
        let own = PackCache::new(packs).pack_path(&Engine::default()).unwrap();
        let bytes = wasmpak::aligned_bytes(&std::fs::read(own).unwrap());
        *held = Some((packs.to_path_buf(), bytes.clone()));
        bytes
    })
}

const VARIANTS: [Variant; 11] = [
    ("floor", |case, _, _| {
        time_one(Engine::default, |engine| {
            // SAFETY: bytes from `Module::serialize` of this configuration.
            unsafe { Module::deserialize_unchecked(engine, case.artifact.clone()) }.unwrap()
        })
    }),
    ("packcache_first", |case, packs, _| {
        let cache = PackCache::new(packs);
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("packcache_open_pack", |case, packs, _| {
        // The pack is already mapped in this process; the checksum is still computed.
        thread_local! {
            static CACHES: std::cell::RefCell<Vec<(PathBuf, PackCache)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let cache = CACHES.with(|caches| {
            let mut caches = caches.borrow_mut();
            if let Some((_, cache)) = caches.iter().find(|(p, _)| p == packs) {
                return cache.clone();
            }
            let cache = PackCache::builder(packs)
                .memo_entries(0)
                .verify_every_load(true)
                .build();
            caches.push((packs.to_path_buf(), cache.clone()));
            cache
        });
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("filesystemcache", |case, _, files| {
        let cache = FileSystemCache::new(files);
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("wasix_from_file", |case, _, _| {
        time_one(Engine::default, |engine| {
            // SAFETY: the file holds `Module::serialize` output of this configuration.
            unsafe { Module::deserialize_from_file(engine, &case.artifact_file) }.unwrap()
        })
    }),
    ("read_deserialize", |case, _, _| {
        time_one(Engine::default, |engine| {
            let bytes = std::fs::read(&case.artifact_file).unwrap();
            // SAFETY: the file holds `Module::serialize` output of this configuration.
            unsafe { Module::deserialize(engine, bytes) }.unwrap()
        })
    }),
    ("signed_first", |case, packs, _| {
        let cache = signed_cache(packs);
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("installed_first", |case, packs, _| {
        let cache = installed_cache(packs);
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("signed_open_pack", |case, packs, _| {
        let cache = open_cache(packs, "signed");
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("installed_open_pack", |case, packs, _| {
        let cache = open_cache(packs, "installed");
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
    ("embedded_first", |case, packs, _| {
        let cache = PackCacheBuilder::new()
            .embedded_pack(embedded_bytes(packs))
            .build();
        time_one(Engine::default, |engine| {
            ready(cache.load(case.key, engine)).unwrap()
        })
    }),
];

/// Medians of interleaved rounds, and the ratios the targets are about.
fn ratios(dir: &Path, cases: &[Case]) {
    const ROUNDS: usize = 21;
    let packs = dir.join("packs");
    let files = dir.join("files");
    println!("\nratio table: medians of {ROUNDS} interleaved rounds, fresh engine per load");
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | {:>8} {:>8} {:>8} {:>8}",
        "module",
        "floor",
        "pack 1st",
        "pack open",
        "fs cache",
        "wasix",
        "read+de",
        "1st/flr",
        "open/flr",
        "1st/wsx",
        "1st/rd"
    );
    let mut signed_rows = Vec::new();
    for case in cases {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
        for _ in 0..ROUNDS {
            for (i, (_, run)) in VARIANTS.iter().enumerate() {
                times[i].push(run(case, &packs, &files));
            }
        }
        let median: Vec<Duration> = times
            .into_iter()
            .map(|mut t| {
                t.sort();
                t[ROUNDS / 2]
            })
            .collect();
        let r = |a: usize, b: usize| median[a].as_secs_f64() / median[b].as_secs_f64();
        println!(
            "{:>7} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} | {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            case.name,
            median[0],
            median[1],
            median[2],
            median[3],
            median[4],
            median[5],
            r(1, 0),
            r(2, 0),
            r(1, 4),
            r(1, 5)
        );
        signed_rows.push(format!(
            "{:>7} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} | {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            case.name,
            median[0],
            median[4],
            median[6],
            median[8],
            median[7],
            median[9],
            median[10],
            r(6, 0),
            r(8, 0),
            r(6, 1),
            r(7, 4),
            r(9, 4),
            r(10, 1),
        ));
    }
    println!(
        "\nsigned, installed and embedded packs (same rounds; *open*: the pack already open in the \
         process, memo off, so each load is an artifact's first)"
    );
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "module",
        "floor",
        "wasix",
        "signed 1st",
        "sgn open",
        "inst 1st",
        "inst open",
        "embed 1st",
        "sgn/flr",
        "sgo/flr",
        "sgn/1st",
        "inst/wsx",
        "ino/wsx",
        "emb/1st"
    );
    for row in signed_rows {
        println!("{row}");
    }
}

criterion_group!(benches, load);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    {
        let engine = Engine::default();
        let pack_cache = PackCache::new(dir.path().join("packs"));
        let file_cache = FileSystemCache::new(dir.path().join("files"));
        for case in &cases {
            let module = FileSystemCache::load_file(&case.artifact_file, &engine).unwrap();
            ready(pack_cache.save(case.key, &engine, &module)).unwrap();
            ready(file_cache.save(case.key, &engine, &module)).unwrap();
        }
        sign_and_install(&dir.path().join("packs"), &engine);
    }
    ratios(dir.path(), &cases);
}

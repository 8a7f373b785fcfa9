//! The workloads: cold process start (warm and cold page cache), threads, memory, disk, saves.
//! Each prints its table and returns what the summary and the chart need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use wasmer::Engine;

use crate::corpus::{self, CorpusModule};
use crate::stats::{self, Summary, Zipf, summarize};
use crate::sys;
use crate::variants::{CACHES, LOADERS, Opened, Variant};
use crate::worker::{self, Mode, Spec};

pub struct Ctx {
    pub root: PathBuf,
    pub manifest: PathBuf,
    pub corpus: Vec<CorpusModule>,
    pub zipf: Zipf,
    pub rounds: usize,
    /// Requests each worker serves (Zipf draws); its first loads are the distinct ones.
    pub draws: usize,
    pub processes: Vec<usize>,
}

impl Ctx {
    fn spec(&self, mode: Mode, variant: Variant, indices: Vec<usize>) -> Spec {
        Spec {
            mode,
            variant,
            dir: variant.dir(&self.root),
            manifest: self.manifest.clone(),
            threads: 1,
            indices,
        }
    }
}

/// Saves the whole corpus into every cache (untimed), the way each is filled in production.
pub fn populate(ctx: &Ctx) {
    let engine = Engine::default();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    for variant in [Variant::Pack, Variant::WasixFs, Variant::WasmerCache] {
        let dir = variant.dir(&ctx.root);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let mut cache = Opened::new(variant, &dir, &tokio);
        for m in &ctx.corpus {
            let module = corpus::deserialize(&engine, m);
            cache.save(tokio.handle(), &engine, m, &module);
        }
    }
}

/// First-load latencies of one workload, by (processes, variant).
pub type Latencies = BTreeMap<(usize, &'static str), Vec<Duration>>;

/// Cold process start: P fresh workers each serve `draws` Zipf requests; every first load is
/// timed. With `cold_page_cache`, every cache file is evicted before each batch.
pub fn process_start(ctx: &Ctx, cold_page_cache: bool) -> Latencies {
    let mut latencies = Latencies::new();
    let mut totals: BTreeMap<(usize, &'static str), Vec<Duration>> = BTreeMap::new();
    let mut fixed: Vec<Vec<Duration>> = Vec::new();
    let variants: Vec<Variant> = LOADERS
        .into_iter()
        .filter(|v| !(cold_page_cache && *v == Variant::Compile))
        .collect();
    for &p in &ctx.processes {
        for round in 0..ctx.rounds {
            // Interleaved: each round starts with another variant.
            let mut order = variants.clone();
            let n = order.len();
            order.rotate_left(round % n);
            for variant in order {
                if variant == Variant::Compile && (p > 1 || round > 0) {
                    // The ceiling, measured once (one process, one round): compiling needs no
                    // cache, and the largest modules take most of a minute each.
                    continue;
                }
                let dir = variant.dir(&ctx.root);
                if cold_page_cache {
                    sys::evict(&dir);
                } else {
                    warm(&dir);
                }
                let specs: Vec<Spec> = (0..p)
                    .map(|w| {
                        let seed = (p * 1000 + round * 10 + w) as u64;
                        ctx.spec(Mode::Load, variant, ctx.zipf.first_loads(ctx.draws, seed))
                    })
                    .collect();
                for report in worker::batch(&specs) {
                    if report.fixed.len() == 3 {
                        fixed.push(report.fixed.clone());
                    }
                    if let Some(stats) = &report.stats {
                        assert!(stats.contains("misses=0"), "{variant:?} compiled: {stats}");
                    }
                    let entry = latencies.entry((p, variant.name())).or_default();
                    entry.extend(report.ops.iter().map(|(_, d)| *d));
                    totals
                        .entry((p, variant.name()))
                        .or_default()
                        .push(report.ops.iter().map(|(_, d)| *d).sum());
                }
            }
        }
    }
    let title = if cold_page_cache {
        "Cold page cache: first loads after evicting every cache file"
    } else {
        "Cold process start, warm page cache: first loads of fresh worker processes"
    };
    println!("\n## {title}\n");
    let mut rows = Vec::new();
    for &p in &ctx.processes {
        let wasix = latencies.get(&(p, "wasix-fs")).map(|s| summarize(s));
        let wasmer = latencies.get(&(p, "wasmer-cache")).map(|s| summarize(s));
        for variant in &variants {
            let Some(samples) = latencies.get(&(p, variant.name())) else {
                continue;
            };
            let s = summarize(samples);
            let per_process: Vec<f64> = totals[&(p, variant.name())]
                .iter()
                .map(Duration::as_secs_f64)
                .collect();
            let ratio = |base: Option<Summary>, f: fn(&Summary) -> Duration| match base {
                Some(b) => format!("{:.2}", f(&s).as_secs_f64() / f(&b).as_secs_f64()),
                None => "-".to_string(),
            };
            rows.push(vec![
                p.to_string(),
                variant.name().to_string(),
                s.count.to_string(),
                stats::time(s.p50),
                stats::time(s.p99),
                stats::time(s.max),
                stats::time(Duration::from_secs_f64(stats::median(&per_process))),
                ratio(wasix, |s| s.p50),
                ratio(wasix, |s| s.p99),
                ratio(wasmer, |s| s.p50),
            ]);
        }
    }
    println!(
        "{}",
        stats::table(
            &[
                "P",
                "cache",
                "first loads",
                "p50",
                "p99",
                "max",
                "total per process (median)",
                "p50 / wasix",
                "p99 / wasix",
                "p50 / wasmer-cache",
            ],
            &rows
        )
    );
    if !fixed.is_empty() {
        let med = |k: usize| {
            let v: Vec<f64> = fixed.iter().map(|f| f[k].as_secs_f64()).collect();
            stats::time(Duration::from_secs_f64(stats::median(&v)))
        };
        println!(
            "Fixed costs of a fresh pack process (medians of {} workers, measured apart): engine \
             identity {}, opening the pack {}, starting a thread {}\n",
            fixed.len(),
            med(0),
            med(1),
            med(2)
        );
    }
    latencies
}

/// Reads every file under `dir` so that the page cache holds it.
fn warm(dir: &Path) {
    for path in sys::files(dir) {
        std::fs::read(path).unwrap();
    }
}

/// One process, 1 and 2 threads loading distinct modules concurrently through one cache and
/// one engine: throughput in artifact bytes per second. Twice: the whole corpus, and only the
/// modules under 1 MiB (whose checksum the pack computes on one thread; from 1 MiB it already
/// uses two, which a second loading thread then competes with).
pub fn threads(ctx: &Ctx) -> BTreeMap<&'static str, f64> {
    let all: Vec<usize> = (0..ctx.corpus.len()).collect();
    let small: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| ctx.corpus[i].artifact_len < 1 << 20)
        .collect();
    let mut scaling = BTreeMap::new();
    for (set, indices) in [("all", all), ("under 1 MiB", small)] {
        let bytes: u64 = indices.iter().map(|&i| ctx.corpus[i].artifact_len).sum();
        let mut throughput: BTreeMap<(&'static str, usize), Vec<f64>> = BTreeMap::new();
        for round in 0..ctx.rounds {
            let mut order: Vec<(Variant, usize)> =
                CACHES.iter().flat_map(|&v| [(v, 1), (v, 2)]).collect();
            let n = order.len();
            order.rotate_left(round % n);
            for (variant, threads) in order {
                warm(&variant.dir(&ctx.root));
                let mut spec = ctx.spec(Mode::Threads, variant, indices.clone());
                spec.threads = threads;
                let report = worker::batch(&[spec]).remove(0);
                throughput
                    .entry((variant.name(), threads))
                    .or_default()
                    .push(bytes as f64 / report.total.as_secs_f64());
            }
        }
        println!(
            "\n## Threads: one process loads {} modules ({set}, {}) on 1 and 2 threads\n",
            indices.len(),
            stats::bytes(bytes)
        );
        let mut rows = Vec::new();
        for variant in CACHES {
            let one = stats::median(&throughput[&(variant.name(), 1)]);
            let two = stats::median(&throughput[&(variant.name(), 2)]);
            if set == "all" {
                scaling.insert(variant.name(), two / one);
            }
            rows.push(vec![
                variant.name().to_string(),
                format!("{}/s", stats::bytes(one as u64)),
                format!("{}/s", stats::bytes(two as u64)),
                format!("{:.2}", two / one),
            ]);
        }
        println!(
            "{}",
            stats::table(&["cache", "1 thread", "2 threads", "2 / 1"], &rows)
        );
    }
    scaling
}

/// Total PSS of 8 workers that each hold their first loads; also of 8 idle workers.
pub fn memory(ctx: &Ctx) -> BTreeMap<&'static str, u64> {
    let p = 8;
    let mut totals: BTreeMap<&'static str, Vec<sys::Pss>> = BTreeMap::new();
    let mut held_bytes = 0;
    for round in 0..ctx.rounds.min(3) {
        let mut order: Vec<Option<Variant>> = CACHES.iter().copied().map(Some).collect();
        order.push(None); // idle: engine, runtime and cache object, no module
        let n = order.len();
        order.rotate_left(round % n);
        for variant in order {
            let specs: Vec<Spec> = (0..p)
                .map(|w| {
                    let draw = ctx.zipf.first_loads(ctx.draws, 7000 + w as u64);
                    match variant {
                        Some(v) => ctx.spec(Mode::Hold, v, draw),
                        None => ctx.spec(Mode::Hold, Variant::Pack, Vec::new()),
                    }
                })
                .collect();
            if round == 0 && variant == Some(Variant::Pack) {
                held_bytes = specs
                    .iter()
                    .flat_map(|s| s.indices.iter())
                    .map(|&i| ctx.corpus[i].artifact_len)
                    .sum::<u64>();
            }
            if let Some(v) = variant {
                warm(&v.dir(&ctx.root));
            }
            let mut workers: Vec<worker::Worker> =
                specs.iter().map(worker::Worker::start).collect();
            for w in &mut workers {
                w.go();
            }
            for w in &mut workers {
                w.report();
            }
            let sum =
                workers
                    .iter()
                    .map(|w| sys::pss(w.pid()))
                    .fold(sys::Pss::default(), |a, b| sys::Pss {
                        total: a.total + b.total,
                        anon: a.anon + b.anon,
                        file: a.file + b.file,
                    });
            totals
                .entry(variant.map_or("idle", Variant::name))
                .or_default()
                .push(sum);
            for w in workers {
                w.finish();
            }
        }
    }
    let med = |v: &[sys::Pss], f: fn(&sys::Pss) -> u64| {
        stats::median(&v.iter().map(|p| f(p) as f64).collect::<Vec<_>>()) as u64
    };
    let idle = med(&totals["idle"], |p| p.total);
    println!(
        "\n## Memory: total PSS of {p} workers, each holding its first loads ({} of artifacts held in all)\n",
        stats::bytes(held_bytes)
    );
    let mut rows = Vec::new();
    let mut out = BTreeMap::new();
    for name in ["pack", "shared+pack", "wasix-fs", "wasmer-cache", "idle"] {
        let v = &totals[name];
        let total = med(v, |p| p.total);
        out.insert(name, total);
        rows.push(vec![
            name.to_string(),
            stats::bytes(total),
            stats::bytes(med(v, |p| p.anon)),
            stats::bytes(med(v, |p| p.file)),
            stats::bytes(total.saturating_sub(idle)),
        ]);
    }
    println!(
        "{}",
        stats::table(
            &["cache", "PSS", "PSS anon", "PSS file", "PSS above idle"],
            &rows
        )
    );
    out
}

/// Files and bytes each cache uses for the corpus.
pub fn disk(ctx: &Ctx) {
    println!(
        "\n## Disk: the corpus of {} modules in each cache\n",
        ctx.corpus.len()
    );
    let rows: Vec<Vec<String>> = [Variant::Pack, Variant::WasixFs, Variant::WasmerCache]
        .iter()
        .map(|v| {
            let (files, apparent, allocated) = sys::disk_use(&v.dir(&ctx.root));
            vec![
                v.name().to_string(),
                files.to_string(),
                stats::bytes(apparent),
                stats::bytes(allocated),
            ]
        })
        .collect();
    println!(
        "{}",
        stats::table(&["cache", "files", "bytes", "allocated"], &rows)
    );
}

/// 8 workers save disjoint, then overlapping, parts of the corpus into an empty cache at once;
/// then every module is checked: nothing lost, nothing wrong, nothing stored twice.
pub fn saves(ctx: &Ctx) {
    let p = 8;
    let n = ctx.corpus.len();
    let mut rows = Vec::new();
    for case in ["disjoint", "overlapping"] {
        let parts: Vec<Vec<usize>> = (0..p)
            .map(|w| match case {
                "disjoint" => (w..n).step_by(p).collect(),
                _ => {
                    let mut all: Vec<usize> = (0..n).collect();
                    all.shuffle(&mut rand::rngs::StdRng::seed_from_u64(w as u64));
                    all.truncate(n / 4);
                    all
                }
            })
            .collect();
        let union: BTreeSet<usize> = parts.iter().flatten().copied().collect();
        let attempted: usize = parts.iter().map(Vec::len).sum();
        for variant in [
            Variant::Pack,
            Variant::PackNoSync,
            Variant::WasixFs,
            Variant::WasmerCache,
        ] {
            let dir = ctx.root.join(format!(
                "saves-{case}-{}",
                variant.dir(Path::new("")).display()
            ));
            let dir = if variant == Variant::PackNoSync {
                dir.with_extension("nosync")
            } else {
                dir
            };
            if dir.exists() {
                std::fs::remove_dir_all(&dir).unwrap();
            }
            std::fs::create_dir_all(&dir).unwrap();
            let specs: Vec<Spec> = parts
                .iter()
                .map(|part| {
                    let mut spec = ctx.spec(Mode::Save, variant, part.clone());
                    spec.dir = dir.clone();
                    spec
                })
                .collect();
            let reports = worker::batch(&specs);
            let wall = reports.iter().map(|r| r.total).max().unwrap_or_default();
            let each: Vec<Duration> = reports
                .iter()
                .flat_map(|r| r.ops.iter().map(|(_, d)| *d))
                .collect();
            let s = summarize(&each);
            let (lost, wrong, extra) = check_saved(ctx, variant, &dir, &union);
            rows.push(vec![
                case.to_string(),
                variant.name().to_string(),
                format!("{attempted} ({} distinct)", union.len()),
                stats::time(wall),
                stats::time(s.p50),
                stats::time(s.p99),
                lost.to_string(),
                wrong.to_string(),
                extra,
            ]);
        }
    }
    println!("\n## Saves: {p} processes saving into an empty cache at once\n");
    println!(
        "{}",
        stats::table(
            &[
                "parts",
                "cache",
                "saves",
                "wall",
                "p50 save",
                "p99 save",
                "lost",
                "wrong",
                "stored twice / stray files",
            ],
            &rows
        )
    );
}

/// (modules lost, modules whose bytes differ, what is stored beyond one copy each).
fn check_saved(
    ctx: &Ctx,
    variant: Variant,
    dir: &Path,
    union: &BTreeSet<usize>,
) -> (usize, usize, String) {
    let mut lost = 0;
    let mut wrong = 0;
    match variant {
        Variant::Pack | Variant::PackNoSync => {
            let files = sys::files(dir);
            let path = files
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "wpk"))
                .expect("a pack");
            let pack = wasmpak::Pack::open_any(path).unwrap();
            for &i in union {
                let m = &ctx.corpus[i];
                let key = wasmpak::Key::from_bytes(m.key.as_bytes().try_into().unwrap());
                match pack.get(&key).unwrap() {
                    None => lost += 1,
                    Some(bytes) => {
                        if bytes[..] != std::fs::read(&m.artifact).unwrap()[..] {
                            wrong += 1;
                        }
                    }
                }
            }
            let st = pack.stats().unwrap();
            let extra_entries = st.entries.saturating_sub(union.len() as u64);
            (
                lost,
                wrong,
                format!(
                    "{} entries, {} dead",
                    extra_entries,
                    stats::bytes(st.dead_bytes)
                ),
            )
        }
        _ => {
            let files = sys::files(dir);
            let mut expected = BTreeSet::new();
            for &i in union {
                let m = &ctx.corpus[i];
                let name = match variant {
                    Variant::WasixFs => format!("{}.bin", m.key),
                    _ => m.blake3.to_string(),
                };
                match files
                    .iter()
                    .find(|p| p.file_name().is_some_and(|f| *f == *name))
                {
                    None => lost += 1,
                    Some(path) => {
                        expected.insert(path.clone());
                        if std::fs::read(path).unwrap() != std::fs::read(&m.artifact).unwrap() {
                            wrong += 1;
                        }
                    }
                }
            }
            let stray = files.iter().filter(|f| !expected.contains(*f)).count();
            (lost, wrong, format!("{stray} stray files"))
        }
    }
}

//! The edge workload: wasmpak's `PackCache` against the caches its users would otherwise pick,
//! on one corpus, in one run, in fresh worker processes.
//!
//! ```sh
//! cargo bench --features wasix --bench edge -- --rounds 3         # about 25 minutes here
//! cargo bench --features wasix --bench edge -- --quick            # fewer rounds, a smoke test
//! cargo bench --features wasix --bench edge -- --chart docs/edge-latency.svg
//! ```
//!
//! Compared: `PackCache`, `SharedCache -> PackCache`, wasix's `FileSystemCache`, the
//! `wasmer-cache` crate's `FileSystemCache` (what `wasmer run` uses) and compiling from
//! scratch (see `variants.rs` for exactly what each does). The corpus is 60 generated modules
//! from about 5 KB to about 30 MB of artifact (`corpus.rs`), compiled once and kept under the
//! target directory.
//!
//! Workloads (`workloads.rs`), each reported with p50 / p99 / max and totals:
//! cold process start (P = 1, 2, 8 fresh workers serving Zipf-drawn requests, every first load
//! timed, process start-up not counted), the same with the page cache evicted
//! (`posix_fadvise(POSIX_FADV_DONTNEED)`), 1 and 2 threads in one process, total PSS of 8
//! workers, disk use, and 8 processes saving at once. Rounds interleave the caches so that
//! drift in the machine's speed (other builds share it) affects them alike.

mod chart;
mod corpus;
mod stats;
mod sys;
mod variants;
mod worker;
mod workloads;

use std::path::PathBuf;

use wasmer::Engine;

use crate::workloads::Ctx;

fn main() {
    if let Ok(spec) = std::env::var("EDGE_WORKER") {
        worker::main(&spec);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // `--only cold` (or warm, threads, memory, disk, saves) runs one workload.
    let only = value("--only");
    let chart_path = args
        .iter()
        .position(|a| a == "--chart")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("edge-latency.svg"));

    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let engine = Engine::default();
    let corpus = corpus::load_or_build(&engine, &target.join("wasmpak-edge-corpus"));
    let root = target.join("wasmpak-edge-run");
    std::fs::create_dir_all(&root).unwrap();
    let manifest = root.join("corpus.txt");
    worker::write_manifest(&manifest, &corpus);
    let ctx = Ctx {
        root,
        manifest,
        zipf: stats::Zipf::new(corpus.len(), 1.0, 42),
        rounds: value("--rounds")
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { 2 } else { 7 }),
        draws: 40,
        processes: vec![1, 2, 8],
        corpus,
    };

    let sizes: Vec<u64> = ctx.corpus.iter().map(|m| m.artifact_len).collect();
    println!(
        "# wasmpak edge benchmark\n\n{} modules, artifacts {} to {} (median {}, total {}); {} rounds; \
         each worker serves {} Zipf(1.0) requests; load: {}",
        sizes.len(),
        stats::bytes(*sizes.iter().min().unwrap()),
        stats::bytes(*sizes.iter().max().unwrap()),
        stats::bytes(stats::median(&sizes.iter().map(|&s| s as f64).collect::<Vec<_>>()) as u64),
        stats::bytes(sizes.iter().sum()),
        ctx.rounds,
        ctx.draws,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );

    workloads::populate(&ctx);
    if let Some(only) = &only {
        match only.as_str() {
            "warm" => drop(workloads::process_start(&ctx, false)),
            "cold" => drop(workloads::process_start(&ctx, true)),
            "threads" => drop(workloads::threads(&ctx)),
            "memory" => drop(workloads::memory(&ctx)),
            "disk" => workloads::disk(&ctx),
            "saves" => workloads::saves(&ctx),
            other => panic!("unknown workload {other}"),
        }
        return;
    }
    let warm = workloads::process_start(&ctx, false);
    let evicted_before = sys::resident_bytes(&ctx.root.join("pack"));
    sys::evict(&ctx.root.join("pack"));
    println!(
        "\n(eviction check: the pack had {} in the page cache before evicting, {} after)",
        stats::bytes(evicted_before),
        stats::bytes(sys::resident_bytes(&ctx.root.join("pack")))
    );
    let cold = workloads::process_start(&ctx, true);
    let scaling = workloads::threads(&ctx);
    let memory = workloads::memory(&ctx);
    workloads::disk(&ctx);
    workloads::saves(&ctx);

    summary(&warm, &cold, &scaling, &memory);
    let curves = |latencies: &workloads::Latencies, p: usize| -> Vec<chart::Curve> {
        latencies
            .iter()
            .filter(|((procs, _), _)| *procs == p)
            .map(|((_, name), samples)| (name.to_string(), samples.clone()))
            .collect()
    };
    chart::write(
        &chart_path,
        "First load of a module in a fresh worker process (8 workers at once)",
        &[
            ("warm page cache", curves(&warm, 8)),
            ("cold page cache (files evicted)", curves(&cold, 8)),
        ],
    );
    println!("\nchart: {}", chart_path.display());
    println!(
        "load at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

/// The issue's goals, as ratios from this run.
fn summary(
    warm: &workloads::Latencies,
    cold: &workloads::Latencies,
    scaling: &std::collections::BTreeMap<&'static str, f64>,
    memory: &std::collections::BTreeMap<&'static str, u64>,
) {
    println!("\n## Goals (ratios from this run)\n");
    let mut rows = Vec::new();
    let mut goal = |what: &str, value: f64, limit: f64, at_most: bool| {
        let met = if at_most {
            value <= limit
        } else {
            value >= limit
        };
        rows.push(vec![
            what.to_string(),
            format!("{value:.2}"),
            format!("{} {limit}", if at_most { "<=" } else { ">=" }),
            if met { "met" } else { "NOT met" }.to_string(),
        ]);
    };
    let ratio = |lat: &workloads::Latencies,
                 p: usize,
                 a: &str,
                 b: &str,
                 q: fn(&stats::Summary) -> std::time::Duration| {
        let sa = stats::summarize(&lat[&(p, a)]);
        let sb = stats::summarize(&lat[&(p, b)]);
        q(&sa).as_secs_f64() / q(&sb).as_secs_f64()
    };
    for p in [1, 8] {
        goal(
            &format!("P={p}: first load p50, pack / wasix-fs"),
            ratio(warm, p, "pack", "wasix-fs", |s| s.p50),
            1.0,
            true,
        );
        goal(
            &format!("P={p}: first load p99, pack / wasix-fs"),
            ratio(warm, p, "pack", "wasix-fs", |s| s.p99),
            1.3,
            true,
        );
        goal(
            &format!("P={p}: first load p50, pack / wasmer-cache"),
            ratio(warm, p, "pack", "wasmer-cache", |s| s.p50),
            0.8,
            true,
        );
        goal(
            &format!("P={p}: cold page cache p50, pack / wasix-fs"),
            ratio(cold, p, "pack", "wasix-fs", |s| s.p50),
            1.0,
            true,
        );
    }
    goal("2 threads / 1 thread, pack", scaling["pack"], 1.8, false);
    goal(
        "PSS of 8 workers, pack / wasmer-cache",
        memory["pack"] as f64 / memory["wasmer-cache"] as f64,
        0.6,
        true,
    );
    println!(
        "{}",
        stats::table(&["goal", "measured", "target", ""], &rows)
    );
}

//! Power loss, simulated: every commit that returned under `Durability::Full` survives byte
//! for byte, nothing uncommitted shows, and the pack always opens, whatever a power loss at
//! any point of a workload left on disk.
//!
//! A workload (creation, inserts, batches, removals, signing, compactions with and without
//! retention; installs and pulls into a second directory) runs through the library's real
//! code while the storage seam records every write, sync, mode change, rename, link and
//! removal (`workload.rs`). The trace is then replayed into a model file system that keeps
//! durable and volatile state apart per file, per mode and per directory entry, for every
//! directory the trace touches (`model.rs`). At every point of the trace, the simulator
//! enumerates what a power loss could leave: every subset of the writes not yet synced, in
//! every order the kernel may have written them back, torn at 512-byte sectors, with modes not
//! yet made durable by an `fsync` and renames and links not yet made durable by a directory
//! sync kept or lost (`crashes.rs`). Where those volatile units number at most
//! `EXHAUSTIVE_UNITS` (10, so at most 1,024 states), every whole-or-lost combination is
//! tried, plus `WASMPAK_SIM_SAMPLES / 4` random states with torn writes; past that the states
//! are *sampled*: nothing persisted, everything persisted, seven in-order prefixes, and
//! `WASMPAK_SIM_SAMPLES` (default 24) seeded random ones. Torn writes are always sampled. Each distinct result is written out
//! as real files and opened with the real `Pack::open`, checked against the contents the
//! workload recorded, its signatures judged with the workload's key, written to, and now and
//! then compacted; the copies in the second directory are opened and checked too
//! (`check.rs`).
//!
//! Bounded for the test suite; `WASMPAK_SIM_CASES=N` runs N workloads per durability mode
//! (a campaign), `WASMPAK_SIM_SAMPLES` sets the random states per crash point, and
//! `WASMPAK_SIM_SEED` replays a printed seed.

#[cfg(feature = "wasmer")]
mod cache;
mod check;
mod crashes;
mod model;
mod rng;
mod workload;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use model::ModelFs;
use rng::Rng;
use wasmpak::storage_sim::TraceOp;
use workload::Mode;

/// Crash points with at most this many volatile writes and directory changes try every subset.
const EXHAUSTIVE_UNITS: usize = 10;
/// Steps per workload.
const ACTIONS: usize = 24;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number, not {text:?}")),
        Err(_) => default,
    }
}

#[derive(Debug, Default)]
struct Figures {
    workloads: u64,
    operations: u64,
    crash_points: u64,
    exhaustive_points: u64,
    states: u64,
    images: u64,
    rolled_back: u64,
    damaged: u64,
}

fn image_hash(image: &crashes::Image) -> u64 {
    let mut hasher = DefaultHasher::new();
    image.hash(&mut hasher);
    hasher.finish()
}

/// Replays `trace` into the model and hands every distinct crash image, with the trace
/// position it was taken at, to `check`; panics with `context` on the first it refuses.
fn replay(
    trace: &[TraceOp],
    seed: u64,
    samples: usize,
    figures: &mut Figures,
    context: &dyn Fn(usize, &str) -> String,
    mut check: impl FnMut(&crashes::Image, usize, u64) -> Result<check::Verdict, String>,
) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut fs = ModelFs::default();
    let mut seen = HashSet::new();
    figures.workloads += 1;
    figures.operations += trace.len() as u64;
    for k in 0..=trace.len() {
        if k > 0 {
            fs.apply(&trace[k - 1]);
        }
        let enumerated = crashes::enumerate(&fs, &mut rng, EXHAUSTIVE_UNITS, samples);
        figures.crash_points += 1;
        figures.exhaustive_points += u64::from(enumerated.exhaustive);
        for state in &enumerated.states {
            figures.states += 1;
            let image = crashes::materialize(&fs, state);
            if !seen.insert(image_hash(&image)) {
                continue;
            }
            figures.images += 1;
            let verdict = check(&image, k, figures.images).unwrap_or_else(|e| {
                panic!(
                    "{}\n  last operation: {:?}",
                    context(k, &e),
                    k.checked_sub(1).map(|i| short(&trace[i]))
                )
            });
            figures.rolled_back += u64::from(verdict.rolled_back);
            figures.damaged += verdict.damaged as u64;
        }
    }
}

/// The seed a run starts from: `WASMPAK_SIM_SEED`, or the clock.
fn base_seed() -> u64 {
    env_number(
        "WASMPAK_SIM_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    )
}

/// Runs the workloads of one durability mode and checks every crash state.
fn simulate(mode: Mode, default_samples: u64) {
    let base_seed = base_seed();
    let cases = env_number("WASMPAK_SIM_CASES", 1);
    let samples = env_number("WASMPAK_SIM_SAMPLES", default_samples) as usize;
    println!(
        "power loss, {mode:?}: seed {base_seed} (set WASMPAK_SIM_SEED={base_seed} to replay), \
         {cases} workload(s)"
    );
    let scratch = workload::scratch_dir();
    let mut figures = Figures::default();
    for case in 0..cases {
        let seed = base_seed.wrapping_add(case);
        let recorded = workload::run(seed, mode, ACTIONS);
        let context = |k: usize, e: &str| {
            let (lo, hi) = check::window(&recorded.steps, k);
            format!(
                "{mode:?}, seed {seed}, crash at trace position {k}: {e}\n  may show steps \
                 {lo:?}..={hi}: {:?}",
                &recorded.steps[lo.unwrap_or(0)..=hi]
                    .iter()
                    .map(|s| &s.what)
                    .collect::<Vec<_>>()
            )
        };
        replay(
            &recorded.trace,
            seed,
            samples,
            &mut figures,
            &context,
            |image, k, n| check::check(scratch.path(), image, &recorded, k, n % 8 == 0),
        );
    }
    println!(
        "power loss, {mode:?}: {} workloads, {} operations recorded, {} crash points ({} \
         exhaustive), {} crash states tried, {} distinct images opened and checked, {} showed \
         an older commit than the last one that returned, {} damaged unsynced values reported, \
         0 lost durable commits",
        figures.workloads,
        figures.operations,
        figures.crash_points,
        figures.exhaustive_points,
        figures.states,
        figures.images,
        figures.rolled_back,
        figures.damaged
    );
    assert!(figures.images > 0);
}

fn short(op: &TraceOp) -> String {
    match op {
        TraceOp::Write { offset, bytes, .. } => format!("write {} bytes at {offset}", bytes.len()),
        other => format!("{other:?}"),
    }
}

#[test]
fn full_durability_loses_no_returned_commit() {
    simulate(Mode::Full, 24);
}

#[test]
fn no_durability_keeps_a_consistent_commit() {
    simulate(Mode::None, 24);
}

#[test]
fn mixed_durability() {
    simulate(Mode::Mixed, 24);
}

/// A workload's steps cover its trace in order; with `--nocapture` it prints them and the
/// trace (`WASMPAK_SIM_SEED` and `WASMPAK_SIM_MODE` pick the workload), a debugging aid.
#[test]
fn a_workload_records_steps_that_cover_its_trace() {
    let seed = env_number("WASMPAK_SIM_SEED", 1);
    let mode = match std::env::var("WASMPAK_SIM_MODE").as_deref() {
        Ok("None") => Mode::None,
        Ok("Mixed") => Mode::Mixed,
        _ => Mode::Full,
    };
    let recorded = workload::run(seed, mode, ACTIONS);
    for (i, step) in recorded.steps.iter().enumerate() {
        println!(
            "step {i}: {} [{}, {}) durable {} unsynced {}",
            step.what, step.start, step.end, step.durable, step.unsynced
        );
    }
    for (i, op) in recorded.trace.iter().enumerate() {
        println!("{i}: {}", short(op));
    }
    assert!(recorded.steps.len() > 1 && !recorded.trace.is_empty());
    let mut at = 0;
    for step in &recorded.steps {
        assert!(
            at <= step.start && step.start <= step.end && step.end <= recorded.trace.len(),
            "step {:?} [{}, {}) after trace position {at}",
            step.what,
            step.start,
            step.end
        );
        at = step.end;
    }
}

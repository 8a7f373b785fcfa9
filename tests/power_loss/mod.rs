//! Power loss, simulated: every commit that returned under `Durability::Full` survives byte
//! for byte, nothing uncommitted shows, and the pack always opens, whatever a power loss at
//! any point of a workload left on disk.
//!
//! A workload (creation, inserts, batches, removals, compactions with and without retention)
//! runs through real `Pack` handles while the storage seam records every write, sync, rename,
//! link and removal (`workload.rs`). The trace is then replayed into a model file system that
//! keeps durable and volatile state apart per file and per directory entry (`model.rs`). At
//! every point of the trace, the simulator enumerates what a power loss could leave: every
//! subset of the writes not yet synced, in every order the kernel may have written them back,
//! torn at 512-byte sectors, with renames and links not yet made durable by a directory sync
//! kept or lost (`crashes.rs`); exhaustively where that is at most `2^EXHAUSTIVE_UNITS` states,
//! else a seeded random sample. Each distinct result is written out as real files and opened
//! with the real `Pack::open`, checked against the contents the workload recorded, written to,
//! and now and then compacted (`check.rs`).
//!
//! Bounded for the test suite; `WASMPAK_SIM_CASES=N` runs N workloads per durability mode
//! (a campaign), `WASMPAK_SIM_SAMPLES` sets the random states per crash point, and
//! `WASMPAK_SIM_SEED` replays a printed seed.

mod check;
mod crashes;
mod model;
mod rng;
mod workload;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use model::ModelFs;
use rng::Rng;
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

/// Runs the workloads of one durability mode and checks every crash state.
fn simulate(mode: Mode, default_samples: u64) {
    let base_seed = env_number(
        "WASMPAK_SIM_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
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
        let context = |k: usize| format!("{mode:?}, seed {seed}, crash at trace position {k}");
        let recorded = workload::run(seed, mode, ACTIONS);
        let name = recorded.path.file_name().unwrap().to_owned();
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut fs = ModelFs::default();
        let mut seen = HashSet::new();
        figures.workloads += 1;
        figures.operations += recorded.trace.len() as u64;
        for k in 0..=recorded.trace.len() {
            if k > 0 {
                fs.apply(&recorded.trace[k - 1]);
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
                let compact = figures.images % 8 == 0;
                let verdict = check::check(
                    scratch.path(),
                    &name,
                    &image,
                    &recorded.steps,
                    k,
                    compact,
                )
                .unwrap_or_else(|e| {
                    let (lo, hi) = check::window(&recorded.steps, k);
                    panic!(
                        "{}: {e}\n  last operation: {:?}\n  may show steps {lo:?}..={hi}: {:?}",
                        context(k),
                        k.checked_sub(1).map(|i| short(&recorded.trace[i])),
                        &recorded.steps[lo.unwrap_or(0)..=hi]
                            .iter()
                            .map(|s| &s.what)
                            .collect::<Vec<_>>()
                    )
                });
                figures.rolled_back += u64::from(verdict.rolled_back);
                figures.damaged += verdict.damaged as u64;
            }
        }
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

fn short(op: &wasmpak::storage_sim::TraceOp) -> String {
    use wasmpak::storage_sim::TraceOp;
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

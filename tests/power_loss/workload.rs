//! Workloads: seeded sequences of creation, inserts, batches, removals and compactions (with
//! and without retention) through real `Pack` handles, recorded through the storage seam,
//! with the state of the pack after each step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wasmpak::storage_sim::{Recording, TraceOp};
use wasmpak::{Durability, Key, Pack, PackOptions, Retention};

use super::rng::Rng;
use crate::common::{identity, key, value};

/// Which durability the commits of a workload use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    None,
    /// Each commit picks one at random.
    Mixed,
}

/// The pack's contents: key to value.
pub type Contents = BTreeMap<Key, Vec<u8>>;

/// One step of a workload, and where its operations are in the trace.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    /// The trace positions of its first operation and one past its last.
    pub start: usize,
    pub end: usize,
    /// Whether the step is durable once it returned: creation, compaction, and commits with
    /// `Durability::Full`.
    pub durable: bool,
    /// Whether it is a commit with `Durability::None`.
    pub unsynced: bool,
    /// The contents after it.
    pub contents: Contents,
    /// The step that wrote each key's current value.
    pub written_by: BTreeMap<Key, usize>,
}

/// A recorded workload.
pub struct Workload {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub trace: Vec<TraceOp>,
    pub steps: Vec<Step>,
}

/// A scratch directory, in memory where the system has one (`/dev/shm`): the files are real,
/// and the checks' syncs cost nothing.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("wasmpak-sim-").clone();
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("a scratch directory")
}

/// The keys workloads write: few, so that writes replace and remove each other.
pub const KEYS: u64 = 8;

fn value_len(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..4 => rng.below(200) as usize + 1,
        4..8 => rng.below(2800) as usize + 200,
        _ => rng.below(17_000) as usize + 3000,
    }
}

/// Runs `actions` seeded steps in `mode` and records them.
pub fn run(seed: u64, mode: Mode, actions: usize) -> Workload {
    let mut rng = Rng::new(seed);
    let dir = scratch_dir();
    let path = dir.path().join("sim.wpk");
    let recording = Recording::start();
    let mut steps = Vec::new();
    let mut contents = Contents::new();
    let mut written_by = BTreeMap::new();
    Pack::create(&path, &identity()).expect("create the pack");
    steps.push(Step {
        what: "create".to_string(),
        start: 0,
        end: recording.len(),
        durable: true,
        unsynced: false,
        contents: contents.clone(),
        written_by: written_by.clone(),
    });
    let open = |durability| {
        PackOptions::new()
            .durability(durability)
            .open(&path, &identity())
            .expect("open the pack")
    };
    let full = open(Durability::Full);
    let none = open(Durability::None);
    for _ in 0..actions {
        let step = steps.len();
        let durable_commit = match mode {
            Mode::Full => true,
            Mode::None => false,
            Mode::Mixed => rng.below(2) == 0,
        };
        let pack = if durable_commit { &full } else { &none };
        let start = recording.len();
        let mut durable = durable_commit;
        let mut unsynced = !durable_commit;
        let what = match rng.below(20) {
            0..9 => {
                let k = key(rng.below(KEYS));
                let v = value(rng.next(), value_len(&mut rng));
                pack.insert(&k, &v).expect("insert");
                contents.insert(k, v);
                written_by.insert(k, step);
                "insert".to_string()
            }
            9..12 => {
                let k = key(rng.below(KEYS));
                pack.remove(&k).expect("remove");
                contents.remove(&k);
                written_by.remove(&k);
                "remove".to_string()
            }
            12..17 => {
                let mut batch = pack.batch();
                let n = rng.below(5) + 2;
                for _ in 0..n {
                    let k = key(rng.below(KEYS));
                    if rng.below(4) == 0 {
                        batch.remove(&k).expect("batch remove");
                        contents.remove(&k);
                        written_by.remove(&k);
                    } else {
                        let v = value(rng.next(), value_len(&mut rng));
                        batch.insert(&k, &v).expect("batch insert");
                        contents.insert(k, v);
                        written_by.insert(k, step);
                    }
                }
                batch.commit().expect("batch commit");
                format!("batch of {n}")
            }
            17..19 => {
                durable = true;
                unsynced = false;
                full.compact().expect("compact");
                "compact".to_string()
            }
            _ => {
                durable = true;
                unsynced = false;
                let retention = Retention::new().max_entries(rng.below(4) + 2);
                let report = full
                    .compact_with(&retention)
                    .expect("compact with retention");
                for k in report.evicted() {
                    contents.remove(k);
                    written_by.remove(k);
                }
                format!("compact evicting {}", report.evicted().len())
            }
        };
        let end = recording.len();
        if end == start {
            // Nothing to commit (a removal of an absent key): no commit, nothing made durable.
            durable = false;
            unsynced = false;
        }
        steps.push(Step {
            what,
            start,
            end,
            durable,
            unsynced,
            contents: contents.clone(),
            written_by: written_by.clone(),
        });
    }
    drop((full, none));
    let trace = recording.finish();
    Workload {
        _dir: dir,
        path,
        trace,
        steps,
    }
}

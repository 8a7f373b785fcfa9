//! Workloads: seeded sequences of creation, inserts, batches, removals, signing and
//! compactions (with and without retention) of a pack in one directory, and installs and
//! pulls of it into a second directory, through the library's real code, recorded through the
//! storage seam, with the state of the pack (and of the copies) after each step.
//!
//! A pull is the library part of `wasmpak pull` done in-process: the pack's latest commit
//! written in pieces to a `TempFile` in the second directory, synced, opened and verified,
//! then put in place.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use wasmpak::format::superblock::{self, DATA_START, PAGE, SLOT_LEN, SLOT_OFFSETS};
use wasmpak::fs::{FileMode, TempFile};
use wasmpak::storage_sim::{Recording, TraceOp};
use wasmpak::{Durability, Key, Pack, PackOptions, Retention, SecretKey};

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
    /// What the newest signature of the commit after this step vouches for: key to value.
    pub signed: Contents,
    /// The file this step put in place in the second directory, if any.
    pub copy: Option<Copy>,
}

/// A file an install or a pull puts in place in the second directory.
#[derive(Debug, Clone)]
pub struct Copy {
    /// Its name there.
    pub name: OsString,
    /// The pack contents it holds.
    pub contents: Contents,
    /// Whether it is an installed (sealed, read-only) pack.
    pub installed: bool,
}

/// A recorded workload.
pub struct Workload {
    /// Holds `PACK_DIR` and `COPY_DIR`.
    pub root: tempfile::TempDir,
    pub trace: Vec<TraceOp>,
    pub steps: Vec<Step>,
    /// The key the workload signs with.
    pub signer: SecretKey,
}

/// The directory of the pack, under the workload's root.
pub const PACK_DIR: &str = "pack";
/// The directory installs and pulls write to, under the workload's root.
pub const COPY_DIR: &str = "node";
/// The pack's file name.
pub const PACK_NAME: &str = "sim.wpk";
/// The name a pull puts its copy under.
pub const PULLED_NAME: &str = "pulled.wpk";

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
    let root = scratch_dir();
    for dir in [PACK_DIR, COPY_DIR] {
        std::fs::create_dir(root.path().join(dir)).expect("a workload directory");
    }
    let path = root.path().join(PACK_DIR).join(PACK_NAME);
    let copies = root.path().join(COPY_DIR);
    let signer = SecretKey::generate().expect("a signing key");
    let recording = Recording::start();
    let mut steps = Vec::new();
    let mut contents = Contents::new();
    let mut written_by = BTreeMap::new();
    let mut signed = Contents::new();
    Pack::create(&path, &identity()).expect("create the pack");
    steps.push(Step {
        what: "create".to_string(),
        start: 0,
        end: recording.len(),
        durable: true,
        unsynced: false,
        contents: contents.clone(),
        written_by: written_by.clone(),
        signed: signed.clone(),
        copy: None,
    });
    let open = |durability| {
        PackOptions::new()
            .durability(durability)
            .open(&path, &identity())
            .expect("open the pack")
    };
    let full = open(Durability::Full);
    let none = open(Durability::None);
    // Each workload signs, installs and pulls at least once: forced into its last steps if
    // the dice did not pick them.
    let (mut signed_once, mut installed_once, mut pulled_once) = (false, false, false);
    for i in 0..actions {
        let left = actions - i;
        let roll = match (signed_once, installed_once, pulled_once) {
            (false, _, _) if left <= 3 => 20,
            (_, false, _) if left <= 2 => 22,
            (_, _, false) if left <= 1 => 24,
            _ => rng.below(26),
        };
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
        let mut copy = None;
        let what = match roll {
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
            19 => {
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
            20..22 => {
                pack.sign(&signer).expect("sign");
                signed = contents.clone();
                signed_once = true;
                "sign".to_string()
            }
            22..24 => {
                (durable, unsynced) = (false, false);
                full.install_into(&copies).expect("install");
                installed_once = true;
                copy = Some(Copy {
                    name: PACK_NAME.into(),
                    contents: contents.clone(),
                    installed: true,
                });
                "install".to_string()
            }
            _ => {
                (durable, unsynced) = (false, false);
                pull(&path, &copies.join(PULLED_NAME), &mut rng);
                pulled_once = true;
                copy = Some(Copy {
                    name: PULLED_NAME.into(),
                    contents: contents.clone(),
                    installed: false,
                });
                "pull".to_string()
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
            signed: signed.clone(),
            copy,
        });
    }
    drop((full, none));
    let trace = recording.finish();
    Workload {
        root,
        trace,
        steps,
        signer,
    }
}

/// What `wasmpak pull` does with the library, in-process: the latest commit of the pack at
/// `from` (as `push` uploads it: the header page, the commit's slot in both slot pages, the
/// committed data) written in pieces to a `TempFile` beside `dest`, synced, opened and
/// verified, then put in place.
fn pull(from: &Path, dest: &Path, rng: &mut Rng) {
    let bytes = std::fs::read(from).expect("read the pack");
    let slot = |i: usize| &bytes[SLOT_OFFSETS[i] as usize..][..SLOT_LEN];
    let (_, live) = superblock::live_slot([slot(0), slot(1)], bytes.len() as u64)
        .expect("the pack's live commit");
    let mut object = superblock::superblock_with(&bytes[..PAGE as usize], &live.for_copy());
    object.extend_from_slice(&bytes[DATA_START as usize..live.committed_len as usize]);
    wasmpak::fs::remove_leftovers(dest);
    let temp = TempFile::create(dest, FileMode::Public).expect("a temporary file");
    let mut at = 0;
    while at < object.len() {
        let piece = (rng.below(3) as usize + 1) * 4096;
        let end = (at + piece).min(object.len());
        temp.write_at(&object[at..end], at as u64).expect("write");
        at = end;
    }
    temp.sync().expect("sync");
    let report = Pack::open(temp.path(), &identity())
        .and_then(|pack| pack.verify())
        .expect("open the download");
    assert!(
        report.is_ok(),
        "the download verifies: {:?}",
        report.problems()
    );
    temp.persist().expect("put the download in place");
}

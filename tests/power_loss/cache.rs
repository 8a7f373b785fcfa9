//! A `PackCache`'s directory through a power loss: saves into its own pack, merges of the
//! recency sidecar, and an unusable pack moved aside (renamed to `*.wpk.corrupt`) before a
//! new one is created. The scenario is fixed; the crash states are enumerated as for the
//! workloads. Every image must hold, at the cache's pack path, one of the states the steps
//! around the crash allow (no pack, the foreign file, or a pack holding exactly the modules of
//! a save that returned or was in flight); the set-aside file, once its rename returned; and
//! a sidecar that is whole whenever it is there. A fresh cache then loads every module the
//! pack holds, from the pack.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use wasmpak::storage_sim::Recording;
use wasmpak::{Key, ModuleCache, Pack, PackCache};

use super::check::{Verdict, materialize_under};
use super::crashes::Image;
use super::{Figures, base_seed, env_number, replay, workload};
use crate::common::modules::{assert_same_module, engine, pool};

/// What the cache's pack path may name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AtPath {
    Nothing,
    Foreign,
    /// A pack holding exactly these modules of the pool.
    Pack(BTreeSet<usize>),
}

/// One step of the scenario.
struct Step {
    what: &'static str,
    start: usize,
    end: usize,
    /// What the path may name while the step is in flight (besides the state before it).
    during: Vec<AtPath>,
    /// What it names once the step returned.
    after: AtPath,
    /// Whether the sidecar exists once the step returned.
    sidecar: bool,
    /// Whether the foreign file was moved aside once the step returned.
    set_aside: bool,
}

/// The bytes a foreign program left at the cache's pack path.
const FOREIGN: &[u8] = b"not a pack: a file some other program left at the pack's path";

/// Polls a future that never waits (a cache outside a tokio runtime does its work inline, on
/// this thread, where the recording is).
fn run<F: Future>(future: F) -> F::Output {
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Nothing));
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a cache call outside a runtime waited"),
    }
}

fn cache(dir: &Path) -> PackCache {
    PackCache::builder(dir).auto_compact(false).build()
}

fn key_of(module: usize) -> Key {
    Key::from_bytes(pool()[module].key.as_bytes()[..32].try_into().unwrap())
}

struct Recorded {
    root: tempfile::TempDir,
    trace: Vec<wasmpak::storage_sim::TraceOp>,
    steps: Vec<Step>,
    pack: PathBuf,
}

fn record() -> Recorded {
    let root = workload::scratch_dir();
    let dir = root.path().join("cache");
    std::fs::create_dir(&dir).unwrap();
    let pack = cache(&dir).pack_path(engine()).unwrap();
    let recording = Recording::start();
    let mut steps = Vec::new();
    let mut step = |what, during, after, sidecar, set_aside, action: &mut dyn FnMut()| {
        let start = recording.len();
        action();
        steps.push(Step {
            what,
            start,
            end: recording.len(),
            during,
            after,
            sidecar,
            set_aside,
        });
    };
    let modules = |m: &[usize]| AtPath::Pack(m.iter().copied().collect());
    let first = cache(&dir);
    let save = |cache: &PackCache, m: usize| {
        run(cache.save(pool()[m].key, engine(), &pool()[m].module)).unwrap();
    };
    let load_and_flush = |cache: &PackCache, m: &[usize]| {
        for &m in m {
            run(cache.load(pool()[m].key, engine())).unwrap();
        }
        cache.flush().unwrap();
    };
    step(
        "save 0 (creates the pack)",
        vec![AtPath::Nothing, modules(&[])],
        modules(&[0]),
        false,
        false,
        &mut || save(&first, 0),
    );
    step(
        "save 1",
        vec![],
        modules(&[0, 1]),
        false,
        false,
        &mut || save(&first, 1),
    );
    step(
        "load and flush (creates the sidecar)",
        vec![],
        modules(&[0, 1]),
        true,
        false,
        &mut || load_and_flush(&first, &[0]),
    );
    step(
        "load and flush (replaces the sidecar)",
        vec![],
        modules(&[0, 1]),
        true,
        false,
        &mut || load_and_flush(&first, &[1, 0]),
    );
    step(
        "a foreign file replaces the pack",
        vec![],
        AtPath::Foreign,
        true,
        false,
        &mut || wasmpak::fs::write_file(&pack, FOREIGN, wasmpak::fs::FileMode::Public).unwrap(),
    );
    let second = cache(&dir);
    step(
        "save 2 (sets the foreign file aside, creates a pack)",
        vec![AtPath::Nothing, modules(&[])],
        modules(&[2]),
        true,
        true,
        &mut || save(&second, 2),
    );
    step(
        "load and flush",
        vec![],
        modules(&[2]),
        true,
        true,
        &mut || load_and_flush(&second, &[2]),
    );
    drop((first, second));
    let trace = recording.finish();
    Recorded {
        root,
        trace,
        steps,
        pack,
    }
}

/// What the pack path names in the materialized directory.
fn at_path(path: &Path) -> Result<AtPath, String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(AtPath::Nothing);
    };
    if bytes == FOREIGN {
        return Ok(AtPath::Foreign);
    }
    let pack = Pack::open_any(path).map_err(|e| format!("the pack does not open: {e}"))?;
    let mut held = BTreeSet::new();
    for key in pack.keys().map_err(|e| e.to_string())? {
        let m = (0..pool().len())
            .find(|&m| key_of(m) == key)
            .ok_or_else(|| format!("the pack holds {key}, which no save wrote"))?;
        let value = pack.get(&key).map_err(|e| e.to_string())?.unwrap();
        if value[..] != pool()[m].serialized[..] {
            return Err(format!("module {m} is not the module saved"));
        }
        held.insert(m);
    }
    Ok(AtPath::Pack(held))
}

fn check(recorded: &Recorded, scratch: &Path, image: &Image, k: usize) -> Result<(), String> {
    materialize_under(scratch, image, recorded.root.path(), &["cache"])?;
    let relative = recorded.pack.strip_prefix(recorded.root.path()).unwrap();
    let pack = scratch.join(relative);
    let returned = recorded.steps.iter().rposition(|s| s.end <= k);
    let in_flight = recorded.steps.iter().find(|s| s.start < k && k < s.end);
    let mut allowed = vec![returned.map_or(AtPath::Nothing, |i| recorded.steps[i].after.clone())];
    if let Some(step) = in_flight {
        allowed.extend(step.during.iter().cloned());
        allowed.push(step.after.clone());
    }
    let found = at_path(&pack)?;
    if !allowed.contains(&found) {
        return Err(format!(
            "the pack path holds {found:?}; allowed: {allowed:?}"
        ));
    }
    let last = returned.map(|i| &recorded.steps[i]);
    let aside = pack.with_extension("wpk.corrupt");
    match std::fs::read(&aside) {
        Ok(bytes) if bytes != FOREIGN => return Err("the set-aside file changed".to_string()),
        Err(_) if last.is_some_and(|s| s.set_aside) => {
            return Err("the set-aside file is gone, though its rename returned".to_string());
        }
        _ => {}
    }
    let mut sidecar = pack.as_os_str().to_owned();
    sidecar.push(".recency");
    match std::fs::read(&sidecar) {
        Ok(bytes) => {
            wasmpak::format::recency::decode(&bytes)
                .map_err(|e| format!("the recency sidecar is torn: {e}"))?;
        }
        Err(_) if last.is_some_and(|s| s.sidecar) => {
            return Err("the recency sidecar is gone, though its flush returned".to_string());
        }
        Err(_) => {}
    }
    // A fresh cache finds what the pack holds, from the pack.
    if let AtPath::Pack(held) = &found {
        let fresh = cache(&scratch.join("cache"));
        for &m in held {
            let loaded = run(fresh.load(pool()[m].key, engine()))
                .map_err(|e| format!("module {m} does not load: {e}"))?;
            assert_same_module(&loaded, &pool()[m]);
        }
        if fresh.stats().hits != held.len() as u64 {
            return Err(format!("{:?}", fresh.stats()));
        }
    }
    Ok(())
}

#[test]
fn a_cache_directory_keeps_its_saves_sidecar_and_set_aside_file() {
    let seed = base_seed();
    let samples = env_number("WASMPAK_SIM_SAMPLES", 24) as usize;
    println!("power loss, cache: seed {seed} (set WASMPAK_SIM_SEED={seed} to replay)");
    pool();
    let recorded = record();
    let scratch = workload::scratch_dir();
    let mut figures = Figures::default();
    let context = |k: usize, e: &str| {
        let step = recorded.steps.iter().find(|s| s.start < k && k <= s.end);
        format!(
            "cache, seed {seed}, crash at trace position {k} ({:?}): {e}",
            step.map(|s| s.what)
        )
    };
    replay(
        &recorded.trace,
        seed,
        samples,
        &mut figures,
        &context,
        |image, k, _| check(&recorded, scratch.path(), image, k).map(|()| Verdict::default()),
    );
    println!(
        "power loss, cache: {} operations recorded, {} crash points ({} exhaustive), {} crash \
         states tried, {} distinct images opened and checked",
        figures.operations,
        figures.crash_points,
        figures.exhaustive_points,
        figures.states,
        figures.images
    );
    assert!(figures.images > recorded.steps.len() as u64);
}

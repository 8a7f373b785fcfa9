//! Opening what a simulated power loss left, with the real `Pack::open`, and judging it: the
//! pack opens, it holds exactly the contents after one step between the last durable step
//! that returned and the last step that began, byte for byte (values written by unsynced
//! commits since the last durable step may instead fail their checksum), and it takes the
//! next write.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use wasmpak::{ErrorKind, Key, Pack, PackOptions, Verify};

use super::crashes::Image;
use super::workload::{Contents, KEYS, Step};
use crate::common::{identity, key, value};

/// What a crash image turned out to hold.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Whether that is an older step than the last one that returned (unsynced commits lost).
    pub rolled_back: bool,
    /// Values that failed their checksum (written by unsynced commits).
    pub damaged: usize,
}

/// What a pack showed: for each key, its value, or that it failed its checksum.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Value(Vec<u8>),
    Damaged,
}

/// The steps a crash at trace position `k` may show: from the last durable step that
/// returned to the last step that began.
pub fn window(steps: &[Step], k: usize) -> (Option<usize>, usize) {
    let lo = steps.iter().rposition(|s| s.durable && s.end <= k);
    let hi = steps
        .iter()
        .rposition(|s| s.start < k || s.end <= k)
        .unwrap_or(0);
    (lo, hi)
}

/// The keys a pack lists, and what reading each key of interest gave.
type Observed = (Vec<Key>, Vec<(Key, Seen)>);

fn observe(pack: &Pack, universe: &BTreeSet<Key>) -> Result<Observed, String> {
    let keys = pack.keys().map_err(|e| format!("keys failed: {e}"))?;
    let mut seen = Vec::new();
    for k in universe.iter().chain(&keys) {
        match pack.get(k) {
            Ok(Some(v)) => seen.push((*k, Seen::Value(v.to_vec()))),
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => seen.push((*k, Seen::Damaged)),
            Err(e) => return Err(format!("get {k} failed: {e}")),
        }
    }
    seen.sort_by_key(|(k, _)| *k);
    seen.dedup_by_key(|(k, _)| *k);
    Ok((keys, seen))
}

/// Whether what was seen is step `j`'s contents, damage allowed where `damage_ok` says.
fn matches(
    keys: &[Key],
    seen: &[(Key, Seen)],
    contents: &Contents,
    damage_ok: &dyn Fn(&Key) -> bool,
) -> bool {
    keys.iter().eq(contents.keys())
        && seen.len() == contents.len()
        && seen.iter().all(|(k, s)| match (s, contents.get(k)) {
            (Seen::Value(v), Some(want)) => v == want,
            (Seen::Damaged, Some(_)) => damage_ok(k),
            (_, None) => false,
        })
}

/// How what was seen differs from step `j`'s contents, for a failure message.
fn describe_difference(
    keys: &[Key],
    seen: &[(Key, Seen)],
    step: &Step,
    j: usize,
    damage_ok: &dyn Fn(&Key) -> bool,
) -> String {
    let read = |k: &Key| seen.iter().find(|(s, _)| s == k).map(|(_, v)| v);
    let all: BTreeSet<&Key> = step.contents.keys().chain(keys).collect();
    let differing: Vec<String> = all
        .into_iter()
        .filter(|k| match (read(k), step.contents.get(*k)) {
            (Some(Seen::Value(v)), Some(want)) => v != want,
            (Some(Seen::Damaged), Some(_)) => !damage_ok(k),
            (None, None) => false,
            _ => true,
        })
        .map(|k| {
            let got = read(k).map(|v| match v {
                Seen::Value(v) => format!("{} bytes", v.len()),
                Seen::Damaged => "damaged".to_string(),
            });
            format!(
                "{k}: read {got:?}, listed {}, step wrote {:?} bytes (at step {:?})",
                keys.contains(k),
                step.contents.get(k).map(Vec::len),
                step.written_by.get(k)
            )
        })
        .collect();
    format!(
        "step {j} ({}): {} keys, differing: [{}]",
        step.what,
        step.contents.len(),
        differing.join("; ")
    )
}

/// Checks the image of a crash at trace position `k`, materialized in `dir` with the pack
/// named `name`; then writes to it, and if `compact`, compacts it.
pub fn check(
    dir: &Path,
    name: &OsStr,
    image: &Image,
    steps: &[Step],
    k: usize,
    compact: bool,
) -> Result<Verdict, String> {
    let (lo, hi) = window(steps, k);
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        std::fs::remove_file(entry.map_err(|e| e.to_string())?.path())
            .map_err(|e| e.to_string())?;
    }
    for (file, bytes) in image {
        std::fs::write(dir.join(file), bytes).map_err(|e| e.to_string())?;
    }
    let path = dir.join(name);
    if !image.contains_key(name) {
        return match lo {
            None => Ok(Verdict::default()),
            Some(lo) => Err(format!(
                "the pack is gone, though step {lo} ({}) returned",
                steps[lo].what
            )),
        };
    }
    let open = || {
        PackOptions::new()
            .verify(Verify::Always)
            .open(&path, &identity())
    };
    let pack = open().map_err(|e| format!("the pack does not open: {e}"))?;
    let universe: BTreeSet<Key> = (0..KEYS).map(key).collect();
    let (keys, seen) = observe(&pack, &universe)?;
    let floor = lo.unwrap_or(0);
    let damage_ok = |j: usize| {
        move |k: &Key| {
            steps[j]
                .written_by
                .get(k)
                .is_some_and(|&w| steps[w].unsynced && lo.is_none_or(|lo| w > lo))
        }
    };
    let j = (floor..=hi)
        .rev()
        .find(|&j| matches(&keys, &seen, &steps[j].contents, &damage_ok(j)))
        .ok_or_else(|| {
            let candidates: Vec<String> = (floor..=hi)
                .map(|j| describe_difference(&keys, &seen, &steps[j], j, &damage_ok(j)))
                .collect();
            format!(
                "the pack holds none of the states it may: it lists {} keys, {} damaged; \
                 candidates: {}",
                keys.len(),
                seen.iter().filter(|(_, s)| *s == Seen::Damaged).count(),
                candidates.join(", ")
            )
        })?;
    let damaged: Vec<Key> = seen
        .iter()
        .filter(|(_, s)| *s == Seen::Damaged)
        .map(|(k, _)| *k)
        .collect();
    let returned = steps.iter().rposition(|s| s.end <= k).unwrap_or(0);
    let verdict = Verdict {
        rolled_back: j < returned,
        damaged: damaged.len(),
    };
    drop(pack);

    // The next writer finds the crashed pack and writes a durable commit over it.
    let probe = key(1000 + k as u64);
    let probe_value = value(k as u64, 700);
    let writer = Pack::open(&path, &identity()).map_err(|e| format!("reopen: {e}"))?;
    writer
        .insert(&probe, &probe_value)
        .map_err(|e| format!("the next write failed: {e}"))?;
    drop(writer);
    let mut after = steps[j].contents.clone();
    after.insert(probe, probe_value);
    let pack = open().map_err(|e| format!("after the next write, the pack does not open: {e}"))?;
    let (keys, seen) = observe(&pack, &universe)?;
    let written = |k: &Key| damaged.contains(k);
    if !matches(&keys, &seen, &after, &written) {
        return Err(format!(
            "after the next write the pack no longer holds step {j}'s contents and the write"
        ));
    }
    if compact {
        let report = pack
            .compact()
            .map_err(|e| format!("compaction after the crash failed: {e}"))?;
        // Compaction drops what failed its checksum, and may drop more of what unsynced
        // commits wrote: a value whose record header is torn reads fine (the index entry and
        // the payload check out) but cannot be copied as a record.
        let (keys, seen) = observe(&pack, &universe)?;
        let dropped: Vec<Key> = after
            .keys()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        if let Some(k) = dropped.iter().find(|k| !damage_ok(j)(k)) {
            return Err(format!(
                "compaction dropped {k}, which a durable commit wrote"
            ));
        }
        if damaged.iter().any(|k| !dropped.contains(k))
            || report.dropped_unreadable() != dropped.len() as u64
        {
            return Err(format!(
                "compaction dropped {} entries and reported {} unreadable; {} were damaged",
                dropped.len(),
                report.dropped_unreadable(),
                damaged.len()
            ));
        }
        for k in &dropped {
            after.remove(k);
        }
        if !matches(&keys, &seen, &after, &|_| false) {
            return Err(format!(
                "after compaction the pack does not hold step {j}'s intact contents"
            ));
        }
        let report = pack.verify().map_err(|e| e.to_string())?;
        if !report.is_ok() {
            return Err(format!("after compaction: {:?}", report.problems()));
        }
    }
    Ok(verdict)
}

//! Opening what a simulated power loss left, with the real `Pack::open`, and judging it: the
//! pack opens, it holds exactly the contents after one step between the last durable step
//! that returned and the last step that began, byte for byte (values written by unsynced
//! commits since the last durable step may instead fail their checksum), its signatures vouch
//! for exactly what that step's newest signature listed, and it takes the next write. In the
//! second directory, an installed or pulled copy is absent only if no install (pull) returned,
//! and otherwise whole: the contents of the last one that returned or of the one in flight,
//! an install sealed and read-only.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use wasmpak::{ErrorKind, Key, Pack, PackOptions, Verify};

use super::crashes::Image;
use super::workload::{COPY_DIR, Contents, KEYS, PACK_DIR, PACK_NAME, Step, Workload};
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

/// Writes `image`, the files a crash left of a workload whose root is `root`, under `scratch`
/// (in place of that root, with the directories `dirs`), with their modes.
pub fn materialize_under(
    scratch: &Path,
    image: &Image,
    root: &Path,
    dirs: &[&str],
) -> Result<(), String> {
    for entry in std::fs::read_dir(scratch).map_err(|e| e.to_string())? {
        std::fs::remove_dir_all(entry.map_err(|e| e.to_string())?.path())
            .map_err(|e| e.to_string())?;
    }
    for dir in dirs {
        std::fs::create_dir(scratch.join(dir)).map_err(|e| e.to_string())?;
    }
    for (path, file) in image {
        let relative = path
            .strip_prefix(root)
            .map_err(|_| format!("{} is outside the workload", path.display()))?;
        let at = scratch.join(relative);
        std::fs::write(&at, &file.bytes).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(file.mode))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks the image of a crash at trace position `k` of `workload`, materialized under
/// `scratch`: the copies in the second directory, then the pack, its signatures, and a write
/// to it (and if `compact`, a compaction).
pub fn check(
    scratch: &Path,
    image: &Image,
    workload: &Workload,
    k: usize,
    compact: bool,
) -> Result<Verdict, String> {
    materialize_under(scratch, image, workload.root.path(), &[PACK_DIR, COPY_DIR])?;
    check_copies(&scratch.join(COPY_DIR), &workload.steps, k)?;
    check_pack(
        &scratch.join(PACK_DIR).join(PACK_NAME),
        workload,
        k,
        compact,
    )
}

/// The installed and pulled copies in `dir`.
fn check_copies(dir: &Path, steps: &[Step], k: usize) -> Result<(), String> {
    let names: BTreeSet<_> = steps
        .iter()
        .filter_map(|s| s.copy.as_ref())
        .map(|c| &c.name)
        .collect();
    for name in names {
        let made = |s: &&Step| s.copy.as_ref().is_some_and(|c| &c.name == name);
        let returned = steps.iter().filter(made).rfind(|s| s.end <= k);
        let in_flight = steps.iter().filter(made).find(|s| s.start < k && k < s.end);
        let path = dir.join(name);
        if !path.exists() {
            match returned {
                None => continue,
                Some(step) => {
                    return Err(format!(
                        "{} is gone, though the {} at trace position {} returned",
                        path.display(),
                        step.what,
                        step.end
                    ));
                }
            }
        }
        let copy = |s: &Step| s.copy.clone().expect("a step that made a copy");
        let allowed: Vec<_> = returned.into_iter().chain(in_flight).map(copy).collect();
        let installed = allowed.iter().any(|c| c.installed);
        let pack = PackOptions::new()
            .verify(Verify::Always)
            .open(&path, &identity())
            .map_err(|e| format!("{} does not open: {e}", path.display()))?;
        let mode = std::fs::metadata(&path)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if installed && (!pack.is_sealed().map_err(|e| e.to_string())? || mode & 0o777 != 0o444) {
            return Err(format!(
                "{} is not sealed read-only (mode {:o})",
                path.display(),
                mode & 0o7777
            ));
        }
        if mode & 0o022 != 0 {
            return Err(format!(
                "{} is writable by others: {mode:o}",
                path.display()
            ));
        }
        let keys = pack.keys().map_err(|e| e.to_string())?;
        let holds = |contents: &Contents| {
            keys.iter().eq(contents.keys())
                && contents.iter().all(|(k, v)| {
                    pack.get(k)
                        .ok()
                        .flatten()
                        .is_some_and(|got| got[..] == v[..])
                })
        };
        if !allowed.iter().any(|c| holds(&c.contents)) {
            return Err(format!(
                "{} holds none of the copies that may be there ({} keys)",
                path.display(),
                keys.len()
            ));
        }
    }
    Ok(())
}

/// Checks the pack at `path` as a crash at trace position `k` of `workload` left it.
fn check_pack(
    path: &Path,
    workload: &Workload,
    k: usize,
    compact: bool,
) -> Result<Verdict, String> {
    let steps = &workload.steps;
    let (lo, hi) = window(steps, k);
    if !path.exists() {
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
            .open(path, &identity())
    };
    let pack = open().map_err(|e| format!("the pack does not open: {e}"))?;
    // A power loss loses unsynced commits, never a synced one's index: falling back from a
    // damaged synced commit (docs/FORMAT.md, section 4.4) is for media damage alone.
    if let Some(lost) = pack.lost_commit().map_err(|e| e.to_string())? {
        return Err(format!("the pack opens degraded: {lost}"));
    }
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
    let candidates: Vec<usize> = (floor..=hi)
        .rev()
        .filter(|&j| matches(&keys, &seen, &steps[j].contents, &damage_ok(j)))
        .collect();
    // Steps that only sign hold the same contents as the one before: the signatures tell them
    // apart.
    let mut refusal = None;
    let j = candidates.iter().copied().find(|&j| {
        match check_signatures(path, workload, &steps[j], &damage_ok(j)) {
            Ok(()) => true,
            Err(e) => {
                refusal.get_or_insert(format!("at step {j} ({}): {e}", steps[j].what));
                false
            }
        }
    });
    let j = match (j, refusal) {
        (Some(j), _) => j,
        (None, Some(refusal)) => return Err(refusal),
        (None, None) => {
            let candidates: Vec<String> = (floor..=hi)
                .map(|j| describe_difference(&keys, &seen, &steps[j], j, &damage_ok(j)))
                .collect();
            return Err(format!(
                "the pack holds none of the states it may: it lists {} keys, {} damaged; \
                 candidates: {}",
                keys.len(),
                seen.iter().filter(|(_, s)| *s == Seen::Damaged).count(),
                candidates.join(", ")
            ));
        }
    };
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
    let writer = Pack::open(path, &identity()).map_err(|e| format!("reopen: {e}"))?;
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

/// With the workload's key trusted, every value the step's newest signature listed with the
/// bytes the pack holds loads (the chain survived whole), and nothing else does: a chain never
/// vouches for bytes its signer did not sign.
fn check_signatures(
    path: &Path,
    workload: &Workload,
    step: &Step,
    damage_ok: &dyn Fn(&Key) -> bool,
) -> Result<(), String> {
    let pack = PackOptions::new()
        .trusted_keys([workload.signer.public_key()])
        .open(path, &identity())
        .map_err(|e| format!("with trusted keys, the pack does not open: {e}"))?;
    for (k, v) in &step.contents {
        let signed = step.signed.get(k) == Some(v);
        match pack.get(k) {
            Ok(Some(got)) if signed && got[..] == v[..] => {}
            Ok(Some(_)) => {
                return Err(format!(
                    "{k} loads with trusted keys, though not signed as it is"
                ));
            }
            Err(e)
                if damage_ok(k)
                    && matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Untrusted) => {}
            Err(e) if !signed && e.kind() == ErrorKind::Untrusted => {}
            other => {
                return Err(format!(
                    "{k} ({}signed): {:?}",
                    if signed { "" } else { "not " },
                    other.map(|v| v.map(|v| v.len()))
                ));
            }
        }
    }
    Ok(())
}

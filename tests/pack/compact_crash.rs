//! Killing a compaction at any point loses nothing: the pack at the path is always complete.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::common::{Victim, child, env_path, identity, key, played, scratch, value};
use wasmpak::{Key, Pack};

fn populated(path: &std::path::Path) -> BTreeMap<Key, Vec<u8>> {
    let pack = Pack::create(path, &identity()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..30 {
        let v = value(i, 4000 + 100 * i as usize);
        pack.insert(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    for i in 0..10 {
        pack.remove(&key(i)).unwrap();
        model.remove(&key(i));
    }
    model
}

fn assert_exactly(path: &std::path::Path, model: &BTreeMap<Key, Vec<u8>>, context: &str) {
    let pack = Pack::open(path, &identity()).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(
        pack.keys().unwrap(),
        model.keys().copied().collect::<Vec<_>>(),
        "{context}"
    );
    for (k, v) in model {
        assert_eq!(pack.get(k).unwrap().as_deref(), Some(&v[..]), "{context}");
    }
    assert!(pack.verify().unwrap().is_ok(), "{context}");
}

fn temporaries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count()
}

const ITERATIONS: u32 = 30;
/// Kills that must land in the middle of a compaction for the run to count: nearly all do (the
/// child does little else once it has started its first), so a run with fewer did not test
/// what it claims.
const MIN_MID_COMPACTION: u32 = ITERATIONS / 2;

/// The child: compacts the pack `WASMPAK_TEST_ROUNDS` times (default once), saying on stdout
/// when each compaction starts and when it returned.
fn compact() {
    let path = env_path("WASMPAK_TEST_PACK");
    let pack = Pack::open(&path, &identity()).unwrap();
    let rounds: u32 = std::env::var("WASMPAK_TEST_ROUNDS").map_or(1, |r| r.parse().unwrap());
    let mut out = std::io::stdout().lock();
    for round in 0..rounds {
        writeln!(out, "compacting {round}").unwrap();
        out.flush().unwrap();
        pack.compact().unwrap();
        writeln!(out, "compacted {round}").unwrap();
        out.flush().unwrap();
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn crash_at_each_compaction_step() {
    use std::os::unix::process::ExitStatusExt;
    if played(&[("compact", compact)]) {
        return;
    }
    for step in [
        "compact:before-write",
        "compact:before-rename",
        "compact:after-rename",
    ] {
        let (dir, path) = scratch();
        let mut model = populated(&path);
        let watcher = Pack::open(&path, &identity()).unwrap();
        let output = child("compact")
            .env("WASMPAK_TEST_PACK", &path)
            .env("WASMPAK_CRASH_AT", step)
            .output()
            .unwrap();
        // The crash point aborts the process: any other end (a panic, an error, a clean exit
        // because the step was never reached) is a failure.
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGABRT),
            "{step}: the child should have aborted there, and ended with {}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("compacting 0") && !stdout.contains("compacted 0"),
            "{step}: the child died inside its compaction:\n{stdout}"
        );
        assert_exactly(&path, &model, step);
        if step == "compact:before-rename" {
            assert_eq!(
                temporaries(dir.path()),
                1,
                "{step}: the torn new file is left behind"
            );
        }
        // A handle opened before the crash still reads, and its writes land in the pack at
        // the path even though the crashed compaction never marked the old file superseded.
        for (k, v) in &model {
            assert_eq!(watcher.get(k).unwrap().as_deref(), Some(&v[..]), "{step}");
        }
        watcher.insert(&key(99), b"after the crash").unwrap();
        model.insert(key(99), b"after the crash".to_vec());
        assert_exactly(&path, &model, step);
        // The next compaction cleans up.
        Pack::open(&path, &identity()).unwrap().compact().unwrap();
        assert_eq!(temporaries(dir.path()), 0, "{step}");
        assert_exactly(&path, &model, step);
    }
}

#[test]
fn kill_during_compaction_at_random_points() {
    if played(&[("compact", compact)]) {
        return;
    }
    let (dir, path) = scratch();
    let model = populated(&path);
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut mid_compaction = 0;
    for iteration in 0..ITERATIONS {
        let mut compactor = Victim::start(
            child("compact")
                .env("WASMPAK_TEST_PACK", &path)
                .env("WASMPAK_TEST_ROUNDS", "1000"),
        );
        // Once it has started compacting, kill it at a random moment.
        compactor.read_until(|lines| lines.contains("compacting 0\n"));
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_micros(state % 40_000));
        // Killed while compacting, not dead of its own failure before, nor done.
        let complete = compactor.kill(&format!("iteration {iteration}"));
        // Where the kill landed: the last complete line says a compaction had started and not
        // returned.
        let last = complete
            .lines()
            .rfind(|l| l.starts_with("compact"))
            .unwrap_or("");
        if last.starts_with("compacting ") {
            mid_compaction += 1;
        }
        assert_exactly(&path, &model, &format!("iteration {iteration}"));
    }
    Pack::open(&path, &identity()).unwrap().compact().unwrap();
    assert_eq!(temporaries(dir.path()), 0);
    println!(
        "{mid_compaction} of {ITERATIONS} compactors were killed in the middle of a compaction"
    );
    assert!(
        mid_compaction >= MIN_MID_COMPACTION,
        "only {mid_compaction} of {ITERATIONS} kills landed in the middle of a compaction"
    );
}

//! Killing a compaction at any point loses nothing: the pack at the path is always complete.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{child, identity, key, scratch, value};
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

#[cfg(feature = "fault-injection")]
#[test]
fn crash_at_each_compaction_step() {
    for step in [
        "compact:before-write",
        "compact:before-rename",
        "compact:after-rename",
    ] {
        let (dir, path) = scratch();
        let mut model = populated(&path);
        let watcher = Pack::open(&path, &identity()).unwrap();
        let status = child("child_compact")
            .env("WASMPAK_TEST_PACK", &path)
            .env("WASMPAK_CRASH_AT", step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{step}: the child should have died");
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
#[ignore = "entry point for a child process"]
fn child_compact() {
    let path: std::path::PathBuf = std::env::var_os("WASMPAK_TEST_PACK").unwrap().into();
    let pack = Pack::open(&path, &identity()).unwrap();
    let rounds: u32 = std::env::var("WASMPAK_TEST_ROUNDS").map_or(1, |r| r.parse().unwrap());
    for _ in 0..rounds {
        pack.compact().unwrap();
    }
}

#[test]
fn kill_during_compaction_at_random_points() {
    let (dir, path) = scratch();
    let model = populated(&path);
    let mut state = 0x853c_49e6_748f_ea9bu64;
    for iteration in 0..30 {
        let mut compactor = child("child_compact")
            .env("WASMPAK_TEST_PACK", &path)
            .env("WASMPAK_TEST_ROUNDS", "1000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_micros(state % 40_000));
        compactor.kill().unwrap();
        compactor.wait().unwrap();
        assert_exactly(&path, &model, &format!("iteration {iteration}"));
    }
    Pack::open(&path, &identity()).unwrap().compact().unwrap();
    assert_eq!(temporaries(dir.path()), 0);
}

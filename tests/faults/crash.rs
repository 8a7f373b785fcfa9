//! Writers killed with SIGKILL at random points: every commit that returned survives
//! byte-identical, the commit in flight is there whole or not at all, nothing else appears,
//! the pack verifies clean and takes the next write.
//!
//! The writer is a child process (this test binary, re-run) that commits units (single
//! inserts and batches), printing each unit's number on its own line once its commit returned.
//! The parent reads a random number of those lines, waits a random moment and kills it. The
//! random choices come from a seed printed at the start; set `WASMPAK_TEST_SEED` to replay
//! them (the kill points also depend on timing, so a replay is close, not exact). The test
//! also checks that it tested something: enough kills must land in the middle of a commit,
//! with the unit in flight partly written past the committed length, or committed but not yet
//! reported.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Victim, child, env_path, env_u64, identity, key, played, raw, scratch, value};
use wasmpak::format::record::RecordHeader;
use wasmpak::{Durability, Key, Pack, PackOptions};

const ITERATIONS: u64 = 40;
/// Kills that must land mid-commit for the run to count: most do (a writer spends nearly all
/// its time writing and syncing), so a run with fewer did not test what it claims.
const MIN_MID_COMMIT: u64 = ITERATIONS / 4;
/// Unit numbers of one writer start at `iteration * UNITS_PER_WRITER`.
const UNITS_PER_WRITER: u64 = 100_000;

/// The keys a unit commits: units whose number is 2 mod 3 are batches of three.
fn unit_keys(unit: u64) -> Vec<u64> {
    if unit % 3 == 2 {
        (0..3).map(|j| unit * 4 + j).collect()
    } else {
        vec![unit * 4]
    }
}

fn unit_value(n: u64) -> Vec<u8> {
    value(n, (n.wrapping_mul(7919) % 40_000) as usize + 1)
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    match std::env::var("WASMPAK_TEST_SEED") {
        Ok(text) => text.parse().expect("WASMPAK_TEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn writers_killed_at_random_points_lose_nothing_committed() {
    if played(&[("writer", writer)]) {
        return;
    }
    let seed = seed();
    println!("fault_crash seed: {seed} (set WASMPAK_TEST_SEED={seed} to replay)");
    let mut rng = Rng(seed | 1);
    let (_dir, path) = scratch();
    Pack::create(&path, &identity()).unwrap();
    let mut model: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    let mut mid_commit = 0;
    for iteration in 0..ITERATIONS {
        let first_unit = iteration * UNITS_PER_WRITER;
        let durable = rng.below(2) == 0;
        let mut writer = Victim::start(
            child("writer")
                .env("WASMPAK_TEST_PACK", &path)
                .env("WASMPAK_TEST_FIRST_UNIT", first_unit.to_string())
                .env("WASMPAK_TEST_DURABLE", if durable { "1" } else { "0" }),
        );
        // Let it commit a few units, then kill it somewhere in the next ones.
        let wait_for = rng.below(6);
        writer.read_until(|lines| count_committed(lines) >= wait_for);
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        // Killed while writing, not dead of its own failure before.
        let complete = writer.kill(&format!("seed {seed}, iteration {iteration}"));
        let committed: Vec<u64> = complete
            .lines()
            .filter_map(|line| line.trim().strip_prefix("committed "))
            .map(|n| n.parse().unwrap())
            .collect();
        for (i, unit) in committed.iter().enumerate() {
            assert_eq!(*unit, first_unit + i as u64, "seed {seed}: units in order");
        }
        for unit in &committed {
            for n in unit_keys(*unit) {
                model.insert(key(n), unit_value(n));
            }
        }
        let in_flight = first_unit + committed.len() as u64;
        let context = format!(
            "seed {seed}, iteration {iteration}: {} units committed",
            committed.len()
        );

        // Where the kill landed: the in-flight unit's first record past the committed length
        // means it was writing its commit.
        let bytes = std::fs::read(&path).unwrap();
        let committed_len = raw::live(&path).committed_len as usize;
        let first_in_flight = key(unit_keys(in_flight)[0]);
        let writing = bytes
            .get(committed_len..)
            .and_then(|tail| RecordHeader::decode(tail).ok())
            .is_some_and(|(header, _)| header.key == *first_in_flight.as_bytes());

        let pack = Pack::open(&path, &identity()).unwrap_or_else(|e| panic!("{context}: {e}"));
        let keys = pack.keys().unwrap();
        // The unit in flight is all there or not at all.
        let flight_keys: Vec<Key> = unit_keys(in_flight).into_iter().map(key).collect();
        let landed = flight_keys.iter().filter(|k| keys.contains(k)).count();
        assert!(
            landed == 0 || landed == flight_keys.len(),
            "{context}: {landed} of the {} keys of the unit in flight are there",
            flight_keys.len()
        );
        if landed > 0 {
            for n in unit_keys(in_flight) {
                model.insert(key(n), unit_value(n));
            }
        }
        if writing || landed > 0 {
            mid_commit += 1;
        }
        assert_eq!(
            keys,
            model.keys().copied().collect::<Vec<_>>(),
            "{context}: the pack holds other keys than the committed ones"
        );
        for (k, v) in &model {
            let got = pack.get(k).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert!(got.as_deref() == Some(&v[..]), "{context}: value of {k}");
        }
        let report = pack.verify().unwrap();
        assert!(report.is_ok(), "{context}: {:?}", report.problems());
        assert_eq!(pack.len().unwrap(), model.len() as u64, "{context}");

        // The next writer finds the torn tail and writes over it.
        let probe = key(u64::MAX - iteration);
        pack.insert(&probe, &value(iteration, 333)).unwrap();
        model.insert(probe, value(iteration, 333));
        assert_eq!(
            Pack::open(&path, &identity())
                .unwrap()
                .get(&probe)
                .unwrap()
                .as_deref(),
            Some(&value(iteration, 333)[..]),
            "{context}"
        );
    }
    println!(
        "{} keys committed; {mid_commit} of {ITERATIONS} writers were killed in the middle of a \
         commit",
        model.len()
    );
    assert!(pack_is_clean(&path, &model));
    assert!(
        mid_commit >= MIN_MID_COMMIT,
        "seed {seed}: only {mid_commit} of {ITERATIONS} kills landed in the middle of a commit"
    );
}

/// The writer's lines so far that report a commit (libtest prints its own lines too).
fn count_committed(lines: &str) -> u64 {
    lines
        .lines()
        .filter(|line| line.trim().starts_with("committed "))
        .count() as u64
}

fn pack_is_clean(path: &std::path::Path, model: &BTreeMap<Key, Vec<u8>>) -> bool {
    let pack = Pack::open(path, &identity()).unwrap();
    pack.verify().unwrap().is_ok() && pack.len().unwrap() == model.len() as u64
}

fn writer() {
    use std::io::Write;
    let durability = if env_u64("WASMPAK_TEST_DURABLE") == 1 {
        Durability::Full
    } else {
        Durability::None
    };
    let pack = PackOptions::new()
        .durability(durability)
        .open(env_path("WASMPAK_TEST_PACK"), &identity())
        .unwrap();
    let first = env_u64("WASMPAK_TEST_FIRST_UNIT");
    let mut out = std::io::stdout().lock();
    for unit in first..first + UNITS_PER_WRITER {
        let keys = unit_keys(unit);
        if keys.len() == 1 {
            pack.insert_with_label(&key(keys[0]), &unit_value(keys[0]), "single")
                .unwrap();
        } else {
            let mut batch = pack.batch();
            for n in keys {
                batch
                    .insert_with_label(&key(n), &unit_value(n), "batch")
                    .unwrap();
            }
            batch.commit().unwrap();
        }
        writeln!(out, "committed {unit}").unwrap();
        out.flush().unwrap();
    }
}

//! Many processes writing and reading one pack at once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    assert_passed, child, env_path, env_u64, identity, key, played, scratch, value,
};
use wasmpak::Pack;

const WRITERS: u64 = 4;
const PER_WRITER: u64 = 40;

#[test]
fn writers_in_many_processes_lose_nothing_while_readers_watch() {
    if played(&[("reader", reader), ("writer", writer)]) {
        return;
    }
    let (dir, path) = scratch();
    Pack::create(&path, &identity()).unwrap();
    let done = dir.path().join("writers-done");
    let readers: Vec<_> = (0..2)
        .map(|_| {
            child("reader")
                .env("WASMPAK_TEST_PACK", &path)
                .env("WASMPAK_TEST_DONE", &done)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            child("writer")
                .env("WASMPAK_TEST_PACK", &path)
                .env("WASMPAK_TEST_WRITER", w.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for writer in writers {
        assert_passed(&writer.wait_with_output().unwrap(), "a writer");
    }
    std::fs::write(&done, b"").unwrap();
    for reader in readers {
        assert_passed(&reader.wait_with_output().unwrap(), "a reader");
    }
    let pack = Pack::open(&path, &identity()).unwrap();
    assert_eq!(pack.len().unwrap(), WRITERS * PER_WRITER);
    for w in 0..WRITERS {
        for i in 0..PER_WRITER {
            let n = w * 1000 + i;
            assert_eq!(
                pack.get(&key(n)).unwrap().as_deref(),
                Some(&value(n, 500 + i as usize)[..])
            );
        }
    }
    assert!(pack.verify().unwrap().is_ok());
}

fn writer() {
    let path = env_path("WASMPAK_TEST_PACK");
    let w = env_u64("WASMPAK_TEST_WRITER");
    let pack = Pack::open(&path, &identity()).unwrap();
    for i in 0..PER_WRITER {
        let n = w * 1000 + i;
        if i % 4 == 3 {
            // Some commits are batches of two.
            let mut batch = pack.batch();
            batch.insert(&key(n), &value(n, 500 + i as usize)).unwrap();
            batch.insert(&key(n + 500), b"temporary").unwrap();
            batch.commit().unwrap();
            assert!(pack.remove(&key(n + 500)).unwrap());
        } else {
            pack.insert(&key(n), &value(n, 500 + i as usize)).unwrap();
        }
        assert!(pack.contains(&key(n)).unwrap());
    }
}

fn reader() {
    let path = env_path("WASMPAK_TEST_PACK");
    let done = env_path("WASMPAK_TEST_DONE");
    let pack = Pack::open(&path, &identity()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    let mut rounds = 0u64;
    loop {
        let finished = done.exists();
        let mut visible = 0;
        for w in 0..WRITERS {
            for i in 0..PER_WRITER {
                let n = w * 1000 + i;
                if let Some(got) = pack.get(&key(n)).unwrap() {
                    assert_eq!(
                        &got[..],
                        &value(n, 500 + i as usize)[..],
                        "a reader saw a wrong value"
                    );
                    visible += 1;
                }
            }
        }
        // Each writer commits its keys in order and never removes them.
        assert!(
            visible >= seen,
            "a committed entry disappeared: {visible} < {seen}"
        );
        seen = visible;
        rounds += 1;
        if finished {
            assert_eq!(
                seen,
                WRITERS * PER_WRITER,
                "the reader missed the final commits"
            );
            break;
        }
        assert!(Instant::now() < deadline, "writers did not finish");
    }
    eprintln!("reader did {rounds} rounds");
}

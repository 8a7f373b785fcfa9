//! `wasmpak push` and `pull` against moto: round trips, delta pulls, multipart, a server that
//! stops or stalls mid-transfer, a pull killed or raced by a new upload, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmpak::object_store::path::Path as ObjectPath;
use wasmpak::object_store::{ObjectStoreExt, PutPayload};
use wasmpak::{Durability, Pack, PackIdentity, PackOptions};

use super::moto::Moto;
use super::wait_for;
use crate::common::{BIN, Run, command, key, value};

fn identity(name: &str) -> PackIdentity {
    PackIdentity::new().with("engine", name).with("abi", 1u32)
}

/// A pack at `path` with entries `range`, each `len` bytes, committed `per_commit` at a time.
fn pack_with(path: &Path, id: &str, range: std::ops::Range<u64>, len: usize) -> Pack {
    let pack = PackOptions::new()
        .durability(Durability::None)
        .open_or_create(path, &identity(id))
        .unwrap();
    let mut batch = pack.batch();
    for n in range {
        batch
            .insert_with_label(&key(n), &value(n, len), &format!("module-{n}.wasm"))
            .unwrap();
    }
    batch.commit().unwrap();
    pack
}

fn wasmpak(moto: &Moto, args: &[&str]) -> Command {
    let mut command = command(args);
    command.envs(moto.env());
    command
}

fn run(mut command: Command) -> Run {
    command.output().unwrap().into()
}

/// Every entry of `a` is in `b` with the same label and bytes, and the counts match.
fn same_entries(a: &Pack, b: &Pack) {
    let left: Vec<_> = a.iter().unwrap().collect();
    let right: Vec<_> = b.iter().unwrap().collect();
    assert_eq!(left.len(), right.len());
    for (x, y) in left.iter().zip(&right) {
        assert_eq!((x.key(), x.label()), (y.key(), y.label()));
        assert_eq!(a.get(x.key()).unwrap(), b.get(y.key()).unwrap());
    }
}

/// The names in `dir`, sorted (none if it does not exist).
pub(super) fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn push_then_pull_round_trips_and_a_second_pull_is_up_to_date() {
    let moto = Moto::shared();
    let bucket = moto.bucket("roundtrip");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    let pack = pack_with(&source, "a", 0..20, 3000);
    let url = format!("s3://{bucket}/packs/");
    let pushed = run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    assert!(pushed.stdout.contains("20 entries"), "{}", pushed.stdout);

    let node = dir.path().join("node");
    let object = format!("s3://{bucket}/packs/app.wpk");
    let pulled = run(wasmpak(
        moto,
        &["pull", &object, node.to_str().unwrap(), "--json"],
    ))
    .ok();
    let summary = pulled.json();
    assert_eq!(summary["mode"], "full");
    assert_eq!(summary["entries_added"], 20);
    // One GET, and the HEAD that checks the object did not change meanwhile.
    assert_eq!(summary["requests"], 2);
    assert_eq!(summary["bytes_downloaded"], summary["object_bytes"]);
    assert!(
        summary["phases"]["download"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let installed = Pack::open(node.join("app.wpk"), &identity("a")).unwrap();
    same_entries(&pack, &installed);
    assert!(installed.verify().unwrap().is_ok());
    assert_eq!(files_in(&node), ["app.wpk"], "no temporary file left");

    let again = run(wasmpak(
        moto,
        &["pull", &object, node.to_str().unwrap(), "--json"],
    ))
    .ok();
    assert_eq!(again.json()["mode"], "up-to-date");
    let text = run(wasmpak(moto, &["pull", &object, node.to_str().unwrap()])).ok();
    assert!(
        text.stdout.contains("already up to date"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_pack_being_written_is_pushed_as_one_whole_commit() {
    let moto = Moto::shared();
    let bucket = moto.bucket("live");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("live.wpk");
    let pack = pack_with(&source, "a", 0..5, 1000);
    // An uncommitted tail, as a writer mid-append leaves it: never uploaded.
    let committed = std::fs::metadata(&source).unwrap().len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&source)
        .unwrap();
    std::io::Write::write_all(&mut file, &[0xAB; 4096]).unwrap();
    let url = format!("s3://{bucket}/live.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let store = moto.store(&bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let meta = rt
        .block_on(store.head(&ObjectPath::from("live.wpk")))
        .unwrap();
    assert_eq!(meta.size, committed);
    let node = dir.path().join("node");
    run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()])).ok();
    same_entries(
        &pack,
        &Pack::open(node.join("live.wpk"), &identity("a")).unwrap(),
    );
}

#[test]
fn a_delta_pull_fetches_only_the_missing_entries() {
    let moto = Moto::shared();
    let bucket = moto.bucket("delta");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    let full = pack_with(&source, "a", 0..100, 20_000);
    let url = format!("s3://{bucket}/app.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();

    // The node has 90 of the 100 entries (and one of its own), written in another order.
    let node = dir.path().join("node");
    std::fs::create_dir(&node).unwrap();
    let local = pack_with(&node.join("app.wpk"), "a", 10..100, 20_000);
    local.insert(&key(1000), b"only here").unwrap();
    let delta = run(wasmpak(
        moto,
        &["pull", &url, node.to_str().unwrap(), "--json"],
    ))
    .ok();
    let summary = delta.json();
    assert_eq!(summary["mode"], "delta");
    assert_eq!(summary["entries_added"], 10);
    assert_eq!(summary["remote_entries"], 100);
    let downloaded = summary["bytes_downloaded"].as_u64().unwrap();
    let object = summary["object_bytes"].as_u64().unwrap();
    assert!(
        downloaded * 5 <= object,
        "a delta of 10% fetched {downloaded} of {object} bytes"
    );
    for n in 0..100 {
        assert_eq!(local.get(&key(n)).unwrap(), full.get(&key(n)).unwrap());
    }
    assert_eq!(
        local.get(&key(1000)).unwrap().as_deref(),
        Some(&b"only here"[..])
    );
    assert!(local.verify().unwrap().is_ok());
}

#[test]
fn large_packs_go_up_in_parts_and_come_back_whole() {
    let moto = Moto::shared();
    let bucket = moto.bucket("large");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.wpk");
    let pack = pack_with(&source, "a", 0..14, 8 << 20); // 112 MiB
    assert!(std::fs::metadata(&source).unwrap().len() > 100 << 20);
    let url = format!("s3://{bucket}/big.wpk");
    let parts = std::fs::metadata(&source).unwrap().len().div_ceil(16 << 20);
    let pushed = run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let expected = format!("multipart upload, {parts} parts");
    assert!(pushed.stdout.contains(&expected), "{}", pushed.stdout);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let meta = rt
        .block_on(moto.store(&bucket).head(&ObjectPath::from("big.wpk")))
        .unwrap();
    let etag = meta.e_tag.unwrap();
    let suffix = format!("-{parts}");
    assert!(
        etag.trim_matches('"').ends_with(&suffix),
        "S3 tags multipart uploads: {etag}"
    );
    let node = dir.path().join("node");
    run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()])).ok();
    same_entries(
        &pack,
        &Pack::open(node.join("big.wpk"), &identity("a")).unwrap(),
    );
}

/// Starts `wasmpak` stopped at its pause point (after the first part of a transfer).
fn paused(moto: &Moto, gate: &Path, args: &[&str]) -> std::process::Child {
    std::fs::write(gate, b"").unwrap();
    let _ = std::fs::remove_file(reached(gate));
    let child = wasmpak(moto, args)
        .env("WASMPAK_PAUSE_FILE", gate)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&reached(gate));
    child
}

fn reached(gate: &Path) -> PathBuf {
    let mut name = gate.as_os_str().to_owned();
    name.push(".reached");
    name.into()
}

fn finish(child: std::process::Child) -> Run {
    child.wait_with_output().unwrap().into()
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "stops the tool at its pause point: needs the fault-injection feature"
)]
fn a_push_to_a_server_that_stops_or_stalls_fails_and_leaves_no_object() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..5, 8 << 20); // 40 MiB: three parts
    let gate = dir.path().join("gate");

    // Stalled: the upload times out; once the server answers again, nothing is there.
    let moto = Moto::start();
    let bucket = moto.bucket("stall-push");
    let url = format!("s3://{bucket}/app.wpk");
    let child = paused(
        &moto,
        &gate,
        &["push", "--timeout", "2", source.to_str().unwrap(), &url],
    );
    moto.stall();
    std::fs::remove_file(&gate).unwrap();
    finish(child).fails_naming(1, &[&url]);
    moto.resume();
    std::thread::sleep(std::time::Duration::from_millis(500)); // the requests it queued meanwhile
    assert_eq!(
        moto.open_uploads(&bucket),
        0,
        "the timed-out upload was aborted"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = rt.block_on(moto.store(&bucket).head(&ObjectPath::from("app.wpk")));
    assert!(
        matches!(found, Err(wasmpak::object_store::Error::NotFound { .. })),
        "{found:?}"
    );
    let node = dir.path().join("node");
    run(wasmpak(&moto, &["pull", &url, node.to_str().unwrap()]))
        .fails_naming(1, &[&url, "does not exist"]);
    assert!(files_in(&node).is_empty());

    // Stopped: the next request fails fast.
    let mut moto = Moto::start();
    let bucket = moto.bucket("stop-push");
    let url = format!("s3://{bucket}/app.wpk");
    let child = paused(&moto, &gate, &["push", source.to_str().unwrap(), &url]);
    moto.kill();
    std::fs::remove_file(&gate).unwrap();
    finish(child).fails_naming(1, &[&url]);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "stops the tool at its pause point: needs the fault-injection feature"
)]
fn sigint_during_a_multipart_push_aborts_the_upload() {
    let moto = Moto::shared();
    let bucket = moto.bucket("sigint-push");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..5, 8 << 20); // 40 MiB: three parts
    let url = format!("s3://{bucket}/app.wpk");
    let gate = dir.path().join("gate");
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let child = paused(moto, &gate, &["push", source.to_str().unwrap(), &url]);
        assert_eq!(moto.open_uploads(&bucket), 1, "the upload is under way");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
        let code = if signal == rustix::process::Signal::INT {
            130
        } else {
            143
        };
        let line = finish(child).fails(code).to_string();
        assert!(line.contains("interrupted"), "{line}");
        assert_eq!(moto.open_uploads(&bucket), 0, "the upload was aborted");
    }
    // Nothing was pushed; a push that runs to the end leaves no upload open either.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = rt.block_on(moto.store(&bucket).head(&ObjectPath::from("app.wpk")));
    assert!(
        matches!(found, Err(wasmpak::object_store::Error::NotFound { .. })),
        "{found:?}"
    );
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    assert_eq!(moto.open_uploads(&bucket), 0);
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "stops the tool at its pause point: needs the fault-injection feature"
)]
fn sigint_during_a_pull_removes_its_temporary_file_and_directory() {
    let moto = Moto::shared();
    let bucket = moto.bucket("sigint-pull");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..4, 6 << 20);
    let url = format!("s3://{bucket}/app.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let node = dir.path().join("node");
    let gate = dir.path().join("gate");
    for (signal, code, name) in [
        (rustix::process::Signal::INT, 130, "interrupted by SIGINT"),
        (rustix::process::Signal::TERM, 143, "interrupted by SIGTERM"),
    ] {
        let child = paused(moto, &gate, &["pull", &url, node.to_str().unwrap()]);
        assert_eq!(files_in(&node).len(), 1, "its temporary file");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
        finish(child).fails_naming(code, &[name]);
        assert!(!node.exists(), "nothing left: {:?}", files_in(&node));
    }
}

#[test]
fn pull_to_a_file_path_and_over_an_existing_pack() {
    let moto = Moto::shared();
    let bucket = moto.bucket("dest");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("all.wpk");
    let pack = pack_with(&source, "a", 0..5, 1000);
    let url = format!("s3://{bucket}/packs/all.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    // A path ending in .wpk is the file.
    let file = dir.path().join("node7/all.wpk");
    run(wasmpak(moto, &["pull", &url, file.to_str().unwrap()])).ok();
    assert!(file.is_file(), "a file, not a directory");
    same_entries(&pack, &Pack::open(&file, &identity("a")).unwrap());
    // Pulling over it again: an update, never "File exists".
    pack_with(&source, "a", 5..7, 1000);
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let again = run(wasmpak(
        moto,
        &["pull", &url, file.to_str().unwrap(), "--json"],
    ))
    .ok();
    assert_eq!(again.json()["mode"], "delta");
    assert_eq!(Pack::open(&file, &identity("a")).unwrap().len().unwrap(), 7);
    // An existing file under another name is the destination too; --replace replaces it whole.
    let other = dir.path().join("node7/current");
    std::fs::copy(&file, &other).unwrap();
    run(wasmpak(
        moto,
        &["pull", "--replace", &url, other.to_str().unwrap()],
    ))
    .ok();
    assert!(other.is_file());
    // A directory gets the object's name.
    let node = dir.path().join("node8");
    run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()])).ok();
    assert!(node.join("all.wpk").is_file());
    // A failed pull creates no directory.
    let missing = format!("s3://{bucket}/packs/none.wpk");
    let fresh = dir.path().join("node9/deeper");
    run(wasmpak(moto, &["pull", &missing, fresh.to_str().unwrap()])).fails(1);
    assert!(!dir.path().join("node9").exists());
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "stops the tool at its pause point: needs the fault-injection feature"
)]
fn a_killed_pull_installs_nothing_and_the_next_pull_succeeds() {
    let moto = Moto::shared();
    let bucket = moto.bucket("killed");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    let pack = pack_with(&source, "a", 0..4, 6 << 20); // 24 MiB: several parts
    let url = format!("s3://{bucket}/app.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let node = dir.path().join("node");
    let gate = dir.path().join("gate");
    let mut child = paused(moto, &gate, &["pull", &url, node.to_str().unwrap()]);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = files_in(&node);
    assert!(!left.contains(&"app.wpk".to_string()), "{left:?}");
    assert_eq!(left.len(), 1, "the dead pull's temporary file: {left:?}");
    std::fs::remove_file(&gate).unwrap();
    run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()])).ok();
    assert_eq!(
        files_in(&node),
        ["app.wpk"],
        "the abandoned download was cleaned up"
    );
    same_entries(
        &pack,
        &Pack::open(node.join("app.wpk"), &identity("a")).unwrap(),
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "stops the tool at its pause point: needs the fault-injection feature"
)]
fn an_object_replaced_during_a_pull_is_reported_and_nothing_installed() {
    let moto = Moto::shared();
    let bucket = moto.bucket("replaced");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..3, 6 << 20);
    let url = format!("s3://{bucket}/app.wpk");
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    let node = dir.path().join("node");
    let gate = dir.path().join("gate");
    let child = paused(moto, &gate, &["pull", &url, node.to_str().unwrap()]);
    pack_with(&source, "a", 3..4, 1000);
    run(wasmpak(moto, &["push", source.to_str().unwrap(), &url])).ok();
    std::fs::remove_file(&gate).unwrap();
    finish(child).fails_naming(1, &[&url, "replaced during the download"]);
    assert!(files_in(&node).is_empty(), "{:?}", files_in(&node));
}

#[test]
fn bad_urls_objects_and_packs_are_one_line_errors_that_install_nothing() {
    let moto = Moto::shared();
    let bucket = moto.bucket("bad");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..3, 100);
    let node = dir.path().join("node");
    let node_arg = node.to_str().unwrap();
    let pack_arg = source.to_str().unwrap();

    run(wasmpak(moto, &["pull", "not a url", node_arg])).fails_naming(2, &["not a url"]);
    run(wasmpak(moto, &["pull", "ftp://host/app.wpk", node_arg]))
        .fails_naming(2, &["ftp://host/app.wpk"]);
    run(wasmpak(moto, &["push", pack_arg, "s3//missing-colon"]))
        .fails_naming(2, &["s3//missing-colon"]);
    let folder = format!("s3://{bucket}/packs/");
    run(wasmpak(moto, &["pull", &folder, node_arg])).fails_naming(2, &[&folder]);

    let missing_bucket = "s3://no-such-bucket-anywhere/app.wpk";
    run(wasmpak(moto, &["pull", missing_bucket, node_arg]))
        .fails_naming(1, &[missing_bucket, "bucket"]);
    run(wasmpak(moto, &["push", pack_arg, missing_bucket]))
        .fails_naming(1, &[missing_bucket, "bucket"]);
    let missing_object = format!("s3://{bucket}/nothing.wpk");
    run(wasmpak(moto, &["pull", &missing_object, node_arg])).fails_naming(1, &[&missing_object]);

    // No credentials anywhere (and no instance metadata service to ask: a closed port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metadata = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut anonymous = Command::new(BIN);
    anonymous
        .args(["pull", &missing_object, node_arg, "--timeout", "5"])
        .env_clear()
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_METADATA_ENDPOINT", &metadata);
    run(anonymous).fails_naming(1, &[&missing_object, "credentials"]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = moto.store(&bucket);
    rt.block_on(store.put(
        &ObjectPath::from("junk.wpk"),
        PutPayload::from_static(b"<html>not a pack</html>"),
    ))
    .unwrap();
    let junk = format!("s3://{bucket}/junk.wpk");
    run(wasmpak(moto, &["pull", &junk, node_arg])).fails_naming(1, &[&junk, "not a wasmpak pack"]);

    // A damaged pack is neither pushed nor installed.
    let damaged = dir.path().join("damaged.wpk");
    pack_with(&damaged, "a", 0..3, 5000);
    let bytes = std::fs::read(&damaged).unwrap();
    let mut flipped = bytes.clone();
    flipped[12288 + 64 + 64 + 100] ^= 1; // inside the first value
    std::fs::write(&damaged, &flipped).unwrap();
    let damaged_url = format!("s3://{bucket}/damaged.wpk");
    run(wasmpak(
        moto,
        &["push", damaged.to_str().unwrap(), &damaged_url],
    ))
    .fails_naming(1, &["damaged.wpk", "damaged"]);
    rt.block_on(store.put(&ObjectPath::from("damaged.wpk"), PutPayload::from(flipped)))
        .unwrap();
    run(wasmpak(moto, &["pull", &damaged_url, node_arg]))
        .fails_naming(1, &[&damaged_url, "damaged"]);
    assert!(files_in(&node).is_empty(), "{:?}", files_in(&node));

    // A local pack of another identity is left alone.
    let url = format!("s3://{bucket}/app.wpk");
    run(wasmpak(moto, &["push", pack_arg, &url])).ok();
    std::fs::create_dir_all(&node).unwrap(); // the failed pulls above created none
    let other = pack_with(&node.join("app.wpk"), "b", 0..1, 10);
    let before = std::fs::read(other.path()).unwrap();
    run(wasmpak(moto, &["pull", &url, node_arg])).fails_naming(1, &[&url, "another directory"]);
    assert_eq!(std::fs::read(other.path()).unwrap(), before);
    // ... unless asked to replace it.
    run(wasmpak(moto, &["pull", "--replace", &url, node_arg])).ok();
    assert!(Pack::open(node.join("app.wpk"), &identity("a")).is_ok());

    // A file that is not a pack where the pack would go: left alone too.
    std::fs::write(node.join("app.wpk"), b"mine").unwrap();
    run(wasmpak(moto, &["pull", &url, node_arg])).fails_naming(1, &["app.wpk", "--replace"]);
    assert_eq!(std::fs::read(node.join("app.wpk")).unwrap(), b"mine");
}

#[test]
fn a_truncated_object_is_refused_and_nothing_installed() {
    let moto = Moto::shared();
    let bucket = moto.bucket("truncated");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    pack_with(&source, "a", 0..3, 3 << 20); // several write batches
    let bytes = std::fs::read(&source).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = moto.store(&bucket);
    let node = dir.path().join("node");
    // The pack file itself, as `aws s3 cp` would upload it (its other commit slot holds an
    // older, empty commit), cut inside the records, by a single byte, and inside the
    // superblock: never installed as the older commit.
    for len in [bytes.len() / 2, bytes.len() - 1, 100] {
        let name = format!("cut-{len}.wpk");
        let cut = bytes[..len].to_vec();
        rt.block_on(store.put(&ObjectPath::from(name.as_str()), PutPayload::from(cut)))
            .unwrap();
        let url = format!("s3://{bucket}/{name}");
        let refused =
            run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()])).fails_naming(1, &[&url]);
        if len > 100 {
            assert!(refused.stderr.contains("truncated"), "{}", refused.stderr);
        }
        assert!(files_in(&node).is_empty(), "{len}: {:?}", files_in(&node));
    }
    // Into a local pack of the same identity (a delta pull): refused too, the pack untouched.
    let len = bytes.len() / 2;
    std::fs::create_dir_all(&node).unwrap(); // the refused pulls above created none
    let local = pack_with(&node.join(format!("cut-{len}.wpk")), "a", 0..1, 10);
    let before = std::fs::read(local.path()).unwrap();
    let url = format!("s3://{bucket}/cut-{len}.wpk");
    run(wasmpak(moto, &["pull", &url, node.to_str().unwrap()]))
        .fails_naming(1, &[&url, "truncated"]);
    assert_eq!(std::fs::read(local.path()).unwrap(), before);
}

#[test]
fn file_urls_work_without_any_server() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    let pack = pack_with(&source, "a", 0..3, 100);
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let url = format!("file://{}/", shared.display());
    let mut push = Command::new(BIN);
    push.args(["push", source.to_str().unwrap(), &url]);
    run(push).ok();
    let node = dir.path().join("node");
    let mut pull = Command::new(BIN);
    pull.args(["pull", &format!("{url}app.wpk"), node.to_str().unwrap()]);
    run(pull).ok();
    same_entries(
        &pack,
        &Pack::open(node.join("app.wpk"), &identity("a")).unwrap(),
    );
}

/// Found in review: a pull swept the temporary files of dead pulls before creating its own,
/// which it locked only after creating it, so a pull starting meanwhile could delete a live
/// pull's download. Downloads are created locked (`wasmpak::fs::TempFile`) and sweeps take
/// only files whose lock they can take: pulls racing into one directory, beside a sweep that
/// never rests, all succeed and leave the pack whole, and nothing behind.
#[test]
fn pulls_racing_into_one_directory_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.wpk");
    let pack = pack_with(&source, "a", 0..64, 64 << 10);
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let url = format!("file://{}/", shared.display());
    let mut push = Command::new(BIN);
    push.args(["push", source.to_str().unwrap(), &url]);
    run(push).ok();
    let node = dir.path().join("node");
    std::fs::create_dir(&node).unwrap();
    // And a sweeper that never rests, as a pull starting at every instant would be. It stops
    // when the race ends, failed or not (a failed race must fail the test, not hang it).
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                wasmpak::fs::remove_leftovers(node.join("app.wpk"));
            }
        });
        let _stop = StopOnDrop(&done);
        race(&url, &node);
    });
    same_entries(
        &pack,
        &Pack::open(node.join("app.wpk"), &identity("a")).unwrap(),
    );
}

/// Sets its flag when dropped, also by a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Rounds of four pulls at once into `node`.
fn race(url: &str, node: &Path) {
    for _round in 0..8 {
        let pulls: Vec<_> = (0..4)
            .map(|_| {
                Command::new(BIN)
                    .args(["pull", "--replace", &format!("{url}app.wpk")])
                    .arg(node)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for pull in pulls {
            let run: Run = pull.wait_with_output().unwrap().into();
            run.ok();
        }
        assert_eq!(files_in(node), ["app.wpk"], "no download is left behind");
    }
}

//! Resident memory of processes that load the same module: from a pack (file-backed pages,
//! shared by every process) or with `fs::read` + `Module::deserialize` (a private heap copy
//! each).
//!
//! Run: `cargo bench --bench memory`. Prints, per mode, the average over several processes of
//! the resident set split into shared and private pages (from /proc/PID/smaps_rollup).

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll, Waker};

use wasmer::{Engine, Module};
use wasmpak::{ModuleCache, ModuleHash, PackCache};

const PROCESSES: usize = 4;
const SHAPE: (u32, u32) = (1000, 500); // about 7.5 MB of artifact

fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("not ready on the first poll"),
    }
}

/// Child: load the module one way, say so, and hold it until stdin closes.
fn child(mode: &str, dir: &Path, key: &str) {
    let key: wasmpak::Key = key.parse().unwrap();
    let key = ModuleHash::from_bytes(*key.as_bytes());
    let engine = Engine::default();
    let module = match mode {
        "pack" => ready(PackCache::new(dir).load(key, &engine)).unwrap(),
        "read" => {
            let bytes = std::fs::read(dir.join("artifact.bin")).unwrap();
            // SAFETY: the file holds `Module::serialize` output of this configuration, written
            // by the parent moments ago.
            unsafe { Module::deserialize(&engine, bytes) }.unwrap()
        }
        other => panic!("unknown mode {other}"),
    };
    println!("ready");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(module);
}

fn rollup(pid: u32) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let kb = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_string(), kb))
        })
        .collect()
}

fn main() {
    if cfg!(not(target_os = "linux")) {
        eprintln!("skipped: the memory bench reads /proc/PID/smaps_rollup, which only Linux has");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1], Path::new(&args[at + 2]), &args[at + 3]);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let wat = wasmpak_samples::module_wat(1, SHAPE.0, SHAPE.1);
    eprintln!("compiling the sample module...");
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let key = ModuleHash::new(&wasm);
    let module = Module::new(&engine, &wasm).unwrap();
    std::fs::write(dir.path().join("artifact.bin"), module.serialize().unwrap()).unwrap();
    ready(PackCache::new(dir.path()).save(key, &engine, &module)).unwrap();
    // Children take the key as text: computing it would fill their heaps with the module text.
    let key_text = wasmpak::Key::from_bytes(key.as_bytes().try_into().unwrap()).to_string();
    let exe = std::env::current_exe().unwrap();
    println!(
        "{PROCESSES} processes each loading the same {:.1} MB artifact",
        module.serialize().unwrap().len() as f64 / 1e6
    );
    println!(
        "{:<28} {:>10} {:>10} {:>14} {:>14}",
        "mode", "Rss KiB", "Pss KiB", "Shared KiB", "Private KiB"
    );
    for (mode, title) in [
        ("pack", "PackCache (mmap)"),
        ("read", "fs::read + deserialize"),
    ] {
        let mut children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let mut child = Command::new(&exe)
                    .args(["--child", mode])
                    .arg(dir.path())
                    .arg(&key_text)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.as_mut().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line.trim(), "ready");
                child
            })
            .collect();
        let mut totals = [0u64; 4];
        for child in &children {
            let r = rollup(child.id());
            let get = |name: &str| r.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
            totals[0] += get("Rss");
            totals[1] += get("Pss");
            totals[2] += get("Shared_Clean") + get("Shared_Dirty");
            totals[3] += get("Private_Clean") + get("Private_Dirty");
        }
        for child in &mut children {
            drop(child.stdin.take());
            child.wait().unwrap();
        }
        let n = PROCESSES as u64;
        println!(
            "{:<28} {:>10} {:>10} {:>14} {:>14}",
            title,
            totals[0] / n,
            totals[1] / n,
            totals[2] / n,
            totals[3] / n
        );
    }
}

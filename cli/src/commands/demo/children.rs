//! The parent's side of [`child`](super::child): starting worker processes, reading their
//! proportional memory, and damaging one stored artifact to see what each cache does with it.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::caches::Keys;
use super::child::ROLE;
use crate::error::CliError;

fn failed(what: &str, e: &dyn std::fmt::Display) -> CliError {
    CliError::failed(format!("demo: {what}: {e}"))
}

/// A started worker and the lines it printed before `ready` (or before it ended).
struct Worker {
    process: Child,
    lines: Vec<String>,
    ready: bool,
}

/// Starts a worker that loads `modules` (sample indices and their keys) from `cache`, and
/// reads its lines up to `ready`.
fn start(cache: &str, root: &Path, modules: &[(usize, Keys)]) -> Result<Worker, CliError> {
    let list: Vec<String> = modules
        .iter()
        .map(|(index, keys)| format!("{index}={}", keys.to_spec()))
        .collect();
    let exe = std::env::current_exe().map_err(|e| failed("finding this program", &e))?;
    let mut process = Command::new(exe)
        .arg("demo")
        .env(
            ROLE,
            format!("{cache};{};{}", root.display(), list.join(",")),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting a worker process", &e))?;
    let mut lines = Vec::new();
    let mut ready = false;
    if let Some(stdout) = process.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "ready" {
                ready = true;
                break;
            }
            lines.push(line);
        }
    }
    Ok(Worker {
        process,
        lines,
        ready,
    })
}

/// Lets the worker exit and says how it ended: `None` for a clean exit, else why not.
fn finish(mut worker: Worker) -> Result<Option<String>, CliError> {
    drop(worker.process.stdin.take());
    let status = worker
        .process
        .wait()
        .map_err(|e| failed("waiting for a worker", &e))?;
    let mut stderr = String::new();
    if let Some(mut pipe) = worker.process.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ok(match (status.success(), status.signal()) {
        (true, _) => None,
        (false, Some(signal)) => Some(format!("crashed (signal {signal})")),
        (false, None) => Some(format!("failed: {}", stderr.trim())),
    })
}

/// Proportional memory, in bytes: all of it and the part that maps files.
#[derive(Default, Clone, Copy)]
pub struct Pss {
    pub total: u64,
    pub file: u64,
}

/// Total PSS of `workers` processes that each made the first load of `modules` (sample
/// indices and their keys) from `cache` and hold the modules, read while all of them are
/// alive.
pub fn total_pss(
    cache: &str,
    root: &Path,
    modules: &[(usize, Keys)],
    workers: usize,
) -> Result<Pss, CliError> {
    let started = (0..workers)
        .map(|_| start(cache, root, modules))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sum = Pss::default();
    for worker in &started {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", worker.process.id()))
            .map_err(|e| failed("reading a worker's memory", &e))?;
        let kib = |field: &str| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .ok_or_else(|| failed("reading a worker's memory", &format!("no {field} line")))
        };
        sum.total += kib("Pss:")? * 1024;
        sum.file += kib("Pss_File:")? * 1024;
    }
    let mut problems = Vec::new();
    for worker in started {
        let (ready, lines) = (worker.ready, worker.lines.clone());
        if let Some(ended) = finish(worker)? {
            problems.push(ended);
        } else if !ready || lines.iter().any(|l| !l.starts_with("loaded ")) {
            problems.push(lines.join("; "));
        }
    }
    match problems.first() {
        None => Ok(sum),
        Some(problem) => Err(failed(&format!("a {cache} worker"), problem)),
    }
}

/// What a fresh process did with the sample `index` (whose keys are `keys`) from `cache`: its
/// one line, or how it crashed.
pub fn first_load_outcome(
    cache: &str,
    root: &Path,
    index: usize,
    keys: Keys,
) -> Result<String, CliError> {
    let worker = start(cache, root, &[(index, keys)])?;
    let line = worker.lines.first().cloned();
    Ok(match (finish(worker)?, line) {
        (Some(ended), _) => ended,
        (None, Some(line)) => line,
        (None, None) => "printed nothing".to_string(),
    })
}

/// Flips one byte in the middle of `artifact` wherever it is stored under `dir` (the pack or
/// a peer's file), in place, and returns the file changed. The file is never truncated: the
/// demo's own process may still map it.
pub fn flip_stored_byte(dir: &Path, artifact: &[u8]) -> Result<PathBuf, CliError> {
    let middle = artifact.len() / 2;
    let window = &artifact[middle.saturating_sub(128)..(middle + 128).min(artifact.len())];
    for file in files(dir).map_err(|e| failed("listing a cache", &e))? {
        let bytes = std::fs::read(&file).map_err(|e| failed("reading a cache", &e))?;
        let Some(at) = bytes.windows(window.len()).position(|w| w == window) else {
            continue;
        };
        let offset = (at + window.len() / 2) as u64;
        let handle = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .map_err(|e| failed("opening a cache file", &e))?;
        handle
            .write_all_at(&[bytes[at + window.len() / 2] ^ 0x40], offset)
            .map_err(|e| failed("damaging a cache file", &e))?;
        return Ok(file);
    }
    Err(failed(
        &format!("damaging {}", dir.display()),
        &"the artifact is not stored there as saved",
    ))
}

fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files(&path)?);
        } else {
            found.push(path);
        }
    }
    Ok(found)
}

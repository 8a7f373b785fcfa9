//! Worker processes: this benchmark binary started again with `EDGE_WORKER` set.
//!
//! A worker sets up what a fresh edge process has before its first request (an engine, a
//! tokio runtime, the cache object), says `ready`, and waits for `go` on stdin, so that all P
//! workers of a batch start loading together and process start-up is not counted. It then
//! reports one line per operation (`load INDEX NANOS`), the batch `total NANOS`, checks every
//! module it loaded (untimed), and says `done`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use wasmer::Engine;

use crate::corpus::{self, CorpusModule};
use crate::variants::{Opened, Variant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Load the modules in order, timing each.
    Load,
    /// Load them, then hold them until stdin closes (memory).
    Hold,
    /// Save them, timing each.
    Save,
    /// Load them on `threads` threads sharing the cache and engine.
    Threads,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub mode: Mode,
    pub variant: Variant,
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub threads: usize,
    pub indices: Vec<usize>,
}

/// What a worker reported.
#[derive(Debug, Default)]
pub struct Report {
    pub ops: Vec<(usize, Duration)>,
    pub total: Duration,
    pub stats: Option<String>,
    /// A pack worker's fixed costs: engine identity, opening the pack, starting a thread.
    pub fixed: Vec<Duration>,
}

pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Starts a worker and waits until it is ready.
    pub fn start(spec: &Spec) -> Worker {
        let mode = match spec.mode {
            Mode::Load => "load",
            Mode::Hold => "hold",
            Mode::Save => "save",
            Mode::Threads => "threads",
        };
        let indices: Vec<String> = spec.indices.iter().map(|i| i.to_string()).collect();
        let text = format!(
            "{mode}\n{}\n{}\n{}\n{}\n{}",
            spec.variant.name(),
            spec.dir.display(),
            spec.manifest.display(),
            spec.threads,
            indices.join(" ")
        );
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("EDGE_WORKER", text)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut worker = Worker {
            child,
            stdin,
            stdout,
        };
        let line = worker.line();
        assert_eq!(line, "ready", "worker did not start");
        worker
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    pub fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads the report up to `done` (or `held`, for a holding worker, which keeps running).
    pub fn report(&mut self) -> Report {
        let mut report = Report::default();
        loop {
            let line = self.line();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("load") | Some("save") => {
                    let index = words.next().unwrap().parse().unwrap();
                    let nanos = words.next().unwrap().parse().unwrap();
                    report.ops.push((index, Duration::from_nanos(nanos)));
                }
                Some("total") => {
                    report.total = Duration::from_nanos(words.next().unwrap().parse().unwrap())
                }
                Some("stats") => report.stats = Some(words.collect::<Vec<_>>().join(" ")),
                Some("fixed") => {
                    report.fixed = words
                        .map(|w| Duration::from_nanos(w.parse().unwrap()))
                        .collect()
                }
                Some("done") | Some("held") => return report,
                _ => panic!("worker failed (said {line:?})"),
            }
        }
    }

    /// Closes stdin and waits for the worker to exit successfully.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "worker failed: {status}");
    }
}

/// Runs one batch: starts every worker, lets them go together, collects their reports.
pub fn batch(specs: &[Spec]) -> Vec<Report> {
    let mut workers: Vec<Worker> = specs.iter().map(Worker::start).collect();
    for worker in &mut workers {
        worker.go();
    }
    let reports = workers.iter_mut().map(Worker::report).collect();
    for worker in workers {
        worker.finish();
    }
    reports
}

/// The manifest a worker reads the corpus from: one module a line.
pub fn write_manifest(path: &Path, corpus: &[CorpusModule]) {
    let text: String = corpus
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {} {} {} {} {} {}\n",
                m.index,
                m.seed,
                m.functions,
                m.ops,
                m.artifact_len,
                m.key,
                m.blake3,
                m.wasm.display(),
                m.artifact.display()
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

fn read_manifest(path: &Path) -> Vec<CorpusModule> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let w: Vec<&str> = line.split(' ').collect();
            let key: wasmpak::Key = w[5].parse().unwrap();
            CorpusModule {
                index: w[0].parse().unwrap(),
                seed: w[1].parse().unwrap(),
                functions: w[2].parse().unwrap(),
                ops: w[3].parse().unwrap(),
                artifact_len: w[4].parse().unwrap(),
                key: wasmpak::ModuleHash::from_bytes(*key.as_bytes()),
                blake3: w[6].parse().unwrap(),
                wasm: PathBuf::from(w[7]),
                artifact: PathBuf::from(w[8]),
            }
        })
        .collect()
}

/// The worker's side. Never returns.
pub fn main(spec: &str) -> ! {
    let mut lines = spec.lines();
    let mode = lines.next().unwrap();
    let variant = Variant::parse(lines.next().unwrap());
    let dir = PathBuf::from(lines.next().unwrap());
    let corpus = read_manifest(Path::new(lines.next().unwrap()));
    let threads: usize = lines.next().unwrap().parse().unwrap();
    let indices: Vec<usize> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|i| i.parse().unwrap())
        .collect();

    let engine = Engine::default();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = tokio.handle().clone();
    let mut cache = Opened::new(variant, &dir, &tokio);
    let wasm: Vec<Option<Vec<u8>>> = indices
        .iter()
        .map(|&i| (variant == Variant::Compile).then(|| std::fs::read(&corpus[i].wasm).unwrap()))
        .collect();
    let to_save: Vec<wasmer::Module> = if mode == "save" {
        indices
            .iter()
            .map(|&i| corpus::deserialize(&engine, &corpus[i]))
            .collect()
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();

    let started = Instant::now();
    let mut loaded = Vec::new();
    match mode {
        "load" | "hold" => {
            for (n, &i) in indices.iter().enumerate() {
                let t = Instant::now();
                let module = cache.load(&handle, &engine, &corpus[i], wasm[n].as_deref());
                writeln!(out, "load {i} {}", t.elapsed().as_nanos()).unwrap();
                loaded.push((i, module));
            }
        }
        "save" => {
            for (n, &i) in indices.iter().enumerate() {
                let t = Instant::now();
                cache.save(&handle, &engine, &corpus[i], &to_save[n]);
                writeln!(out, "save {i} {}", t.elapsed().as_nanos()).unwrap();
            }
        }
        "threads" => {
            let results = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let (cache, engine, handle, corpus) = (&cache, &engine, &handle, &corpus);
                        let mine: Vec<usize> =
                            indices.iter().copied().skip(t).step_by(threads).collect();
                        scope.spawn(move || {
                            mine.into_iter()
                                .map(|i| {
                                    let t = Instant::now();
                                    let module = cache.load(handle, engine, &corpus[i], None);
                                    (i, t.elapsed(), module)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap())
                    .collect::<Vec<_>>()
            });
            for (i, took, module) in results {
                writeln!(out, "load {i} {}", took.as_nanos()).unwrap();
                loaded.push((i, module));
            }
        }
        other => panic!("unknown mode {other}"),
    }
    writeln!(out, "total {}", started.elapsed().as_nanos()).unwrap();
    if let Some(stats) = cache.pack_stats() {
        writeln!(
            out,
            "stats hits={} misses={} saves={}",
            stats.hits, stats.misses, stats.saves
        )
        .unwrap();
    }
    if mode == "hold" {
        writeln!(out, "held").unwrap();
        out.flush().unwrap();
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
        drop(loaded);
        std::process::exit(0);
    }
    for (i, module) in &loaded {
        corpus::check(&engine, module, &corpus[*i]);
    }
    if mode == "load" && variant == Variant::Pack {
        // What a fresh process pays once, measured apart (after the timed loads).
        let other = Engine::default();
        let t = Instant::now();
        let identity = wasmpak::EngineIdentity::of(&other);
        let identity_took = t.elapsed();
        let path = wasmpak::PackCache::new(&dir)
            .pack_path(&other)
            .expect("a cache with a directory has a pack path");
        let t = Instant::now();
        let pack = wasmpak::Pack::open(&path, &identity.to_pack_identity()).unwrap();
        let open_took = t.elapsed();
        drop(pack);
        let t = Instant::now();
        std::thread::spawn(|| ()).join().unwrap();
        let thread_took = t.elapsed();
        writeln!(
            out,
            "fixed {} {} {}",
            identity_took.as_nanos(),
            open_took.as_nanos(),
            thread_took.as_nanos()
        )
        .unwrap();
    }
    writeln!(out, "done").unwrap();
    out.flush().unwrap();
    drop(out);
    std::process::exit(0);
}

//! A real wasix runtime serving WASI programs from a pack, in fresh processes.
//!
//! A `PluggableRuntime` gets a `PackCache` (alone, and behind wasix users' usual
//! `SharedCache::default().with_fallback(..)`) through `set_module_cache`, loads the program
//! through its own `Runtime::load_module`, and runs it with `WasiRunner`. The first process
//! compiles and saves through wasix's code path; a second, fresh process must load the module
//! from the pack without compiling, which the pack cache's counters prove (not timing), and
//! produce the same output.
//!
//! The host is this test binary again, playing the role `host` (`crate::common::child`): a
//! process whose standard streams are the WASI program's and whose exit code is the program's,
//! the way an edge worker runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use wasmer::Engine;
use wasmer_wasix::Runtime;
use wasmer_wasix::runners::wasi::{RuntimeOrEngine, WasiRunner};
use wasmer_wasix::runtime::PluggableRuntime;
use wasmer_wasix::runtime::module_cache::ModuleCache as WasixModuleCache;
use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
use wasmpak::{ModuleCache, PackCache, SharedCache};

use crate::common::{child, played};

/// The child's last stderr line: the pack cache's counters.
const STATS_PREFIX: &str = "pack-cache-stats:";

#[test]
fn fresh_processes_load_a_wasi_program_from_the_pack_without_compiling() {
    if played(&[("host", host)]) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let wasm = wasmer::wat2wasm(wasmpak_samples::WASI_TOOL_WAT.as_bytes())
        .unwrap()
        .into_owned();
    let program = scratch.path().join("wasi-tool.wasm");
    std::fs::write(&program, &wasm).unwrap();

    for composition in ["pack", "shared+pack"] {
        first_process_compiles_then_fresh_processes_load_from_the_pack(
            &scratch.path().join(composition),
            &program,
            composition,
        );
    }
}

fn first_process_compiles_then_fresh_processes_load_from_the_pack(
    dir: &Path,
    program: &Path,
    composition: &str,
) {
    let echo = ["echo", "hello", "edge", "world"];
    let first = spawn(dir, program, composition, &echo, b"");
    assert_eq!(first.code, 0, "{first:#?}");
    assert_eq!(first.stdout, "hello edge world\n", "{first:#?}");
    assert_eq!(
        first.stats, "hits=0 misses=1 saves=1",
        "the first process compiles and saves: {first:#?}"
    );
    assert!(pack_file(dir).is_some(), "no pack in {}", dir.display());

    let second = spawn(dir, program, composition, &echo, b"");
    assert_eq!(second.code, 0, "{second:#?}");
    assert_eq!(second.stdout, first.stdout, "same output from the pack");
    assert_eq!(
        second.stats, "hits=1 misses=0 saves=0",
        "a fresh process loads from the pack without compiling: {second:#?}"
    );

    // Standard input reaches the program.
    let input = "line one\nline two, with more text\n";
    let cat = spawn(dir, program, composition, &["cat"], input.as_bytes());
    assert_eq!((cat.code, cat.stdout.as_str()), (0, input), "{cat:#?}");
    assert_eq!(cat.stats, "hits=1 misses=0 saves=0", "{cat:#?}");

    // A non-zero exit is the program's result, not the host's failure.
    let fail = spawn(dir, program, composition, &["fail"], b"");
    assert_eq!(fail.code, 3, "{fail:#?}");
    assert!(fail.stderr.contains("failing on purpose"), "{fail:#?}");
    assert_eq!(fail.stdout, "", "{fail:#?}");
    assert_eq!(fail.stats, "hits=1 misses=0 saves=0", "{fail:#?}");
}

/// The pack the cache created in `dir`, if any.
fn pack_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wpk"))
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    stats: String,
}

/// libtest's first lines on the host's stdout, before the program's (the host exits with the
/// program's code before libtest says more).
const HARNESS_HEADER: &str = "\nrunning 1 test\n";

/// Runs a fresh host process.
fn spawn(dir: &Path, program: &Path, composition: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let spec = format!(
        "{}\n{}\n{composition}\n{}",
        dir.display(),
        program.display(),
        args.join("\n")
    );
    let mut child = child("host")
        .env("WASMPAK_WASIX_HOST", spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stats = stderr
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(STATS_PREFIX))
        .unwrap_or_else(|| panic!("no stats from the child:\n{stderr}"))
        .trim()
        .to_string();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stdout = stdout
        .strip_prefix(HARNESS_HEADER)
        .unwrap_or_else(|| panic!("the host's stdout starts with libtest's header: {stdout:?}"));
    Outcome {
        code: output.status.code().expect("the child exited"),
        stdout: stdout.to_string(),
        stderr,
        stats,
    }
}

/// The host: a wasix runtime with the cache, the program loaded through the runtime and run
/// with the process's own standard streams; exits with the program's code.
fn host() {
    let spec = std::env::var("WASMPAK_WASIX_HOST").unwrap();
    let mut lines = spec.lines();
    let dir = PathBuf::from(lines.next().unwrap());
    let program = PathBuf::from(lines.next().unwrap());
    let composition = lines.next().unwrap();
    let args: Vec<String> = lines.map(str::to_string).collect();

    let pack = PackCache::new(&dir);
    let cache: Arc<dyn WasixModuleCache + Send + Sync> = match composition {
        "pack" => Arc::new(pack.clone()),
        "shared+pack" => Arc::new(ModuleCache::with_fallback(
            SharedCache::default(),
            pack.clone(),
        )),
        other => panic!("unknown composition {other}"),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = tokio.enter();
    let mut runtime =
        PluggableRuntime::new(Arc::new(TokioTaskManager::new(tokio.handle().clone())));
    runtime
        .set_engine(Engine::default())
        .set_module_cache(cache);
    let runtime = Arc::new(runtime);

    let wasm = std::fs::read(&program).unwrap();
    #[allow(deprecated)] // the and most hosts' entry point; it resolves like the rest
    let module = tokio
        .block_on(Runtime::load_module(runtime.as_ref(), &wasm))
        .unwrap();

    let mut runner = WasiRunner::new();
    runner.with_args(&args);
    let runtime: Arc<dyn Runtime + Send + Sync> = runtime;
    let hash = wasmer_types::ModuleHash::new(&wasm);
    let result = runner.run_wasm(RuntimeOrEngine::Runtime(runtime), "wasi-tool", module, hash);
    let code = match result {
        Ok(()) => 0,
        Err(error) => error
            .chain()
            .find_map(|cause| cause.downcast_ref::<wasmer_wasix::WasiRuntimeError>())
            .and_then(|e| e.as_exit_code())
            .map(|code| code.raw())
            .unwrap_or_else(|| panic!("the program failed: {error:#}")),
    };
    let stats = pack.stats();
    eprintln!(
        "{STATS_PREFIX} hits={} misses={} saves={}",
        stats.hits, stats.misses, stats.saves
    );
    std::process::exit(code);
}

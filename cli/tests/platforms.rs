//! Packs shipped to another platform: built by the x86_64 glibc tool, loaded by this build of
//! the tool and of the library, on aarch64 (under qemu-user in CI) and with musl. Compiled only
//! for those targets; `.ci/cross` runs them with `WASMPAK_TEST_HOST_TOOL` naming the x86_64
//! glibc tool (`target/ci/wasmpak`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::*;
use wasmer::Engine;
use wasmpak::{EngineIdentity, Key, ModuleCache, ModuleHash, Pack, PackCache};

/// The variable naming the x86_64 glibc tool that builds the packs.
const HOST_TOOL: &str = "WASMPAK_TEST_HOST_TOOL";

/// The x86_64 glibc tool, or `None` (the test then fails unless skipped) if none is named.
fn host_tool() -> Option<PathBuf> {
    match std::env::var_os(HOST_TOOL) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "{HOST_TOOL} names no file: {path:?}");
            Some(path)
        }
        None => {
            missing(
                "host-tool",
                format!("{HOST_TOOL} does not name the x86_64 glibc tool to build packs with"),
            );
            None
        }
    }
}

/// Runs `tool` with `args` and `stdin` piped in.
fn run_piped(tool: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], stdin: &[u8]) -> Run {
    let mut child = std::process::Command::new(tool)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", tool.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap().into()
}

/// The pack `host` builds into a new directory `ship` of `s` from `answer.wasm` and
/// `tool.wat`, for `target` (`None`: the host tool's own).
fn ship(host: &Path, s: &Scratch, target: Option<&str>) -> (PathBuf, PathBuf) {
    s.write("tool.wat", wasmpak_samples::WASI_TOOL_WAT.as_bytes());
    let ship = s.path("ship");
    std::fs::create_dir(&ship).unwrap();
    let mut build: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build"];
    let target_args = target.map(|t| ["--target", t]);
    if let Some([flag, triple]) = &target_args {
        build.extend([flag as &dyn AsRef<std::ffi::OsStr>, triple]);
    }
    let (answer, tool) = (s.path("answer.wasm"), s.path("tool.wat"));
    build.extend([&ship as &dyn AsRef<std::ffi::OsStr>, &answer, &tool]);
    let built = run_piped(host, &build, b"");
    assert_eq!(built.code, Some(0), "the host tool's build:\n{built:#?}");
    let packs: Vec<PathBuf> = std::fs::read_dir(&ship)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    (ship, packs[0].clone())
}

/// The bytes of `answer.wasm` in `s`.
fn answer_wasm(s: &Scratch) -> Vec<u8> {
    std::fs::read(s.path("answer.wasm")).unwrap()
}

/// The pack `host` built for this build's target loads here: `info` says so and names it as
/// this build would, a `PackCache` over its directory loads a module from it without compiling
/// (the artifact the host compiled; with musl, also the bytes this build compiles), and the
/// WASI tool run from it by this build's tool is a hit with the output and exit code of the
/// host tool's own run, the pack unchanged.
fn a_shipped_pack_loads_and_runs_here(host: &Path, target: Option<&str>) {
    let s = Scratch::new();
    let (ship, pack) = ship(host, &s, target);
    let before = std::fs::read(&pack).unwrap();
    let here = EngineIdentity::of(&Engine::default());

    let info = info(&pack);
    assert_eq!(info["loadable_here"], true, "{info:#}");
    assert_eq!(info["cache_file_name"], here.pack_file_name().as_str());
    assert_eq!(
        pack.file_name().unwrap().to_str(),
        Some(here.pack_file_name().as_str())
    );

    let hash = ModuleHash::new(answer_wasm(&s));
    let stored = Pack::open_any(&pack)
        .unwrap()
        .get(&Key::from_bytes(hash.as_bytes().try_into().unwrap()))
        .unwrap()
        .expect("the host tool stored answer.wasm");
    let engine = Engine::default();
    let cache = PackCache::new(&ship);
    let module = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(cache.load(hash, &engine))
        .expect("a hit, nothing compiled");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.saves), (1, 0, 0));
    assert_eq!(module.serialize().unwrap(), stored, "the host's artifact");
    assert_eq!(answer(&engine, &module), 42);
    if target.is_none() {
        // The same machine and CPU features: this build compiles the very bytes the host's did.
        let compiled = wasmer::Module::new(&engine, answer_wasm(&s)).unwrap();
        assert_eq!(compiled.serialize().unwrap(), stored, "compiled here");
    }

    #[cfg(feature = "wasix")]
    {
        // The host tool runs from a pack it built for itself, so both runs are hits.
        let reference = s.path("reference.wpk");
        let tool = s.path("tool.wat");
        let built = run_piped(host, &[&"build", &reference, &tool], b"");
        assert_eq!(built.code, Some(0), "the host tool's build:\n{built:#?}");
        for (words, stdin) in [
            (&["echo", "hello from", "a pack"][..], ""),
            (&["cat"][..], "piped\nthrough\n"),
            (&["fail"][..], ""),
            (&["nonsense"][..], ""),
        ] {
            let mut run: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &reference, &tool, &"--"];
            run.extend(words.iter().map(|w| w as &dyn AsRef<std::ffi::OsStr>));
            let theirs = run_piped(host, &run, stdin.as_bytes());
            run[1] = &pack;
            let ours = run_piped(Path::new(BIN), &run, stdin.as_bytes());
            for run in [&theirs, &ours] {
                assert!(run.stderr.starts_with("hit   tool.wat"), "{run:#?}");
            }
            assert_eq!(
                (ours.code, &ours.stdout),
                (theirs.code, &theirs.stdout),
                "{words:?} here and on the host:\n{ours:#?}\n{theirs:#?}"
            );
            assert_eq!(
                ours.stderr.lines().skip(1).collect::<Vec<_>>(),
                theirs.stderr.lines().skip(1).collect::<Vec<_>>(),
                "{words:?}: the program's own stderr"
            );
        }
    }
    assert_eq!(std::fs::read(&pack).unwrap(), before, "the pack changed");
}

/// A pack the x86_64 tool built with `--target aarch64-unknown-linux-gnu` loads and runs in
/// this aarch64 build.
#[cfg(target_arch = "aarch64")]
#[test]
fn a_pack_built_on_x86_64_loads_and_runs_on_aarch64() {
    let Some(host) = host_tool() else {
        return;
    };
    a_shipped_pack_loads_and_runs_here(&host, Some("aarch64-unknown-linux-gnu"));
}

/// A pack the glibc tool built for its own host loads and runs in this musl build: the C
/// library is no part of an engine's identity.
#[cfg(target_env = "musl")]
#[test]
fn a_pack_built_by_the_glibc_tool_loads_and_runs_with_musl() {
    let Some(host) = host_tool() else {
        return;
    };
    a_shipped_pack_loads_and_runs_here(&host, None);
}

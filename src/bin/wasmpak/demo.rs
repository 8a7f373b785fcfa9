//! `wasmpak demo`: what a pack buys, measured on this machine in a few seconds.
//!
//! Needs nothing: it generates modules from about 7 KB to about 7.5 MB of machine code,
//! compiles them, saves them through `PackCache` (one pack) and `FileSystemCache` (one file per
//! module) in a temporary directory, then loads each back as a freshly started process would,
//! and once more from the in-process memo. Every loaded module is run to show it is the real
//! thing. The directory is removed at the end, also on error.

use std::time::{Duration, Instant};

use wasmer::sys::NativeEngineExt;
use wasmer::{Engine, Instance, Module, Store};
use wasmpak::sample::{SAMPLES, module_wat};
use wasmpak::{FileSystemCache, ModuleCache, ModuleHash, PackCache};

use crate::error::CliError;
use crate::output::{self, Align, Table, say};

/// Repeated loads timed to get a stable per-load figure for the memo.
const REPEATS: u32 = 100;
/// Fresh-process loads per module and cache; the median is shown.
const ROUNDS: usize = 3;

/// One generated module and what was measured for it.
struct Row {
    name: &'static str,
    seed: u32,
    key: ModuleHash,
    wasm_len: usize,
    artifact_len: usize,
    compile: Duration,
    pack_first: Duration,
    pack_again: Duration,
    file: Duration,
}

/// Runs `wasmpak demo`.
pub fn run() -> Result<(), CliError> {
    let dir = tempfile::Builder::new()
        .prefix("wasmpak-demo-")
        .tempdir()
        .map_err(|e| CliError::new(format!("cannot create a temporary directory: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let engine = Engine::default();
    say!(
        "wasmpak demo: {} generated modules compiled by cranelift for {}, cached in a temporary \
         directory; load times are the median of {ROUNDS} fresh loads\n",
        SAMPLES.len(),
        engine.target().triple()
    )?;
    let failed =
        |what: &str, e: &dyn std::fmt::Display| CliError::new(format!("demo: {what}: {e}"));

    let pack_dir = dir.path().join("pack");
    let files_dir = dir.path().join("files");
    let mut rows = Vec::new();
    let mut pack_again = [Duration::ZERO; SAMPLES.len()];
    let open = runtime.block_on(async {
        // Compile and save, as the CI side does once.
        let writer = PackCache::builder(&pack_dir).auto_compact(false).build();
        let files = FileSystemCache::new(&files_dir);
        for (i, sample) in SAMPLES.iter().enumerate() {
            let seed = 1000 + i as u32;
            let wasm = wasmer::wat2wasm(module_wat(seed, sample.functions, sample.ops).as_bytes())
                .map_err(|e| failed("generating a module", &e))?
                .into_owned();
            let key = ModuleHash::new(&wasm);
            let started = Instant::now();
            let module = Module::new(&engine, &wasm).map_err(|e| failed("compiling", &e))?;
            let compile = started.elapsed();
            let artifact_len = module
                .serialize()
                .map_err(|e| failed("serializing", &e))?
                .len();
            writer
                .save(key, &engine, &module)
                .await
                .map_err(|e| failed("saving to the pack", &e))?;
            files
                .save(key, &engine, &module)
                .await
                .map_err(|e| failed("saving a file", &e))?;
            rows.push(Row {
                name: sample.name,
                seed,
                key,
                wasm_len: wasm.len(),
                artifact_len,
                compile,
                pack_first: Duration::ZERO,
                pack_again: Duration::ZERO,
                file: Duration::ZERO,
            });
        }

        // Load, as every node does at startup: a fresh cache is a fresh process. Rounds
        // alternate which of the two goes first and the median is kept, so that one-time costs
        // (the first blocking thread, the allocator's first large mapping) favour neither.
        let mut open = Duration::MAX;
        let mut pack_times = vec![Vec::new(); rows.len()];
        let mut file_times = vec![Vec::new(); rows.len()];
        for round in 0..ROUNDS {
            let reader = PackCache::new(&pack_dir);
            let started = Instant::now();
            reader
                .contains(ModuleHash::new(b"warm-up"), &engine)
                .await
                .map_err(|e| failed("opening the pack", &e))?;
            open = open.min(started.elapsed());
            let files = FileSystemCache::new(&files_dir);
            for (i, row) in rows.iter().enumerate() {
                for pack_turn in [round % 2 == 0, round % 2 == 1] {
                    let started = Instant::now();
                    let module = if pack_turn {
                        reader.load(row.key, &engine).await
                    } else {
                        files.load(row.key, &engine).await
                    }
                    .map_err(|e| failed("loading", &e))?;
                    let took = started.elapsed();
                    if pack_turn {
                        pack_times[i].push(took);
                    } else {
                        file_times[i].push(took);
                    }
                    check_answer(&engine, &module, row)?;
                }
                if round == ROUNDS - 1 {
                    let started = Instant::now();
                    for _ in 0..REPEATS {
                        reader
                            .load(row.key, &engine)
                            .await
                            .map_err(|e| failed("loading from the pack", &e))?;
                    }
                    pack_again[i] = started.elapsed() / REPEATS;
                }
            }
        }
        for (i, row) in rows.iter_mut().enumerate() {
            row.pack_first = median(&mut pack_times[i]);
            row.file = median(&mut file_times[i]);
            row.pack_again = pack_again[i];
        }
        Ok::<Duration, CliError>(open)
    })?;

    let mut table = Table::new(&[
        ("MODULE", Align::Left),
        ("WASM", Align::Right),
        ("ARTIFACT", Align::Right),
        ("COMPILE", Align::Right),
        ("PACK FIRST LOAD", Align::Right),
        ("PACK REPEATED", Align::Right),
        ("FILE PER MODULE", Align::Right),
    ]);
    for row in &rows {
        table.row(vec![
            row.name.to_string(),
            output::bytes(row.wasm_len as u64),
            output::bytes(row.artifact_len as u64),
            output::duration(row.compile),
            output::duration(row.pack_first),
            output::duration(row.pack_again),
            output::duration(row.file),
        ]);
    }
    let total = |f: fn(&Row) -> Duration| rows.iter().map(f).sum::<Duration>();
    let (compile, pack, file) = (
        total(|r| r.compile),
        total(|r| r.pack_first),
        total(|r| r.file),
    );
    table.row(vec![
        "total".to_string(),
        output::bytes(rows.iter().map(|r| r.wasm_len as u64).sum()),
        output::bytes(rows.iter().map(|r| r.artifact_len as u64).sum()),
        output::duration(compile),
        output::duration(pack),
        output::duration(total(|r| r.pack_again)),
        output::duration(file),
    ]);
    say!("{}\n", table.render())?;

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let versus_files = if pack <= file {
        format!("{:.1}x faster than one file per module", ratio(file, pack))
    } else {
        format!(
            "{:.1}x slower than one file per module, as it checks a CRC-32 of every byte \
             before wasmer reads it",
            ratio(pack, file)
        )
    };
    say!(
        "first load from the pack: {:.0}x faster than compiling, {versus_files}",
        ratio(compile, pack)
    )?;
    say!(
        "opening the pack took {} (once per process); repeated loads come from the in-process \
         memo; every loaded module ran and answered correctly",
        output::duration(open)
    )?;
    let path = dir.path().to_path_buf();
    dir.close()
        .map_err(|e| CliError::new(format!("cannot remove {}: {e}", path.display())))?;
    say!("removed the temporary directory")
}

/// The middle value.
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Runs the module's `answer` export, which returns the seed it was generated with.
fn check_answer(engine: &Engine, module: &Module, row: &Row) -> Result<(), CliError> {
    let mut store = Store::new(engine.clone());
    let wrong = |e: &dyn std::fmt::Display| {
        CliError::new(format!("demo: the {} module does not run: {e}", row.name))
    };
    let instance =
        Instance::new(&mut store, module, &wasmer::imports! {}).map_err(|e| wrong(&e))?;
    let answer = instance
        .exports
        .get_typed_function::<(), i32>(&store, "answer")
        .map_err(|e| wrong(&e))?
        .call(&mut store)
        .map_err(|e| wrong(&e))?;
    if answer != row.seed as i32 {
        return Err(wrong(&format!(
            "answer() returned {answer}, expected {}",
            row.seed
        )));
    }
    Ok(())
}

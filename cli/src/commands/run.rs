//! `wasmpak run`: the path a runtime takes, then the program itself.
//!
//! Key the input's bytes, look the key up in the pack and deserialize (a hit), or compile and
//! save (a miss, or an entry that is damaged or refused by wasmer: the runtime must never be
//! stuck on a bad entry). Then, like `wasmer run`: a WASI command runs with its arguments,
//! environment, directories and the tool's own standard streams, and its exit code becomes
//! the tool's (`run/wasi.rs`); `--invoke FUNC` calls an exported function instead
//! (`run/invoke.rs`); a module that is neither gets its exported functions listed.
//!
//! Status lines (hit or miss, what was stubbed) go to stderr: stdout belongs to the results and
//! to the program. Everything the command line gets wrong is found before the pack is touched.

mod invoke;
mod wasi;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use wasmer::{Engine, ExternType, Module};
use wasmpak::{CacheErrorKind, EngineIdentity, ModuleCache, ModuleHash, Pack, PackCache};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, deserialize_detail};
use crate::input::Input;
use crate::open;
use crate::output::{self, tell};
use crate::resolve::resolve;

/// Arguments of `wasmpak run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to load from, which a miss saves into (it must exist, unless --create); a
    /// directory: the pack in it named for the engine, as a PackCache uses it there
    #[arg(value_name = "PACK|DIR")]
    pub pack: PathBuf,
    /// The module: a .wasm or .wat file, keyed by its bytes as a runtime would; or, if no such
    /// file exists, an entry of the pack by label, key or key prefix (its wasm need not be at
    /// hand)
    #[arg(value_name = "MODULE|LABEL|KEY")]
    pub input: PathBuf,
    /// Never write: load from the pack or compile, and save nothing
    #[arg(long, conflicts_with = "create")]
    pub no_save: bool,
    /// Create the pack if it does not exist (a miss then saves into it)
    #[arg(long)]
    pub create: bool,
    /// Call this exported function (imports stubbed) instead of running a WASI program
    #[arg(long, value_name = "FUNC")]
    pub invoke: Option<String>,
    /// Set an environment variable for the WASI program (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Give the WASI program a host directory, at GUEST (an absolute path; default: the host
    /// directory's absolute path) (repeatable)
    #[arg(long = "dir", value_name = "HOST[:GUEST]")]
    pub dirs: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The WASI program's arguments (after `--` if they start with `-`), or FUNC's arguments,
    /// converted to its parameter types (i32, i64, f32, f64)
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    pub args: Vec<String>,
}

/// What the pack had for the input.
enum Lookup {
    Hit(Module),
    Miss,
    /// An entry the runtime must not use: damaged, or refused by wasmer.
    Unusable(String),
}

/// What to do with the module once it is loaded.
enum Action<'a> {
    Invoke(&'a str, Vec<wasmer::Value>),
    Wasi,
    ListExports,
}

/// The module to run: a file, or an entry of the pack whose wasm is not at hand.
enum Source {
    File(Input),
    Entry { key: wasmpak::Key, label: String },
}

impl Source {
    fn key(&self) -> wasmpak::Key {
        match self {
            Source::File(input) => input.key,
            Source::Entry { key, .. } => *key,
        }
    }

    fn label(&self) -> &str {
        match self {
            Source::File(input) => &input.label,
            Source::Entry { label, .. } => label,
        }
    }
}

/// The report `run --json` writes to stderr, where the status line goes otherwise.
#[derive(Serialize)]
struct Report {
    pack: String,
    key: String,
    label: String,
    /// `hit`, `miss` or `unusable` (an entry the runtime must not use: compiled again).
    lookup: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    lookup_nanos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    compile_nanos: Option<u64>,
    /// Whether the compiled module was saved into the pack.
    saved: bool,
    /// Why not, when a miss was not saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_saved: Option<String>,
    /// Whether the use was recorded in the recency sidecar.
    use_recorded: bool,
}

/// Runs `wasmpak run`; returns the exit code (the WASI program's, else 0).
pub fn run(ctx: &Context, args: Args) -> Result<u32, CliError> {
    let mut engine = engine::build(&args.engine, None)?;
    let pack_path = open::pack_path(&args.pack, &EngineIdentity::of(&engine));
    if args.engine.cpu_features.is_none()
        && let Some(adopted) = engine::for_compatible_pack(ctx, &pack_path, &engine, &args.engine)?
    {
        engine = adopted;
    }
    let identity = EngineIdentity::of(&engine).to_pack_identity();
    let wasi_options = wasi::Options::parse(&args.env, &args.dirs)?;
    let pack_shown = pack_path.display();

    let started = Instant::now();
    let pack = open::existing_for(ctx, &pack_path, &identity, open::Purpose::Run)?;
    if pack.is_none() && !args.create {
        let hint = if args.no_save {
            "name an existing pack"
        } else {
            "pass --create to create it, or name an existing pack"
        };
        return Err(CliError::failed(format!(
            "pack {pack_shown} does not exist; {hint}"
        )));
    }
    let source = source(pack.as_ref(), &args.input)?;
    // A pack named for its engine in its directory is one a PackCache uses: loading through
    // one records the use in the recency sidecar, as a runtime's load does.
    let cache = (!args.no_save && cache_named(&pack_path, &engine))
        .then(|| pack_path.parent())
        .flatten()
        .map(|dir| {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            ctx.pack_cache(dir).auto_compact(false).build()
        });
    let lookup = match (&pack, &cache) {
        (None, _) => Lookup::Miss,
        (Some(_), Some(cache)) => cached_lookup(cache, &source, &engine)?,
        (Some(pack), None) => lookup(pack, &source, &engine)?,
    };
    let lookup_took = started.elapsed();

    let (module, compiled) = match lookup {
        Lookup::Hit(module) => (module, None),
        Lookup::Miss | Lookup::Unusable(_) => {
            let Source::File(input) = &source else {
                let why = match &lookup {
                    Lookup::Unusable(why) => why.clone(),
                    _ => "it is not in the pack".to_string(),
                };
                return Err(CliError::failed(format!(
                    "cannot run entry {} of pack {pack_shown}: {why}; its wasm is not at hand \
                     to compile: run the module file, or rebuild the pack",
                    source.label()
                )));
            };
            let (lookup_word, why) = match &lookup {
                Lookup::Unusable(why) => ("unusable", format!("its entry is unusable ({why})")),
                _ => ("miss", "not in the pack".to_string()),
            };
            let compile_started = Instant::now();
            let module = input.compile(&engine)?;
            (module, Some((lookup_word, why, compile_started.elapsed())))
        }
    };
    let label = source.label().to_string();
    // Refuse a command line that does not fit the module before the pack is written.
    let action = action(&args, &module, &label, &wasi_options)?;
    let mut report = Report {
        pack: pack_shown.to_string(),
        key: source.key().to_string(),
        label: label.clone(),
        lookup: "hit",
        reason: None,
        lookup_nanos: lookup_took.as_nanos() as u64,
        compile_nanos: None,
        saved: false,
        not_saved: None,
        use_recorded: cache.is_some(),
    };
    match (&compiled, &source) {
        (None, _) => {
            if !ctx.json {
                tell!(
                    "hit   {label}: loaded from {pack_shown} in {}",
                    output::duration(lookup_took)
                );
            }
        }
        (Some((word, why, compile_took)), Source::File(input)) => {
            let saved = if args.no_save {
                Err("--no-save".to_string())
            } else {
                save(
                    ctx,
                    cache.as_ref(),
                    &pack_path,
                    &identity,
                    input,
                    &module,
                    &engine,
                )
            };
            report.lookup = word;
            report.reason = Some(why.clone());
            report.compile_nanos = Some(compile_took.as_nanos() as u64);
            report.saved = saved.is_ok();
            report.use_recorded &= saved.is_ok();
            let said = match &saved {
                Ok(len) => format!("saved to {pack_shown} ({})", output::bytes(*len)),
                Err(why) => format!("not saved: {why}"),
            };
            report.not_saved = saved.err();
            if !ctx.json {
                tell!(
                    "miss  {label}: {why}; looked up in {}, compiled in {}, {said}",
                    output::duration(lookup_took),
                    output::duration(*compile_took),
                );
            }
        }
        (Some(_), Source::Entry { .. }) => unreachable!("an entry is compiled only from a file"),
    }
    // The cache records the use when its last handle goes.
    drop(cache);
    if ctx.json {
        tell!("{}", serde_json::to_string(&report).unwrap_or_default());
    }

    match action {
        Action::Invoke(name, values) => {
            invoke::call(&engine, &module, &label, name, &values, !ctx.json)?;
            Ok(0)
        }
        Action::Wasi => wasi::run(&engine, module, &label, &args.args, wasi_options),
        Action::ListExports => {
            invoke::list(&engine, &module, &label)?;
            Ok(0)
        }
    }
}

/// The module `input` names: the file if there is one, else the pack's entry by label, key
/// or key prefix (as `rm` and `extract` resolve names).
fn source(pack: Option<&Pack>, input: &Path) -> Result<Source, CliError> {
    if input.exists() {
        return Ok(Source::File(Input::read(input)?));
    }
    let Some(pack) = pack else {
        return Input::read(input).map(Source::File);
    };
    let name = input.to_string_lossy();
    let entries: Vec<_> = pack.iter()?.collect();
    match resolve(pack, &entries, &name) {
        Ok(entry) => Ok(Source::Entry {
            key: *entry.key(),
            label: entry.label().to_string(),
        }),
        // Neither a file nor an entry: the message names both.
        Err(_) => Err(CliError::failed(format!(
            "{name}: no such module file, and pack {} has no entry with that key or label",
            pack.path().display()
        ))),
    }
}

/// Whether `path` is the pack a `PackCache` in its directory uses for `engine`.
fn cache_named(path: &Path, engine: &Engine) -> bool {
    path.file_name()
        .is_some_and(|name| *name == *EngineIdentity::of(engine).pack_file_name())
}

/// Looks the module up through `cache`, which records the use (a damaged entry is a miss
/// there, as in every runtime using the cache).
fn cached_lookup(cache: &PackCache, source: &Source, engine: &Engine) -> Result<Lookup, CliError> {
    let hash = module_hash(source.key());
    match block_on(cache.load(hash, engine))? {
        Ok(module) => Ok(Lookup::Hit(module)),
        Err(e) if e.kind() == CacheErrorKind::NotFound => Ok(Lookup::Miss),
        Err(e) => Err(e.into()),
    }
}

/// Runs a cache's future on a runtime of its own (the cache runs blocking work on its
/// blocking pool).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

fn module_hash(key: wasmpak::Key) -> ModuleHash {
    ModuleHash::from_bytes(*key.as_bytes())
}

/// Decides what to do with `module`, or says why the command line does not fit it.
fn action<'a>(
    args: &'a Args,
    module: &Module,
    label: &str,
    wasi_options: &wasi::Options,
) -> Result<Action<'a>, CliError> {
    if let Some(name) = &args.invoke {
        if !wasi_options.is_empty() {
            return Err(CliError::usage(
                "--env and --dir are for WASI programs; --invoke calls a function with stubbed \
                 imports",
            ));
        }
        let values = invoke::prepare(module, label, name, &args.args)?;
        return Ok(Action::Invoke(name, values));
    }
    if is_wasi_command(module) {
        wasi::check_available(label)?;
        return Ok(Action::Wasi);
    }
    if !args.args.is_empty() || !wasi_options.is_empty() {
        let given = if args.args.is_empty() {
            "--env or --dir given".to_string()
        } else {
            format!("arguments given ({})", args.args.join(" "))
        };
        return Err(CliError::usage(format!(
            "{given}, but {label} is not a WASI program (no _start export, no WASI imports): \
             call one of its functions with --invoke FUNC"
        )));
    }
    Ok(Action::ListExports)
}

/// Whether `module` is a WASI command: it exports `_start` or imports a WASI namespace.
fn is_wasi_command(module: &Module) -> bool {
    let starts = module
        .exports()
        .any(|e| e.name() == "_start" && matches!(e.ty(), ExternType::Function(_)));
    starts
        || module
            .imports()
            .any(|i| i.module().starts_with("wasi_") || i.module().starts_with("wasix_"))
}

/// Looks the module up in the pack and deserializes it (through the library's checks: the
/// engine can load the pack's identity, the bytes are what was written).
fn lookup(pack: &Pack, source: &Source, engine: &Engine) -> Result<Lookup, CliError> {
    let error = match wasmpak::load_module(pack, &source.key(), engine) {
        Ok(module) => return Ok(Lookup::Hit(module)),
        Err(error) => error,
    };
    match error.kind() {
        CacheErrorKind::NotFound => Ok(Lookup::Miss),
        CacheErrorKind::Corrupt => Ok(Lookup::Unusable(error.to_string())),
        CacheErrorKind::Deserialize => Ok(Lookup::Unusable(format!(
            "wasmer refused it: {}",
            deserialize_detail(&error)
        ))),
        _ => Err(error.into()),
    }
}

/// Saves a freshly compiled module, as a runtime would after a miss (through `cache` when the
/// pack is one a cache uses, so the use is recorded). Returns the artifact's size, or why it
/// was not saved: failing to save is reported, not fatal, as in a runtime with a read-only
/// cache.
fn save(
    ctx: &Context,
    cache: Option<&PackCache>,
    path: &Path,
    identity: &wasmpak::PackIdentity,
    input: &Input,
    module: &Module,
    engine: &Engine,
) -> Result<u64, String> {
    let result = module
        .serialize()
        .map_err(|e| CliError::failed(format!("cannot serialize: {e}")))
        .and_then(|bytes| {
            match cache {
                Some(cache) => {
                    wasmpak::fs::remove_leftovers(path);
                    block_on(cache.save(module_hash(input.key), engine, module))??;
                }
                None => {
                    let pack = open::or_create(ctx, path, identity, open::Purpose::Run)?;
                    pack.insert_with_label(&input.key, &bytes, &input.label)?;
                }
            }
            Ok(bytes.len() as u64)
        });
    result.map_err(|e| e.to_string())
}

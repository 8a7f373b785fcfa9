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

use std::path::PathBuf;
use std::time::Instant;

use wasmer::{Engine, ExternType, Module};
use wasmpak::{CacheErrorKind, EngineIdentity, Pack};

use crate::context::Context;
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, deserialize_detail};
use crate::input::Input;
use crate::open;
use crate::output::{self, tell};

/// Arguments of `wasmpak run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to load from (created on the first miss)
    pub pack: PathBuf,
    /// The module: .wasm or .wat, keyed by its bytes as a runtime would
    pub input: PathBuf,
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

/// Runs `wasmpak run`; returns the exit code (the WASI program's, else 0).
pub fn run(ctx: &Context, args: Args) -> Result<u32, CliError> {
    let mut engine = engine::build(&args.engine, None)?;
    if args.engine.cpu_features.is_none()
        && let Some(adopted) = engine::for_compatible_pack(ctx, &args.pack, &engine, &args.engine)?
    {
        engine = adopted;
    }
    let identity = EngineIdentity::of(&engine).to_pack_identity();
    let input = Input::read(&args.input)?;
    let wasi_options = wasi::Options::parse(&args.env, &args.dirs)?;
    let pack_shown = args.pack.display();

    let started = Instant::now();
    let pack = open::existing_for(ctx, &args.pack, &identity, open::Purpose::Run)?;
    let lookup = match &pack {
        None => Lookup::Miss,
        Some(pack) => lookup(pack, &input, &engine)?,
    };
    let lookup_took = started.elapsed();

    let (module, compiled) = match lookup {
        Lookup::Hit(module) => (module, None),
        Lookup::Miss | Lookup::Unusable(_) => {
            let why = match &lookup {
                Lookup::Unusable(why) => format!("its entry is unusable ({why})"),
                _ => "not in the pack".to_string(),
            };
            let compile_started = Instant::now();
            let module = input.compile(&engine)?;
            (module, Some((why, compile_started.elapsed())))
        }
    };
    // Refuse a command line that does not fit the module before the pack is written.
    let action = action(&args, &module, &input.label, &wasi_options)?;
    match compiled {
        None => tell!(
            "hit   {}: loaded from {pack_shown} in {}",
            input.label,
            output::duration(lookup_took)
        ),
        Some((why, compile_took)) => {
            let saved = save(ctx, &args.pack, &identity, &input, &module);
            tell!(
                "miss  {}: {why}; looked up in {}, compiled in {}, {saved}",
                input.label,
                output::duration(lookup_took),
                output::duration(compile_took),
            );
        }
    }

    match action {
        Action::Invoke(name, values) => {
            invoke::call(&engine, &module, &input.label, name, &values)?;
            Ok(0)
        }
        Action::Wasi => wasi::run(&engine, module, &input.label, &args.args, wasi_options),
        Action::ListExports => {
            invoke::list(&engine, &module, &input.label)?;
            Ok(0)
        }
    }
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

/// Looks the input up in the pack and deserializes it (through the library's checks: the
/// engine can load the pack's identity, the bytes are what was written).
fn lookup(pack: &Pack, input: &Input, engine: &Engine) -> Result<Lookup, CliError> {
    let error = match wasmpak::load_module(pack, &input.key, engine) {
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

/// Saves a freshly compiled module, as a runtime would after a miss. Failing to save is
/// reported, not fatal: the module still runs, as it would in a runtime with a read-only
/// cache.
fn save(
    ctx: &Context,
    path: &std::path::Path,
    identity: &wasmpak::PackIdentity,
    input: &Input,
    module: &Module,
) -> String {
    let result = module
        .serialize()
        .map_err(|e| CliError::failed(format!("cannot serialize: {e}")))
        .and_then(|bytes| {
            let pack = open::or_create(ctx, path, identity, open::Purpose::Run)?;
            pack.insert_with_label(&input.key, &bytes, &input.label)?;
            Ok(bytes.len() as u64)
        });
    match result {
        Ok(len) => format!("saved to {} ({})", path.display(), output::bytes(len)),
        Err(e) => format!("not saved: {e}"),
    }
}

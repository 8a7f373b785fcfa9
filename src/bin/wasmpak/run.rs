//! `wasmpak run`: the path a runtime takes, shown step by step.
//!
//! Key the input's bytes, look the key up in the pack and deserialize (a hit), or compile and
//! save (a miss, or an entry that is damaged or refused by wasmer: the runtime must never be
//! stuck on a bad entry), then instantiate and optionally call a function. Imports are stubbed
//! so that most modules instantiate: functions return zeros, memories, tables and globals are
//! created empty or zero.

use std::path::PathBuf;
use std::time::Instant;

use wasmer::{
    Engine, ExternType, Function, FunctionType, Global, Imports, Instance, Memory, Module,
    Mutability, Store, Table, Type, Value,
};
use wasmpak::{EngineIdentity, ErrorKind, Pack};

use crate::artifact::{self, LoadError};
use crate::engine::{self, EngineArgs};
use crate::error::{CliError, one_line};
use crate::input::Input;
use crate::open;
use crate::output::{self, say};

/// Arguments of `wasmpak run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pack to load from (created on the first miss)
    pub pack: PathBuf,
    /// The module: .wasm or .wat, keyed by its bytes as a runtime would
    pub input: PathBuf,
    /// An exported function to call after instantiating
    #[arg(long, value_name = "FUNC")]
    pub invoke: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Arguments for FUNC, converted to its parameter types (i32, i64, f32, f64)
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

/// Runs `wasmpak run`.
pub fn run(args: Args) -> Result<(), CliError> {
    if !args.args.is_empty() && args.invoke.is_none() {
        return Err(CliError::usage(format!(
            "arguments given ({}) but no --invoke FUNC to pass them to",
            args.args.join(" ")
        )));
    }
    let engine = engine::build(&args.engine, None)?;
    let identity = EngineIdentity::of(&engine).to_pack_identity();
    let input = Input::read(&args.input)?;
    let pack_shown = args.pack.display();

    let started = Instant::now();
    let pack = open::existing_for(&args.pack, &identity, open::Purpose::Run)?;
    let lookup = match &pack {
        None => Lookup::Miss,
        Some(pack) => lookup(pack, &input, &engine)?,
    };
    let lookup_took = started.elapsed();

    let module = match lookup {
        Lookup::Hit(module) => {
            say!(
                "hit   {}: loaded from {pack_shown} in {}",
                input.label,
                output::duration(lookup_took)
            )?;
            module
        }
        Lookup::Miss | Lookup::Unusable(_) => {
            let why = match &lookup {
                Lookup::Unusable(why) => format!("its entry is unusable ({why})"),
                _ => "not in the pack".to_string(),
            };
            let compile_started = Instant::now();
            let module = input.compile(&engine)?;
            let compiled = compile_started.elapsed();
            let saved = save(&args.pack, &identity, &input, &module);
            say!(
                "miss  {}: {why}; looked up in {}, compiled in {}, {saved}",
                input.label,
                output::duration(lookup_took),
                output::duration(compiled),
            )?;
            module
        }
    };

    let mut store = Store::new(engine.clone());
    let (imports, stubbed) = stub_imports(&mut store, &module)?;
    if !stubbed.is_empty() {
        say!(
            "stubbed {}: {}",
            output::count(stubbed.len() as u64, "import", "imports"),
            stubbed.join(", ")
        )?;
    }
    let instance = Instance::new(&mut store, &module, &imports).map_err(|e| {
        CliError::new(format!(
            "cannot instantiate {}: {}",
            input.path.display(),
            one_line(&e.to_string())
        ))
    })?;

    let Some(name) = &args.invoke else {
        let exports: Vec<String> = module
            .exports()
            .filter_map(|export| match export.ty() {
                ExternType::Function(ty) => Some(format!("{}{}", export.name(), signature(ty))),
                _ => None,
            })
            .collect();
        return say!(
            "exported functions: {}",
            if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            }
        );
    };
    let function = instance.exports.get_function(name).map_err(|_| {
        let functions: Vec<String> = module
            .exports()
            .filter(|e| matches!(e.ty(), ExternType::Function(_)))
            .map(|e| e.name().to_string())
            .collect();
        CliError::usage(format!(
            "{} exports no function {name:?} (it exports: {})",
            input.label,
            if functions.is_empty() {
                "no functions".to_string()
            } else {
                functions.join(", ")
            }
        ))
    })?;
    let ty = function.ty(&store);
    let values = parse_args(name, &ty, &args.args)?;
    let results = function
        .call(&mut store, &values)
        .map_err(|e| CliError::new(format!("{name} trapped: {}", one_line(&e.message()))))?;
    for value in results.iter() {
        say!("{}", show(value))?;
    }
    Ok(())
}

/// Looks the input up in the pack and deserializes it.
fn lookup(pack: &Pack, input: &Input, engine: &Engine) -> Result<Lookup, CliError> {
    match artifact::load(pack, &input.key, engine) {
        Ok(module) => Ok(Lookup::Hit(module)),
        Err(LoadError::Missing) => Ok(Lookup::Miss),
        Err(LoadError::Pack(e)) if e.kind() == ErrorKind::Corrupt => {
            Ok(Lookup::Unusable(e.to_string()))
        }
        Err(LoadError::Pack(e)) => Err(e.into()),
        Err(LoadError::Wasmer(e)) => Ok(Lookup::Unusable(format!(
            "wasmer refused it: {}",
            one_line(&e.to_string())
        ))),
    }
}

/// Saves a freshly compiled module, as a runtime would after a miss. Failing to save is
/// reported, not fatal: the module still runs, as it would in a runtime with a read-only
/// cache.
fn save(
    path: &std::path::Path,
    identity: &wasmpak::PackIdentity,
    input: &Input,
    module: &Module,
) -> String {
    let result = module
        .serialize()
        .map_err(|e| CliError::new(format!("cannot serialize: {e}")))
        .and_then(|bytes| {
            let pack = open::or_create(path, identity, open::Purpose::Run)?;
            pack.insert_with_label(&input.key, &bytes, &input.label)?;
            Ok(bytes.len() as u64)
        });
    match result {
        Ok(len) => format!("saved to {} ({})", path.display(), output::bytes(len)),
        Err(e) => format!("not saved: {e}"),
    }
}

/// Imports for every import of `module`: zero-returning functions, fresh memories and tables,
/// zero globals. Returns them with the names stubbed (`module.name`).
fn stub_imports(store: &mut Store, module: &Module) -> Result<(Imports, Vec<String>), CliError> {
    let mut imports = Imports::new();
    let mut names = Vec::new();
    for import in module.imports() {
        let name = format!("{}.{}", import.module(), import.name());
        let cannot = |what: &str, why: String| {
            CliError::new(format!(
                "cannot stub import {name} ({what}): {}",
                one_line(&why)
            ))
        };
        let stub: wasmer::Extern = match import.ty() {
            ExternType::Function(ty) => {
                let results: Vec<Value> = ty.results().iter().map(|t| zero(*t)).collect();
                Function::new(store, ty.clone(), move |_| Ok(results.clone())).into()
            }
            ExternType::Memory(ty) => Memory::new(store, *ty)
                .map_err(|e| cannot("memory", e.to_string()))?
                .into(),
            ExternType::Table(ty) => Table::new(store, *ty, zero(ty.ty))
                .map_err(|e| cannot("table", e.message()))?
                .into(),
            ExternType::Global(ty) => match ty.mutability {
                Mutability::Var => Global::new_mut(store, zero(ty.ty)).into(),
                Mutability::Const => Global::new(store, zero(ty.ty)).into(),
            },
            ExternType::Tag(_) => {
                return Err(cannot(
                    "tag",
                    "exception tags cannot be stubbed".to_string(),
                ));
            }
        };
        imports.define(import.module(), import.name(), stub);
        names.push(name);
    }
    Ok((imports, names))
}

/// The zero (or null) value of a type.
fn zero(ty: Type) -> Value {
    match ty {
        Type::I32 => Value::I32(0),
        Type::I64 => Value::I64(0),
        Type::F32 => Value::F32(0.0),
        Type::F64 => Value::F64(0.0),
        Type::V128 => Value::V128(0),
        Type::ExternRef => Value::ExternRef(None),
        Type::FuncRef => Value::FuncRef(None),
        Type::ExceptionRef => Value::ExceptionRef(None),
    }
}

/// Converts the command-line arguments to `ty`'s parameters.
fn parse_args(name: &str, ty: &FunctionType, args: &[String]) -> Result<Vec<Value>, CliError> {
    let params = ty.params();
    if params.len() != args.len() {
        return Err(CliError::usage(format!(
            "{name}{} takes {}, {} given",
            signature(ty),
            output::count(params.len() as u64, "argument", "arguments"),
            args.len()
        )));
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (ty, text))| {
            parse_value(*ty, text).ok_or_else(|| {
                CliError::usage(format!(
                    "argument {} of {name} must be {}, got {text:?}",
                    i + 1,
                    type_name(*ty)
                ))
            })
        })
        .collect()
}

/// Parses one argument: decimal (signed or unsigned) or `0x` hex for integers.
fn parse_value(ty: Type, text: &str) -> Option<Value> {
    let hex = |t: &str| {
        t.strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
    };
    match ty {
        Type::I32 => text
            .parse::<i32>()
            .ok()
            .or_else(|| text.parse::<u32>().ok().map(|v| v as i32))
            .or_else(|| {
                hex(text)
                    .and_then(|v| u32::try_from(v).ok())
                    .map(|v| v as i32)
            })
            .map(Value::I32),
        Type::I64 => text
            .parse::<i64>()
            .ok()
            .or_else(|| text.parse::<u64>().ok().map(|v| v as i64))
            .or_else(|| hex(text).map(|v| v as i64))
            .map(Value::I64),
        Type::F32 => text.parse::<f32>().ok().map(Value::F32),
        Type::F64 => text.parse::<f64>().ok().map(Value::F64),
        _ => None,
    }
}

/// A result value as text.
fn show(value: &Value) -> String {
    match value {
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::V128(v) => format!("0x{v:032x}"),
        Value::ExternRef(r) => if r.is_some() { "externref" } else { "null" }.to_string(),
        Value::FuncRef(r) => if r.is_some() { "funcref" } else { "null" }.to_string(),
        Value::ExceptionRef(r) => if r.is_some() { "exnref" } else { "null" }.to_string(),
    }
}

/// `(i32, i64) -> f32`, the way people write signatures.
fn signature(ty: &FunctionType) -> String {
    let list = |types: &[Type]| {
        types
            .iter()
            .map(|t| type_name(*t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ty.results() {
        [] => format!("({})", list(ty.params())),
        [one] => format!("({}) -> {}", list(ty.params()), type_name(*one)),
        many => format!("({}) -> ({})", list(ty.params()), list(many)),
    }
}

/// A value type as WAT spells it.
fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::I32 => "i32",
        Type::I64 => "i64",
        Type::F32 => "f32",
        Type::F64 => "f64",
        Type::V128 => "v128",
        Type::ExternRef => "externref",
        Type::FuncRef => "funcref",
        Type::ExceptionRef => "exnref",
    }
}

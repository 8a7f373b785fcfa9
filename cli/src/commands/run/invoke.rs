//! `wasmpak run --invoke FUNC ARGS...`: instantiate a module with stubbed imports and call one
//! of its functions.
//!
//! Imports are stubbed so that most modules instantiate: functions return zeros, memories,
//! tables and globals are created empty or zero. Results go to stdout, one per line; what was
//! stubbed is a status line on stderr.

use wasmer::{
    Engine, ExternType, Function, FunctionType, Global, Imports, Instance, Memory, Module,
    Mutability, Store, Table, Type, Value,
};

use crate::error::{CliError, one_line};
use crate::output::{self, say, tell};

/// Checks that `module` exports a function `name` and converts `args` to its parameters,
/// before anything is saved or run.
pub fn prepare(
    module: &Module,
    label: &str,
    name: &str,
    args: &[String],
) -> Result<Vec<Value>, CliError> {
    let ty = module.exports().find_map(|e| match e.ty() {
        ExternType::Function(ty) if e.name() == name => Some(ty.clone()),
        _ => None,
    });
    let Some(ty) = ty else {
        return Err(CliError::usage(format!(
            "{label} exports no function {name:?} (it exports: {})",
            or_none(function_names(module), "no functions")
        )));
    };
    parse_args(name, &ty, args)
}

/// Instantiates `module` and calls `name` with `values` (from [`prepare`]), printing its
/// results.
pub fn call(
    engine: &Engine,
    module: &Module,
    label: &str,
    name: &str,
    values: &[Value],
) -> Result<(), CliError> {
    let mut store = Store::new(engine.clone());
    let (imports, stubbed) = stub_imports(&mut store, module)?;
    if !stubbed.is_empty() {
        tell!(
            "stubbed {}: {}",
            output::count(stubbed.len() as u64, "import", "imports"),
            stubbed.join(", ")
        );
    }
    let instance = instantiate(&mut store, module, &imports, label)?;
    let function = instance
        .exports
        .get_function(name)
        .map_err(|e| CliError::failed(format!("{label}: {e}")))?;
    let results = function
        .call(&mut store, values)
        .map_err(|e| CliError::failed(format!("{name} trapped: {}", one_line(&e.message()))))?;
    for value in results.iter() {
        say!("{}", show(value))?;
    }
    Ok(())
}

/// Instantiates `module` with every import stubbed and prints its exported functions.
pub fn list(engine: &Engine, module: &Module, label: &str) -> Result<(), CliError> {
    let mut store = Store::new(engine.clone());
    let (imports, _) = stub_imports(&mut store, module)?;
    instantiate(&mut store, module, &imports, label)?;
    let exports: Vec<String> = module
        .exports()
        .filter_map(|export| match export.ty() {
            ExternType::Function(ty) => Some(format!("{}{}", export.name(), signature(ty))),
            _ => None,
        })
        .collect();
    say!("exported functions: {}", or_none(exports, "none"))
}

fn instantiate(
    store: &mut Store,
    module: &Module,
    imports: &Imports,
    label: &str,
) -> Result<Instance, CliError> {
    Instance::new(store, module, imports).map_err(|e| {
        CliError::failed(format!(
            "cannot instantiate {label}: {}",
            one_line(&e.to_string())
        ))
    })
}

fn function_names(module: &Module) -> Vec<String> {
    module
        .exports()
        .filter(|e| matches!(e.ty(), ExternType::Function(_)))
        .map(|e| e.name().to_string())
        .collect()
}

fn or_none(items: Vec<String>, none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
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
            CliError::failed(format!(
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

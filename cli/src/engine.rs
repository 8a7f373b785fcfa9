//! Building the wasmer engine a command compiles or loads with.
//!
//! The engine decides the pack's identity (compiler, artifact format and ABI, target triple,
//! CPU features), so `build` and `run` must build it exactly as a runtime would: with no
//! options, `Engine::default()`, which is what an application using `PackCache` has.

use std::str::FromStr;

use wasmer::sys::{CpuFeature, EngineBuilder, NativeEngineExt, Target, Triple};
use wasmer::{Engine, Module};
use wasmpak::{CpuLevel, EngineIdentity, Incompatibility, PackIdentity};

use crate::context::Context;
use crate::error::CliError;
use crate::open;

/// The compilers `--compiler` names. Singlepass is always listed so that asking for it in a
/// build without it gets an explanation rather than clap's "invalid value".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compiler {
    /// Optimizing; the default, and what `Engine::default()` uses.
    #[default]
    Cranelift,
    /// Compiles fast, runs slower (needs the `singlepass` cargo feature).
    Singlepass,
}

/// Engine options shared by `build` and `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// The compiler
    #[arg(long, value_enum, default_value_t = Compiler::Cranelift)]
    pub compiler: Compiler,
    /// CPU features to compile for: levels and feature names, comma-separated (x86-64-v2,
    /// x86-64-v3, x86-64-v4, armv8-a; sse4.2, avx2, ...). Default: this host's for its own
    /// triple, the architecture's baseline (neon on aarch64, sse2 on x86_64) for another. The
    /// pack loads on every machine whose CPU has at least these features.
    #[arg(long, value_name = "LIST")]
    pub cpu_features: Option<String>,
}

/// The engine for `compiler`, compiling for `triple` (default: this host) and the CPU
/// features in `args`.
pub fn build(args: &EngineArgs, triple: Option<&str>) -> Result<Engine, CliError> {
    let host = Triple::host();
    let triple = match triple {
        None => host.clone(),
        Some(text) => Triple::from_str(text)
            .map_err(|e| CliError::usage(format!("unknown target triple {text:?}: {e}")))?,
    };
    let native = triple.architecture == host.architecture
        && triple.operating_system == host.operating_system;
    let mut features = CpuFeature::set();
    match &args.cpu_features {
        Some(list) => features.extend(parse_features(list)?),
        None if native => features = CpuFeature::for_host(),
        None => features.extend(baseline_features(&triple)),
    }
    if args.compiler == Compiler::Cranelift && native && args.cpu_features.is_none() {
        // Exactly what a runtime gets, so the identities match.
        return Ok(Engine::default());
    }
    check_supported(args.compiler, &triple, features.contains(CpuFeature::SSE2))?;
    let target = Target::new(triple.clone(), features);
    let builder = match args.compiler {
        Compiler::Cranelift => EngineBuilder::new(wasmer::sys::Cranelift::default()),
        Compiler::Singlepass => singlepass()?,
    };
    let engine = Engine::from(builder.set_target(Some(target)));
    // Fail now, not after reading every input, if the compiler cannot emit this target; wasmer
    // panics rather than erring on some configurations.
    let cannot = |why: String| {
        CliError::usage(format!(
            "the {} compiler cannot compile for {triple}: {}",
            args.compiler.name(),
            why
        ))
    };
    crate::panics::catch(|| Module::new(&engine, b"\0asm\x01\0\0\0"))
        .map_err(cannot)?
        .map_err(|e| cannot(e.to_string()))?;
    Ok(engine)
}

impl Compiler {
    /// The name `--compiler` takes.
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Cranelift => "cranelift",
            Compiler::Singlepass => "singlepass",
        }
    }
}

/// Rejects what the compilers cannot do, before wasmer panics on it.
fn check_supported(compiler: Compiler, triple: &Triple, has_sse2: bool) -> Result<(), CliError> {
    let arch = triple.architecture.to_string();
    let known = arch == "x86_64" || arch.starts_with("aarch64") || arch.starts_with("riscv64");
    if !known {
        return Err(CliError::usage(format!(
            "the {} compiler cannot compile for {triple}: architecture {arch} is not supported \
             (supported: x86_64, aarch64, riscv64)",
            compiler.name()
        )));
    }
    if arch == "x86_64" && !has_sse2 {
        return Err(CliError::usage(
            "x86_64 code needs the sse2 CPU feature; add it to --cpu-features",
        ));
    }
    Ok(())
}

/// The singlepass engine builder, in builds that have the compiler.
#[cfg(feature = "singlepass")]
fn singlepass() -> Result<EngineBuilder, CliError> {
    Ok(EngineBuilder::new(wasmer::sys::Singlepass::default()))
}

/// Without the compiler: say how to get it instead of pretending it does not exist.
#[cfg(not(feature = "singlepass"))]
fn singlepass() -> Result<EngineBuilder, CliError> {
    Err(CliError::usage(
        "this wasmpak was built without the singlepass compiler; rebuild it with \
         `--features singlepass`",
    ))
}

/// The features every CPU of the architecture has: what a pack built elsewhere can assume.
fn baseline_features(triple: &Triple) -> Vec<CpuFeature> {
    match triple.architecture.to_string().as_str() {
        "aarch64" => vec![CpuFeature::NEON],
        "x86_64" => vec![CpuFeature::SSE2],
        _ => Vec::new(),
    }
}

/// Parses `--cpu-features`: level names and feature names as wasmer spells them,
/// comma-separated, case-insensitive; the union of everything named. Empty means none.
fn parse_features(list: &str) -> Result<Vec<CpuFeature>, CliError> {
    let mut features = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        if let Some(level) = CpuLevel::named(name) {
            features.extend_from_slice(level.features());
            continue;
        }
        let feature = CpuFeature::from_str(&name.to_ascii_lowercase()).map_err(|_| {
            let levels: Vec<&str> = CpuLevel::all().iter().map(|l| l.name()).collect();
            let known: Vec<String> = CpuFeature::all().iter().map(|f| f.to_string()).collect();
            CliError::usage(format!(
                "unknown CPU feature or level {name:?} (levels: {}; features: {})",
                levels.join(","),
                known.join(",")
            ))
        })?;
        features.push(feature);
    }
    Ok(features)
}

/// For `run` without `--cpu-features`: the engine that loads the pack at `path` when the pack
/// was built for a subset of this engine's CPU features (a pack built in CI for the fleet's
/// baseline level): the same compiler, compiling for exactly the pack's features. Its artifacts
/// then load (wasmer's own superset rule, as `PackCache` applies it), and a module compiled on a
/// miss is saved as one every host the pack serves can load, never as code for this host's
/// extra features. `None` when there is no readable pack there, it has this engine's identity,
/// or this engine cannot load it (opening it then explains why).
pub fn for_compatible_pack(
    ctx: &Context,
    path: &std::path::Path,
    engine: &Engine,
    args: &EngineArgs,
) -> Result<Option<Engine>, CliError> {
    let Ok(pack) = open::any(ctx, path) else {
        return Ok(None);
    };
    let Some(found) = EngineIdentity::from_pack_identity(pack.identity()) else {
        return Ok(None);
    };
    let ours = EngineIdentity::of(engine);
    if found == ours || ours.can_load(&found).is_err() {
        return Ok(None);
    }
    let theirs = EngineArgs {
        compiler: args.compiler,
        cpu_features: Some(found.cpu_features().to_string()),
    };
    let adopted = build(&theirs, None)?;
    Ok((EngineIdentity::of(&adopted) == found).then_some(adopted))
}

/// The identity of this host's default engine: what a runtime with `Engine::default()` has.
pub fn host_identity() -> EngineIdentity {
    EngineIdentity::of(&Engine::default())
}

/// Whether this host's default engine can load artifacts built for `identity` (a wasmer pack
/// identity), and if not, why: another target triple, CPU features this host lacks, or
/// another wasmer artifact format or ABI. This is what separates "cannot check here" from
/// "damaged".
pub fn host_can_load(identity: &PackIdentity) -> Result<(), String> {
    let not_wasmer = || format!("its identity ({identity}) is not a wasmer engine identity");
    let pack = EngineIdentity::from_pack_identity(identity).ok_or_else(not_wasmer)?;
    // Any compiler's artifacts load into an engine of the same format, ABI, target and CPU
    // features, so the compiler is taken to be this host's.
    let host = host_identity();
    let same_compiler = PackIdentity::new()
        .with("engine", host.deterministic_id())
        .with("format", pack.artifact_format())
        .with("abi", pack.abi_version())
        .with("target", pack.target_triple())
        .with("cpu", pack.cpu_features());
    let pack = EngineIdentity::from_pack_identity(&same_compiler).ok_or_else(not_wasmer)?;
    match host.can_load(&pack) {
        Ok(()) => Ok(()),
        Err(Incompatibility::CpuFeatures { missing }) => Err(format!(
            "it was built for CPU features this host lacks: {}",
            missing.join(",")
        )),
        Err(other) => Err(other.to_string().replace("this engine", "this host")),
    }
}

/// An engine without a compiler, for loading artifacts of any compiler built for this host.
pub fn headless() -> Engine {
    Engine::headless()
}

/// An engine without a compiler for `engine`'s target and CPU features: it loads exactly the
/// artifacts `engine` may load, and keeps nothing of another engine's.
pub fn headless_like(engine: &Engine) -> Engine {
    Engine::from(EngineBuilder::headless().set_target(Some(engine.target().clone())))
}

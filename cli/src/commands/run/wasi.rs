//! `wasmpak run` for WASI programs: the options `wasmer run` users know (`--env NAME=VALUE`,
//! `--dir HOST[:GUEST]`, arguments after `--`), checked before anything runs, and the run
//! itself in a wasix runtime (`wasmpak::WasixHost`, with the `wasix` cargo feature).
//!
//! Building wasmer-wasix into the tool is optional (the `wasix` feature): it adds well over a
//! minute to a from-scratch `cargo run --release -- demo` (see docs/CLI.md for the figure). A
//! tool built without it says how to get it when handed a WASI program.

use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};

use crate::error::CliError;

/// The WASI options of the command line, checked.
#[derive(Debug, Default)]
pub struct Options {
    env: Vec<(String, String)>,
    dirs: Vec<(PathBuf, String)>,
}

impl Options {
    /// Parses `--env NAME=VALUE` and `--dir HOST[:GUEST]`. A host directory must exist; the
    /// guest path must be absolute.
    pub fn parse(env: &[String], dirs: &[String]) -> Result<Options, CliError> {
        let env = env
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !name.is_empty() => {
                    Ok((name.to_string(), value.to_string()))
                }
                _ => Err(CliError::usage(format!(
                    "--env takes NAME=VALUE, got {pair:?}"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let dirs = dirs
            .iter()
            .map(|spec| parse_dir(spec))
            .collect::<Result<_, _>>()?;
        Ok(Options { env, dirs })
    }

    /// Whether no WASI option was given.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.dirs.is_empty()
    }
}

/// `HOST[:GUEST]`. The split is at the last `:` followed by `/`, so host paths may contain
/// colons.
fn parse_dir(spec: &str) -> Result<(PathBuf, String), CliError> {
    let (host, guest) = match spec.rfind(":/") {
        Some(at) => (&spec[..at], Some(&spec[at + 1..])),
        None => (spec, None),
    };
    let shown = Path::new(host).display();
    let host = std::fs::canonicalize(host).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::failed(format!("--dir {spec}: directory {shown} does not exist"))
        }
        _ => CliError::failed(format!("--dir {spec}: cannot open {shown}: {e}")),
    })?;
    if !host.is_dir() {
        return Err(CliError::failed(format!(
            "--dir {spec}: {shown} is not a directory"
        )));
    }
    let guest = match guest {
        Some(guest) => guest.to_string(),
        None => host.to_string_lossy().into_owned(),
    };
    Ok((host, guest))
}

/// Fails with the way to get WASI support if this build has none.
pub fn check_available(label: &str) -> Result<(), CliError> {
    if cfg!(feature = "wasix") {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{label} is a WASI program, and this wasmpak was built without WASI support; \
             rebuild it with `--features wasix`, or call a function with --invoke FUNC"
        )))
    }
}

/// Runs `module` as the WASI program `label` with the tool's standard streams; returns its
/// exit code.
#[cfg(feature = "wasix")]
pub fn run(
    engine: &Engine,
    module: Module,
    label: &str,
    args: &[String],
    options: Options,
) -> Result<u32, CliError> {
    use wasmer_wasix::runners::MappedDirectory;
    use wasmer_wasix::runners::wasi::WasiRunner;

    // The module is already loaded: the runtime's own cache is never asked.
    let host = wasmpak::WasixHost::new(engine.clone(), wasmpak::SharedCache::default())
        .map_err(|e| CliError::failed(e.to_string()))?;
    // Mapping directories needs the host's tokio runtime.
    let entered = host.enter();
    let mut runner = WasiRunner::new();
    runner
        .with_args(args)
        .with_envs(options.env)
        .with_mapped_directories(
            options
                .dirs
                .into_iter()
                .map(|(host, guest)| MappedDirectory { host, guest }),
        );
    drop(entered);
    host.run(&runner, label, module)
        .map_err(|e| CliError::failed(e.to_string()))
}

/// Without wasix: [`check_available`] has already refused.
#[cfg(not(feature = "wasix"))]
pub fn run(
    _engine: &Engine,
    _module: Module,
    label: &str,
    _args: &[String],
    _options: Options,
) -> Result<u32, CliError> {
    check_available(label).map(|()| 0)
}

//! `wasmpak`: build, inspect, verify and maintain packs of compiled WebAssembly modules.
//!
//! This file parses the command line (`cli.rs`), dispatches to one module per command
//! (`commands/`), and is the one place where failures are printed and turned into exit codes,
//! so that every command fails the same way: one `error:` line on stderr, a documented exit
//! code, never a panic message or a backtrace.

#![deny(unsafe_code)]

mod cli;
mod commands;
mod context;
mod engine;
mod error;
mod input;
mod interrupt;
mod open;
mod output;
mod panics;
mod progress;
#[cfg(feature = "object-store")]
mod remote;
mod resolve;
mod signing;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{
    build, compact, demo, extract, import, info, install, keygen, list, merge, path, rm, run, sign,
    verify,
};
#[cfg(feature = "object-store")]
use crate::commands::{pull, push};
use crate::context::Context;
use crate::error::{CliError, ErrorKind};

/// Parses the command line, runs the command, and reports its failure.
fn main() -> ExitCode {
    panics::install_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are answers (stdout, 0); anything else is a usage error,
            // which a `--json` command line gets as JSON too.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let json = std::env::args_os().any(|arg| arg == "--json");
            if json {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                let error = CliError::usage(first.trim_start_matches("error: "));
                let _ = output::print_json(&error.to_json());
            }
            let _ = e.print();
            return ExitCode::from(ErrorKind::Usage.exit_code());
        }
    };
    interrupt::install();
    let ctx = Context::new(&cli.global);
    let json = Json::of(&cli.command, &ctx);
    let done = |()| ExitCode::SUCCESS;
    let result = match cli.command {
        Command::Build(args) => build::run(&ctx, args).map(done),
        Command::Import(args) => import::run(&ctx, args).map(done),
        Command::List(args) => list::run(&ctx, args).map(done),
        Command::Info(args) => info::run(&ctx, args).map(done),
        Command::Verify(args) => verify::run(&ctx, args).map(done),
        Command::Keygen(args) => keygen::run(&ctx, args).map(done),
        Command::Sign(args) => sign::run(&ctx, args).map(done),
        Command::Install(args) => install::run(&ctx, args).map(done),
        Command::Compact(args) => compact::run(&ctx, args).map(done),
        Command::Rm(args) => rm::run(&ctx, args).map(done),
        Command::Extract(args) => extract::run(&ctx, args).map(done),
        Command::Merge(args) => merge::run(&ctx, args).map(done),
        // Like a shell, keep the low 8 bits of a WASI exit code.
        Command::Run(args) => run::run(&ctx, args).map(|code| ExitCode::from(code as u8)),
        #[cfg(feature = "object-store")]
        Command::Push(args) => push::run(&ctx, args).map(done),
        #[cfg(feature = "object-store")]
        Command::Pull(args) => pull::run(&ctx, args).map(done),
        Command::Path(args) => path::run(&ctx, args).map(done),
        Command::Demo(args) => demo::run(&ctx, args).map(done),
    };
    // A signal during an operation that stops in order: the command noticed it and failed,
    // or finished a step that cannot stop halfway; either way the exit code says so.
    // Its `--json` document, printed, says what it finished: no second document follows.
    let result = match (result, interrupt::received()) {
        (Ok(_), Some(signal)) => Err(interrupt::interrupted(
            signal,
            "the command had finished what it was doing",
        )
        .in_report()),
        (result, _) => result,
    };
    result.unwrap_or_else(|error| report(&error, json))
}

/// Where a failure's JSON goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Json {
    /// No `--json`: the `error:` line alone.
    No,
    /// On stdout, where the script reading the output looks.
    Stdout,
    /// On stderr, for `run`, whose stdout is the program's.
    Stderr,
}

impl Json {
    fn of(command: &Command, ctx: &Context) -> Json {
        match command {
            _ if !ctx.json => Json::No,
            Command::Run(_) => Json::Stderr,
            _ => Json::Stdout,
        }
    }
}

/// Prints `error: ...` on stderr (and with `--json`, the error as a JSON document, unless the
/// command's own document holds it) and returns the error's exit code.
fn report(error: &CliError, json: Json) -> ExitCode {
    match json {
        _ if error.is_in_report() => {}
        Json::No => {}
        Json::Stdout => {
            let _ = output::print_json(&error.to_json());
        }
        Json::Stderr => output::tell!("{}", error.to_json()),
    }
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
    ExitCode::from(error.kind().exit_code())
}

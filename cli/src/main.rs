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
mod open;
mod output;
mod panics;
#[cfg(feature = "object-store")]
mod remote;
mod resolve;
mod signing;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{
    build, compact, demo, extract, import, info, install, keygen, list, merge, rm, run, sign,
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
            // `--help` and `--version` are answers (stdout, 0); anything else is a usage error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(ErrorKind::Usage.exit_code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let ctx = Context::new(&cli.global);
    let json = cli.command.prints_json();
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
        Command::Demo => demo::run(&ctx).map(done),
    };
    result.unwrap_or_else(|error| report(&error, json))
}

/// Prints `error: ...` on stderr (and for `--json` commands, the error as a JSON document on
/// stdout, where the script reading the output looks) and returns the error's exit code.
fn report(error: &CliError, json: bool) -> ExitCode {
    if json {
        let _ = output::print_json(&error.to_json());
    }
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
    ExitCode::from(error.kind().exit_code())
}

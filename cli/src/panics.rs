//! Panics: one line instead of a backtrace, and a way to survive a dependency's panic.
//!
//! wasmer panics on some configurations instead of returning an error (cranelift asked for an
//! architecture it was built without, x86_64 without SSE2). Those come from the command line,
//! so they must be usage errors, not crashes: [`catch`] turns them into `Err`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{ErrorKind, one_line};

/// Set while [`catch`] runs: the hook then stays silent and lets the panic unwind to it.
static CATCHING: AtomicBool = AtomicBool::new(false);

/// Installs the last-resort hook: a panic is a bug, but the user still gets one `error:`
/// line, not a backtrace (even with `RUST_BACKTRACE` set), and exit code 101 like an uncaught
/// panic. Exiting from the hook also keeps a panicking worker thread from producing a second
/// report through its thread scope.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if CATCHING.load(Ordering::SeqCst) {
            return;
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr().lock(),
            "error: internal error: {}{place} (this is a bug in wasmpak)",
            one_line(&message(info.payload()))
        );
        std::process::exit(ErrorKind::Internal.exit_code().into());
    }));
}

/// Runs `f`, returning a panic's message as `Err`. Only for single-threaded setup steps: while
/// it runs, a panic on another thread would unwind silently too.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CATCHING.store(true, Ordering::SeqCst);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.store(false, Ordering::SeqCst);
    result.map_err(|payload| message(payload.as_ref()))
}

/// The text of a panic payload.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

//! SIGINT, SIGTERM and SIGHUP as an orderly stop, so that an interrupted command leaves nothing
//! behind.
//!
//! A process killed by a signal stops wherever it is: a multipart upload stays open in the
//! bucket (its parts cost money), a compaction's or a download's temporary file stays beside
//! the pack. [`install`] starts a thread that reads these signals (signal-hook's iterator: the
//! handler itself only writes to a pipe, and one mechanism serves the synchronous commands and
//! the async transfers alike; tokio's `signal` would need a runtime in every command). On the
//! first signal:
//!
//! - while a command runs an operation that stops in order (it holds a [`Stoppable`]), the
//!   signal is recorded: the operation notices it at its next safe point ([`check`], or
//!   [`signalled`] in async code), undoes what it started (aborts the upload, drops its
//!   temporary file, stops the compiles before the commit) or, for a step that cannot stop
//!   halfway (a compaction, an install), finishes it; the command then fails with exit code
//!   128 + the signal's number, as a shell reports a death by signal;
//! - otherwise the process exits at once with that code, as the default action would: the
//!   command's writes are commits, which an interruption never tears.
//!
//! A second signal ends the process at once, whatever runs: whoever insists gets the prompt,
//! and the next command that writes the pack sweeps what was left.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::Notify;

use crate::error::{CliError, ErrorKind};
use crate::output::tell;

/// The first signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How many [`Stoppable`]s are alive.
static STOPPABLE: AtomicUsize = AtomicUsize::new(0);
/// Wakes the async code waiting in [`signalled`].
static NOTIFY: Notify = Notify::const_new();

/// Starts the thread that reads SIGINT, SIGTERM and SIGHUP. Without it (it failed), the
/// signals keep their default action.
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("wasmpak-signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                let first = RECEIVED
                    .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if first && STOPPABLE.load(Ordering::SeqCst) > 0 {
                    NOTIFY.notify_waiters();
                    continue;
                }
                if !first {
                    tell!("error: interrupted again: stopping now");
                }
                std::process::exit(exit_code(signal).into());
            }
        });
    drop(spawned);
}

/// While alive, a signal is an orderly stop rather than an exit: the holder checks
/// [`check`] (or awaits [`signalled`]) at its safe points.
#[must_use = "a signal stops the operation in order only while this lives"]
pub struct Stoppable(());

/// Declares that the command runs an operation that stops in order.
pub fn stoppable() -> Stoppable {
    STOPPABLE.fetch_add(1, Ordering::SeqCst);
    Stoppable(())
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        STOPPABLE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The signal received, if one was.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// `Err` (the interruption, to return) if a signal was received: a safe point.
pub fn check() -> Result<(), CliError> {
    match received() {
        Some(signal) => Err(interrupted(signal, "nothing was changed")),
        None => Ok(()),
    }
}

/// Completes when a signal is received (at once if one was), with the interruption as an
/// error whose message says `what` became of the work.
pub async fn signalled(what: &str) -> CliError {
    loop {
        let notified = NOTIFY.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a signal between the two still wakes it.
        notified.as_mut().enable();
        if let Some(signal) = received() {
            return interrupted(signal, what);
        }
        notified.await;
    }
}

/// The error of a command stopped by `signal`; `what` says what became of the work.
pub fn interrupted(signal: i32, what: &str) -> CliError {
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    };
    CliError::new(
        ErrorKind::Interrupted(exit_code(signal)),
        format!("interrupted by {name}: {what}"),
    )
}

/// 128 + the signal's number, as shells report a death by signal.
fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

//! Progress bars on stderr, for the steps that can take more than a second or two: compiles
//! (a spinner per module with its elapsed time), uploads and downloads (bytes), installs.
//!
//! Shown only to a person: when stderr is a terminal and `--json` was not given. A log or a
//! pipe gets the plain result lines alone, never a bar's control characters. Bars are cleared
//! when done, so the result lines are what stays on screen.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::context::Context;
use crate::output::say;

/// How often a bar redraws on its own (spinners and elapsed times move without events).
const TICK: Duration = Duration::from_millis(100);

/// The bars of one command.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars for this command: shown only when a person watches stderr.
    pub fn new(ctx: &Context) -> Progress {
        let shown = !ctx.json && std::io::stderr().is_terminal();
        Progress {
            multi: shown.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A spinner saying `message`, with the time elapsed; with `len`, a bar of `len` steps.
    pub fn spinner(&self, message: &str, len: Option<u64>) -> Bar {
        let template = match len {
            Some(_) => "{spinner} {msg} [{bar:24}] {percent:>3}% {elapsed}",
            None => "{spinner} {msg} {elapsed}",
        };
        self.add(template, message, len)
    }

    /// A bar of `len` bytes saying `message`, with the rate and time left.
    pub fn bytes(&self, message: &str, len: u64) -> Bar {
        self.add(
            "{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            message,
            Some(len),
        )
    }

    fn add(&self, template: &str, message: &str, len: Option<u64>) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar(None);
        };
        let bar = match len {
            Some(len) => ProgressBar::new(len),
            None => ProgressBar::new_spinner(),
        };
        let bar = multi.add(bar.with_finish(ProgressFinish::AndClear));
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(TICK);
        Bar(Some(bar))
    }

    /// Prints a line on stdout, above the bars if there are any. Output errors are ignored
    /// here: losing a progress line must not abandon the work.
    pub fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => multi.suspend(|| {
                let _ = say!("{text}");
            }),
            None => {
                let _ = say!("{text}");
            }
        }
    }
}

/// One bar (nothing when bars are not shown). Cheap to clone: clones draw the same bar, so a
/// callback on another thread can move it. Cleared when done, or when its last clone is
/// dropped (its step failed): an error line follows a clean screen.
#[derive(Clone)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// Moves the bar to `position`.
    pub fn set(&self, position: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
        }
    }

    /// Sets the bar's length, once known.
    pub fn set_len(&self, len: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(len);
        }
    }

    /// Removes the bar.
    pub fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

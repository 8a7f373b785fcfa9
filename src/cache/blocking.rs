//! Running blocking file work from async cache methods, with or without a tokio runtime.
//!
//! Assumptions: our callers may poll cache futures inside a tokio runtime (either flavor) or
//! with no runtime at all (a plain `block_on`, a test, another executor). Inside tokio,
//! blocking a worker thread on disk I/O or deserialization would stall other tasks, so the
//! work goes to tokio's blocking pool; outside tokio there is nothing to stall, so it runs
//! inline. Unlike wasix's `FileSystemCache`, nothing here panics for lack of a runtime.

use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Runs `f` on tokio's blocking pool when called inside a tokio runtime, else inline.
///
/// A panic in `f` is resumed in the caller. If the runtime is shutting down and refuses the
/// work, `f` runs inline instead of being lost.
pub(crate) async fn run_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    // The closure is shared rather than moved so that it can still run here if the runtime
    // cancels the blocking task before starting it (it does so while shutting down).
    let slot = Arc::new(Mutex::new(Some(f)));
    let task_slot = Arc::clone(&slot);
    let joined = handle
        .spawn_blocking(move || take(&task_slot).map(|f| f()))
        .await;
    match joined {
        Ok(Some(value)) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled before it started, so the closure is still in the slot.
        Ok(None) | Err(_) => match take(&slot) {
            Some(f) => f(),
            None => unreachable!("a blocking task that ran returns its value"),
        },
    }
}

fn take<F>(slot: &Mutex<Option<F>>) -> Option<F> {
    lock(slot).take()
}

#[cfg(test)]
mod tests {
    use std::thread::{self, ThreadId};

    use super::*;
    use crate::cache::test_support::poll_ready;

    fn current() -> ThreadId {
        thread::current().id()
    }

    #[test]
    fn runs_inline_without_a_runtime() {
        let caller = current();
        let ran_on = poll_ready(run_blocking(current));
        assert_eq!(ran_on, caller);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_the_blocking_pool_in_a_multi_thread_runtime() {
        let caller = current();
        let ran_on = run_blocking(current).await;
        assert_ne!(ran_on, caller);
        assert_eq!(run_blocking(|| 6 * 7).await, 42);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_the_blocking_pool_in_a_current_thread_runtime() {
        let caller = current();
        let ran_on = run_blocking(current).await;
        assert_ne!(ran_on, caller);
    }

    #[tokio::test]
    async fn resumes_a_panic_in_the_caller() {
        let task = tokio::spawn(run_blocking(|| -> u32 { panic!("deliberate") }));
        let error = task.await.expect_err("the panic reaches the caller");
        let payload = error.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate"));
    }

    #[test]
    fn runs_inline_when_the_runtime_is_shut_down() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        runtime.shutdown_background();
        // The handle is still current, but its blocking pool refuses new work.
        let _guard = handle.enter();
        let caller = current();
        assert_eq!(poll_ready(run_blocking(current)), caller);
    }
}

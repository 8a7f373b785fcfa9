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

/// Runs `f`, CPU work long enough to stall other tasks (a large artifact's checksum and
/// deserialization), where it stalls none and waits for no other thread where it need not:
/// in a multi-thread tokio runtime, in place through `block_in_place` (the worker's other
/// tasks move to another thread; inside `block_on` it simply runs); in a current-thread
/// runtime, on the blocking pool, as blocking its one thread would stop every task; outside
/// tokio, inline.
pub(crate) async fn run_in_place<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => run_blocking(f).await,
        Err(_) => f(),
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
    fn runs_in_place_without_a_runtime_and_inside_block_on() {
        let caller = current();
        assert_eq!(poll_ready(run_in_place(current)), caller);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(run_in_place(current)), caller);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn runs_in_place_on_a_worker_while_other_tasks_go_on() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let on_worker = tokio::spawn(async {
            let caller = current();
            let handle = tokio::runtime::Handle::current();
            run_in_place(move || {
                // The runtime's only worker is busy here: a task spawned now runs only if the
                // worker's other tasks moved to another thread.
                let other_ran = Arc::new(AtomicBool::new(false));
                let flag = other_ran.clone();
                handle.spawn(async move { flag.store(true, Ordering::SeqCst) });
                let started = std::time::Instant::now();
                while !other_ran.load(Ordering::SeqCst) && started.elapsed().as_secs() < 10 {
                    std::thread::yield_now();
                }
                (caller, current(), other_ran.load(Ordering::SeqCst))
            })
            .await
        });
        let (caller, ran_on, other_ran) = on_worker.await.unwrap();
        assert_eq!(ran_on, caller, "no hop to another thread");
        assert!(other_ran, "another task waited for the blocking one");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_the_blocking_pool_in_a_current_thread_runtime_in_place_or_not() {
        let caller = current();
        assert_ne!(run_in_place(current).await, caller);
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

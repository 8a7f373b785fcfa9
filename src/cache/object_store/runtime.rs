//! Where requests to the store run: a small runtime of the crate's own.

use std::future::Future;
use std::sync::OnceLock;

/// Aborts the spawned request if the load that awaits it is dropped.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runtime every request runs on: two threads with timers and I/O, for the life of the
/// process. Callers' runtimes may lack either driver, or be dropped while an upload runs;
/// clients' connection pools also outlive any one caller's runtime this way.
pub(super) fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wasmpak-remote")
                .enable_all()
                .build()
                .map_err(|e| format!("failed to start the module store's runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

//! How transfers run: the `--timeout` option, the tokio runtimes requests run on, and the
//! test hook that pauses a transfer at a known point.

use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

use crate::error::CliError;

/// `--timeout`, the same for every transfer.
#[derive(Debug, Clone, clap::Args)]
pub struct Timeout {
    /// Give up when the store makes no progress for this many seconds
    #[arg(long = "timeout", default_value_t = 30, value_name = "SECS")]
    pub secs: u64,
}

impl Timeout {
    /// How long the store may make no progress (at least a second).
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.secs.max(1))
    }
}

/// The runtime `push` and `pull` run their requests on.
pub fn runtime() -> Result<Runtime, CliError> {
    started(Builder::new_multi_thread().worker_threads(2))
}

/// A runtime on the calling thread alone, for transfers that are one stream of requests.
pub fn current_thread_runtime() -> Result<Runtime, CliError> {
    started(&mut Builder::new_current_thread())
}

fn started(builder: &mut Builder) -> Result<Runtime, CliError> {
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the network runtime: {e}")))
}

/// Test hook: with the `fault-injection` feature, a transfer stops after its first part
/// while the file `WASMPAK_PAUSE_FILE` exists, having created `{file}.reached`, so that tests
/// can stop the server, kill the process or replace the object at a known point.
pub async fn pause_point() {
    #[cfg(feature = "fault-injection")]
    if let Some(gate) = std::env::var_os("WASMPAK_PAUSE_FILE") {
        let gate = std::path::PathBuf::from(gate);
        let mut reached = gate.clone().into_os_string();
        reached.push(".reached");
        let _ = std::fs::write(&reached, b"");
        while gate.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

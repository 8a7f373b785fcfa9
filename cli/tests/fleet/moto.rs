//! A real S3-compatible server for the tests: moto's, on 127.0.0.1, started and stopped by
//! the tests themselves.
//!
//! moto is installed once into a virtual environment under the cargo target directory
//! (`python3 -m venv` + `pip install "moto[server]"`), behind a file lock so that test
//! binaries running at once install it once. Each server is a Python process that binds a
//! free port, prints it, and exits when its standard input closes: when the test process
//! ends, however it ends, its servers end too. Without python3 or PyPI the tests fail with a
//! message saying so, never pass silently.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmpak::object_store::ObjectStore;
use wasmpak::object_store::aws::AmazonS3Builder;
use wasmpak::object_store::{ClientOptions, RetryConfig};

/// The moto release the tests run against.
const MOTO: &str = "moto[server]==5.2.5";

/// The server: moto's threaded server in-process, its port on stdout, gone when stdin closes.
const SERVER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server._server.server_port, flush=True)
sys.stdin.read()
server.stop()
"#;

/// The virtual environment's python, installing moto first if needed.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // A failed install is reported by every test that needs the server, not retried by each.
    match PYTHON.get_or_init(|| std::panic::catch_unwind(install).map_err(panic_text)) {
        Ok(python) => python,
        Err(why) => panic!("{why}"),
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "installing moto failed".to_string())
}

fn install() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join("moto-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!("installed-{}", MOTO.replace(['[', ']', '='], "_")));
    std::fs::create_dir_all(&base).unwrap();
    let lock = File::create(base.join("moto-venv.lock")).unwrap();
    lock.lock().unwrap();
    if marker.exists() {
        return python;
    }
    eprintln!("installing {MOTO} into {} (once)", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    match created {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "the S3 tests need python3 with the venv module: `python3 -m venv` failed ({status})"
        ),
        Err(e) => panic!("the S3 tests need python3 (to run moto's S3 server): {e}"),
    }
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO,
        ])
        .output()
        .expect("run pip");
    assert!(
        output.status.success(),
        "the S3 tests need {MOTO} from PyPI, and pip failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, b"").unwrap();
    python
}

/// A moto server of the test's own.
pub struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl Moto {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> Moto {
        let mut child = Command::new(python())
            .args(["-c", SERVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("moto did not start: it printed {line:?}")
        });
        Moto { child, stdin, port }
    }

    /// The server every test of this process shares (each with buckets of its own).
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new, empty bucket with a name no other test uses.
    pub fn bucket(&self, hint: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}-{}",
            hint.replace('_', "-"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = self.request("PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}");
        name
    }

    /// Sends one plain HTTP request (moto checks no signatures); returns the status code.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        self.exchange(method, path, body).0
    }

    /// The multipart uploads open in `bucket` (S3's `?uploads` listing).
    pub fn open_uploads(&self, bucket: &str) -> usize {
        let (status, listing) = self.exchange("GET", &format!("/{bucket}?uploads"), b"");
        assert_eq!(status, 200, "listing the uploads of {bucket}: {listing}");
        listing.matches("<Upload>").count()
    }

    /// Sends one plain HTTP request; returns the status code and the whole response.
    fn exchange(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, response)
    }

    /// A store for `bucket` on this server, as an application would build one.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        store_at(self.port, bucket)
    }

    /// The environment a child process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Freezes the server: connections are accepted by the kernel, never answered.
    pub fn stall(&self) {
        signal(self.child.id(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Stops the server for good.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store for `bucket` on the server at `port` (of a parent process).
pub fn store_at(port: u16, bucket: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(Duration::from_secs(30)),
        )
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    Arc::new(store)
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.resume_quietly();
        drop(self.stdin.take());
        self.kill();
    }
}

impl Moto {
    fn resume_quietly(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

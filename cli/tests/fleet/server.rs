//! A server process of the tests' own on 127.0.0.1: started on a free port, awaited until it
//! answers HTTP, frozen and thawed on demand (to play a stalled store), and gone when the test
//! process ends, however it ends.
//!
//! Servers that cannot watch their standard input themselves run under a small shell that
//! kills them when it closes: the test process holds the other end, so its death, even by
//! SIGKILL, ends its servers too.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs `"$@"` in the background, prints its pid, kills it once standard input closes, and
/// exits when it exits (so a server that could not bind its port is seen to have stopped).
/// (A background job's standard input is /dev/null, so the watcher reads a copy, fd 3; the
/// server's output goes nowhere, since nothing reads the pipe after the pid.)
const SUPERVISOR: &str = r#"exec 3<&0
"$@" 3<&- > /dev/null & server=$!
echo "$server"
{ cat <&3 > /dev/null; kill "$server" 2>/dev/null; } &
exec 3<&-
wait "$server"
"#;

/// How long a server may take to answer its first request.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running server.
pub struct Server {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The server's own process, for signals (the child may be its supervisor).
    pid: u32,
    pub port: u16,
}

impl Server {
    /// Starts `program` with the arguments `args(port)` for a free port, under the
    /// supervisor, and waits until it answers HTTP. A port taken meanwhile by another
    /// process costs a retry on another one.
    pub fn start(
        name: &'static str,
        program: &std::path::Path,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("sh")
                .args(["-c", SUPERVISOR, "sh"])
                .arg(program)
                .args(args(port))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let stdin = child.stdin.take();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let pid = line.trim().parse().expect("the supervisor prints the pid");
            let mut server = Server {
                name,
                child,
                stdin,
                pid,
                port,
            };
            if server.await_ready() {
                return server;
            }
        }
        panic!("{name} did not start on a free port of 127.0.0.1 (five tries)")
    }

    /// Takes charge of `child`, a server that ends by itself when its standard input closes
    /// and listens on `port`, once it answers HTTP.
    pub fn adopt(name: &'static str, mut child: Child, port: u16) -> Server {
        let stdin = child.stdin.take();
        let pid = child.id();
        let mut server = Server {
            name,
            child,
            stdin,
            pid,
            port,
        };
        assert!(server.await_ready(), "{name} exited before it answered");
        server
    }

    /// Waits until the server answers a request; false if it exited first.
    fn await_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if self.try_request("GET", "/", &[], b"").is_some() {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer on port {} within {READY_WITHIN:?}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends one plain HTTP/1.1 request; returns the status code and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|| panic!("{} did not answer {method} {path}", self.name))
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Connection: close\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
        let status = String::from_utf8_lossy(&response[..end])
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((status, response[end + 4..].to_vec()))
    }

    /// Freezes the server: connections are accepted by the kernel, never answered.
    pub fn stall(&self) {
        signal(self.pid, "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid, "CONT");
    }

    /// Stops the server for good.
    pub fn kill(&mut self) {
        self.resume();
        signal(self.pid, "KILL");
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `install` returns, run once per process and, behind the file lock `{name}.lock` in
/// the cargo target directory, by one test binary at a time (it skips what an earlier run
/// installed). Every test that needs it gets the same answer, a failed install included.
pub fn install_once<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    name: &str,
    install: impl FnOnce(PathBuf) -> T + std::panic::UnwindSafe,
) -> &'static T {
    let outcome = cell.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&base).unwrap();
        let lock = File::create(base.join(format!("{name}.lock"))).unwrap();
        lock.lock().unwrap();
        std::panic::catch_unwind(|| install(base)).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| format!("installing {name} failed"))
        })
    });
    match outcome {
        Ok(installed) => installed,
        Err(why) => panic!("{why}"),
    }
}

/// The client options of the tests' own stores: plain http, a request may take 30 s.
pub fn client_options() -> wasmpak::object_store::ClientOptions {
    wasmpak::object_store::ClientOptions::new()
        .with_allow_http(true)
        .with_timeout(Duration::from_secs(30))
}

/// The retries of the tests' own stores: a couple, within 5 s.
pub fn retry() -> wasmpak::object_store::RetryConfig {
    wasmpak::object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A port of 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a port of 127.0.0.1")
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

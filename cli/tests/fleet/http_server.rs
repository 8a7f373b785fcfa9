//! Plain HTTP servers for the tests of `wasmpak pull http://...`, serving a directory on
//! 127.0.0.1: nginx, which answers as a CDN or release host does (byte ranges, strong ETags,
//! `If-Match`, `If-Range`), optionally with ranges or ETags turned off; and Python's
//! `http.server`, which knows neither ranges nor ETags (only `Last-Modified`).
//!
//! nginx comes from Debian's packages (`apt-get install nginx-light`, a step of `.ci/run`);
//! Python's server from the standard library. A missing one fails the test with a message
//! saying so. Both run under the supervisor of `server.rs`, so they end with the test process,
//! and nginx runs as one process (no master), so that freezing it stalls every connection.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::server::Server;

/// What an nginx serves besides the files.
#[derive(Debug, Clone, Copy)]
pub struct Nginx {
    /// Answer `Range` requests with 206 (else with the whole file, 200).
    pub ranges: bool,
    /// Send ETags (else `Last-Modified` only).
    pub etags: bool,
    /// Serve HTTPS only, with a certificate for 127.0.0.1 signed by a test CA of its own
    /// ([`HttpServer::ca`]), made with openssl.
    pub tls: bool,
}

impl Default for Nginx {
    fn default() -> Nginx {
        Nginx {
            ranges: true,
            etags: true,
            tls: false,
        }
    }
}

/// A server of the test's own, serving `root`.
pub struct HttpServer {
    server: Server,
    root: PathBuf,
    /// Whether it answers a `Range` request with the range.
    ranges: bool,
    /// The CA certificate that signed its certificate, when it serves HTTPS.
    ca: Option<PathBuf>,
    /// nginx's configuration, pid and temporary files.
    _runtime: Option<tempfile::TempDir>,
}

impl HttpServer {
    /// nginx serving `root` as `options` say.
    pub fn nginx(root: &Path, options: Nginx) -> HttpServer {
        let nginx = nginx().unwrap_or_else(|| {
            panic!(
                "the HTTP pull tests need nginx: `apt-get install nginx-light` (Debian), as \
                     .ci/run does"
            )
        });
        let runtime = tempfile::tempdir().unwrap();
        let dir = runtime.path().to_path_buf();
        let root = root.to_path_buf();
        let ca = options.tls.then(|| certificates(&dir));
        let server = Server::start("nginx", &nginx, |port| {
            let config = dir.join(format!("nginx-{port}.conf"));
            std::fs::write(&config, nginx_config(&dir, &root, port, options)).unwrap();
            vec![
                "-p".into(),
                dir.display().to_string(),
                "-e".into(),
                dir.join("error.log").display().to_string(),
                "-c".into(),
                config.display().to_string(),
            ]
        });
        HttpServer {
            server,
            root,
            ranges: options.ranges,
            ca,
            _runtime: Some(runtime),
        }
    }

    /// Python's `http.server` serving `root`: no ranges, no ETags.
    pub fn python(root: &Path) -> HttpServer {
        let root = root.to_path_buf();
        let server = Server::start("python3 -m http.server", Path::new("python3"), |port| {
            vec![
                "-m".into(),
                "http.server".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--directory".into(),
                root.display().to_string(),
                port.to_string(),
            ]
        });
        HttpServer {
            server,
            root,
            ranges: false,
            ca: None,
            _runtime: None,
        }
    }

    /// The URL of `name` in the served directory.
    pub fn url(&self, name: &str) -> String {
        match self.ca {
            Some(_) => format!("https://127.0.0.1:{}/{name}", self.server.port),
            None => format!("{}/{name}", self.server.url()),
        }
    }

    /// The CA certificate (PEM) that signed the server's, when it serves HTTPS.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// Whether it answers a `Range` request with the range (a delta pull).
    pub fn serves_ranges(&self) -> bool {
        self.ranges
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Sends one plain HTTP/1.1 request; returns the status code and the body.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        self.server.request(method, path, headers, b"")
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

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server.pem`, `server.key`) in
/// `dir`; returns the CA's path. A self-signed leaf would not do: rustls refuses a CA
/// certificate used as a server's.
fn certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("the HTTPS test needs openssl: {e}"));
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1";
    let run = |line: &str| openssl(&line.split(' ').collect::<Vec<_>>());
    run(&format!(
        "req -x509 {ec} -subj /CN=test-ca -keyout ca.key -out ca.pem"
    ));
    run(&format!(
        "req {ec} -subj /CN=127.0.0.1 -keyout server.key -out server.csr"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
         -extfile server.ext -out server.pem",
    );
    dir.join("ca.pem")
}

/// Where Debian (or a local build) puts nginx.
pub fn nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

fn nginx_config(dir: &Path, root: &Path, port: u16, options: Nginx) -> String {
    let dir = dir.display();
    let ranges = if options.ranges { "" } else { "max_ranges 0;" };
    let etags = if options.etags { "on" } else { "off" };
    let tls = if options.tls {
        format!("ssl; ssl_certificate {dir}/server.pem; ssl_certificate_key {dir}/server.key")
    } else {
        String::new()
    };
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} {tls};
        root {root};
        etag {etags};
        {ranges}
    }}
}}
",
        root = root.display()
    )
}

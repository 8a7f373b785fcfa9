//! Azurite, Microsoft's Azure Storage emulator, for the tests: its blob service on 127.0.0.1,
//! in memory, started and stopped by the tests themselves.
//!
//! Azurite is installed once from the npm registry into a folder under the cargo target
//! directory, behind a file lock so that test binaries running at once install it once. Each
//! server is a node process that listens on a port of the system's choosing, prints it, and
//! exits when its standard input closes, so the servers end with the test process. Without
//! node and npm the tests fail with a message saying so, never pass silently.
//!
//! Clients reach it as Azure's own tools reach Azurite: the emulator's well-known account
//! `devstoreaccount1` and key, path-style URLs (`http://127.0.0.1:PORT/devstoreaccount1/...`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use wasmpak::object_store::ObjectStore;
use wasmpak::object_store::azure::MicrosoftAzureBuilder;

use super::server::{self, Server, install_once};

/// The Azurite release the tests run against: the last one that runs on Node 20 (3.36 needs
/// Node 21, 3.37 Node 22), which is what Debian 12 and the CI image have.
const AZURITE: &str = "azurite@3.35.0";

/// The emulator's account and key: public, the same in every Azurite.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Runs Azurite's blob service until standard input closes. `node -e SCRIPT -- ARGS` leaves the
/// arguments at `argv[1..]`; Azurite reads them from `argv[2..]`.
const SERVER: &str = r#"
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.argv.splice(1, 0, "azurite-blob");
require(process.env.AZURITE_BLOB_MAIN);
"#;

/// Creates a container, signed with the account key (Shared Key, as Azure's SDKs sign).
const CREATE_CONTAINER: &str = r#"
const [port, container, account, key] = process.argv.slice(1);
const crypto = require("crypto");
const date = new Date().toUTCString();
const version = "2021-08-06";
const path = `/${account}/${container}`;
const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
  `x-ms-date:${date}\nx-ms-version:${version}`, `/${account}${path}\nrestype:container`].join("\n");
const signature = crypto.createHmac("sha256", Buffer.from(key, "base64")).update(toSign).digest("base64");
require("http").request({ host: "127.0.0.1", port, method: "PUT", path: `${path}?restype=container`,
  headers: { "x-ms-date": date, "x-ms-version": version, "Content-Length": 0,
    Authorization: `SharedKey ${account}:${signature}` } },
  (response) => { console.log(response.statusCode); response.resume(); }).end();
"#;

/// Azurite's blob service entry point, installing Azurite first if needed.
pub fn blob_main() -> &'static Path {
    static MAIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    install_once(&MAIN, "azurite", install).as_path()
}

fn install(base: PathBuf) -> PathBuf {
    let prefix = base.join("azurite");
    let main = prefix.join("node_modules/azurite/dist/src/blob/main.js");
    let marker = prefix.join(format!("installed-{}", AZURITE.replace('@', "-")));
    if marker.exists() {
        return main;
    }
    eprintln!("installing {AZURITE} into {} (once)", prefix.display());
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix).unwrap();
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .arg("--prefix")
        .arg(&prefix)
        .arg(AZURITE)
        .output()
        .unwrap_or_else(|e| panic!("the Azure tests need node and npm (to run Azurite): {e}"));
    assert!(
        output.status.success() && main.exists(),
        "the Azure tests need {AZURITE} from the npm registry, and npm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, b"").unwrap();
    main
}

/// An Azurite blob service of the test's own.
pub struct Azurite {
    server: Server,
}

impl Azurite {
    /// Starts a server on a free port of 127.0.0.1, keeping blobs in memory.
    pub fn start() -> Azurite {
        let mut child = Command::new("node")
            .args(["-e", SERVER, "--"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(["--inMemoryPersistence", "--extentMemoryLimit", "256"])
            .args(["--disableTelemetry", "--silent", "--skipApiVersionCheck"])
            .env("AZURITE_BLOB_MAIN", blob_main())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the Azure tests need node (to run Azurite): {e}"));
        let mut port = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap_or_default();
            if let Some(url) = line.split("listens on ").nth(1) {
                port = url.rsplit(':').next().and_then(|p| p.trim().parse().ok());
                break;
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            panic!("Azurite did not start: it printed no address");
        };
        Azurite {
            server: Server::adopt("Azurite", child, port),
        }
    }

    /// The server every test of this process shares (each with containers of its own).
    pub fn shared() -> &'static Azurite {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(Azurite::start)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The account's blob endpoint, path-style.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.server.port)
    }

    /// A new, empty container with a name no other test uses.
    pub fn container(&self, hint: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}-{}",
            hint.replace('_', "-").to_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let output = Command::new("node")
            .args(["-e", CREATE_CONTAINER])
            .args([&self.server.port.to_string(), &name, ACCOUNT, KEY])
            .output()
            .expect("run node");
        let status = String::from_utf8_lossy(&output.stdout);
        assert_eq!(status.trim(), "201", "creating container {name}");
        name
    }

    /// A store for `container` on this server, as an application would build one.
    pub fn store(&self, container: &str) -> Arc<dyn ObjectStore> {
        let store = MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(KEY)
            .with_endpoint(self.endpoint())
            .with_container_name(container)
            .with_client_options(server::client_options())
            .with_retry(server::retry())
            .build()
            .unwrap();
        Arc::new(store)
    }

    /// The environment a child process needs to reach this server: `object_store`'s emulator
    /// switch and URL, and the connection string Azure's own tools (`az`, the SDKs) read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.server.url()),
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", KEY.into()),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                format!(
                    "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};\
                     BlobEndpoint={};",
                    self.endpoint()
                ),
            ),
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

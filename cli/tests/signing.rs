//! The signing workflow from the command line: keygen, build --sign, sign, verify --key,
//! install, and info/list showing who signed what; keys from openssl; bad keys; installs
//! that cannot complete.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `wasmpak keygen NAME.pem` in `dir`: (secret, public, key id).
fn keygen(s: &Scratch, name: &str) -> (PathBuf, PathBuf, String) {
    let secret = s.path(&format!("{name}.pem"));
    let run = wasmpak(args(&[&"keygen", &secret])).ok();
    let public = s.path(&format!("{name}.pub.pem"));
    let id = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id"))
        .expect("keygen prints the key id")
        .trim()
        .to_string();
    (secret, public, id)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn ci_signs_and_nodes_install_and_verify() {
    let s = Scratch::new();
    let (secret, public, id) = keygen(&s, "ci");
    assert_eq!(mode(&secret), 0o600);
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // keygen never overwrites a key.
    let line = wasmpak(args(&[&"keygen", &secret])).fails(1).to_string();
    assert!(line.contains("refusing to overwrite"), "{line}");

    let pack = s.path("app.wpk");
    let answer = s.path("answer.wat");
    let run = wasmpak(args(&[
        &"build",
        &pack,
        &answer,
        &s.path("imports.wat"),
        &"--sign",
        &secret,
    ]))
    .ok();
    assert!(
        run.stdout.contains(&format!("with key {id}")),
        "{}",
        run.stdout
    );
    let run = wasmpak(args(&[&"verify", &pack, &"--key", &public])).ok();
    assert!(
        run.stdout.contains("2 entries, all trusted"),
        "{}",
        run.stdout
    );

    // Who signed what.
    let listing = listing(&pack);
    for entry in listing["entries"].as_array().unwrap() {
        assert_eq!(entry["signed_by"], serde_json::json!([id]), "{entry}");
    }
    let info = info(&pack);
    assert_eq!(info["signatures"][0]["key_id"], id.as_str());
    assert_eq!(info["signatures"][0]["entries"], 2);
    assert_eq!(info["signatures"][0]["status"], "valid");
    assert_eq!(info["sealed"], false);
    let human = wasmpak(args(&[&"list", &pack])).ok();
    assert!(
        human.stdout.contains("SIGNED BY") && human.stdout.contains(&id),
        "{}",
        human.stdout
    );

    // A node installs it, verified against the public key: sealed and read-only.
    let node = s.path("node");
    std::fs::create_dir(&node).unwrap();
    let run = wasmpak(args(&[&"install", &pack, &node, &"--key", &public])).ok();
    assert!(run.stdout.contains("sealed, read-only"), "{}", run.stdout);
    let installed = node.join("app.wpk");
    assert_eq!(mode(&installed), 0o444);
    assert_eq!(info_of(&installed)["sealed"], true);
    wasmpak(args(&[&"verify", &installed, &"--key", &public])).ok();
    let line = wasmpak(args(&[&"build", &installed, &s.path("trap.wat")]))
        .fails(1)
        .to_string();
    assert!(
        line.contains("sealed") || line.contains("read-only"),
        "{line}"
    );
    let installed_bytes = std::fs::read(&installed).unwrap();

    // An entry appended without signing: verify names it, install refuses the pack.
    wasmpak(args(&[&"build", &pack, &s.path("trap.wat")])).ok();
    let run = wasmpak(args(&[&"verify", &pack, &"--key", &public]));
    let line = run.fails(3).to_string();
    assert!(
        line.contains("trap.wat") && line.contains("no signature covers it"),
        "{line}"
    );
    assert!(
        run.stdout.contains("bad  entry") && run.stdout.contains("(trap.wat)"),
        "{}",
        run.stdout
    );
    let line = wasmpak(args(&[&"install", &pack, &node, &"--key", &public]))
        .fails(3)
        .to_string();
    assert!(line.contains("not trusted"), "{line}");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        installed_bytes,
        "the installed pack is intact"
    );
    assert_eq!(std::fs::read_dir(&node).unwrap().count(), 1, "no leftovers");

    // Signed by another key: refused by name.
    let (other_secret, _, other_id) = keygen(&s, "other");
    wasmpak(args(&[&"sign", &pack, &"--key", &other_secret])).ok();
    let run = wasmpak(args(&[&"verify", &pack, &"--key", &public]));
    let line = run.fails(3).to_string();
    assert!(
        line.contains(&other_id) && line.contains("not trusted here"),
        "{line}"
    );
    // Signing again with the CI key covers the new entry.
    wasmpak(args(&[&"sign", &pack, &"--key", &secret])).ok();
    wasmpak(args(&[&"verify", &pack, &"--key", &public])).ok();
    wasmpak(args(&[&"install", &pack, &node, &"--key", &public])).ok();
    assert_eq!(
        listing_of(&installed)["entries"].as_array().unwrap().len(),
        3
    );
}

fn info_of(pack: &Path) -> serde_json::Value {
    info(pack)
}

fn listing_of(pack: &Path) -> serde_json::Value {
    listing(pack)
}

#[test]
fn openssl_keys_work_both_ways() {
    if !installed("openssl") {
        return missing(
            "openssl",
            "the openssl command makes and reads the keys of this test",
        );
    }
    let s = Scratch::new();
    let secret = s.path("ossl.pem");
    let public = s.path("ossl.pub.pem");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&secret));
    ok(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&secret)
        .arg("-out")
        .arg(&public));
    let pack = s.pack("app.wpk");
    wasmpak(args(&[&"sign", &pack, &"--key", &secret])).ok();
    wasmpak(args(&[&"verify", &pack, &"--key", &public])).ok();

    // And openssl reads what keygen writes: the same public key.
    let (ours, ours_public, _) = keygen(&s, "ours");
    let derived = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&ours)
        .output()
        .unwrap();
    assert!(derived.status.success());
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap(),
        std::fs::read_to_string(&ours_public).unwrap()
    );

    // Keys of other algorithms are named as such.
    let ec = s.path("ec.pem");
    ok(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&ec));
    let line = wasmpak(args(&[&"sign", &pack, &"--key", &ec]))
        .fails(1)
        .to_string();
    assert!(
        line.contains("ec.pem") && line.contains("ECDSA") && line.contains("Ed25519"),
        "{line}"
    );
}

#[test]
fn bad_keys_are_one_line_errors_naming_the_file() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let before = std::fs::read(&pack).unwrap();
    let (secret, public, _) = keygen(&s, "ci");
    let text = std::fs::read_to_string(&public).unwrap();
    let dir = s.dir.path().to_path_buf();
    let cases: Vec<(&str, Vec<&dyn AsRef<OsStr>>, &str)> = vec![
        (
            "public-as-secret",
            vec![&"sign", &pack, &"--key", &public],
            "public key",
        ),
        (
            "secret-as-public",
            vec![&"verify", &pack, &"--key", &secret],
            "secret key, where a public key belongs",
        ),
        (
            "secret-to-install",
            vec![&"install", &pack, &dir, &"--key", &secret],
            "secret key",
        ),
        (
            "missing",
            vec![&"verify", &pack, &"--key", &"nope.pem"],
            "nope.pem",
        ),
    ];
    for (name, parts, expected) in cases {
        let line = wasmpak(parts.iter().map(|p| p.as_ref()).collect::<Vec<_>>())
            .fails(1)
            .to_string();
        assert!(
            line.contains(expected) && line.contains("key file"),
            "{name}: {line}"
        );
    }
    let truncated = s.write("truncated.pem", &text.as_bytes()[..text.len() / 2]);
    let relabeled = s.write(
        "cert.pem",
        text.replace("PUBLIC KEY", "CERTIFICATE").as_bytes(),
    );
    let garbage = s.write("garbage.pem", b"ssh-ed25519 AAAAC3Nza me@host\n");
    for (file, expected) in [
        (&truncated, "truncated or damaged"),
        (&relabeled, "CERTIFICATE"),
        (&garbage, "not a PEM key"),
    ] {
        let line = wasmpak(args(&[&"verify", &pack, &"--key", file]))
            .fails(1)
            .to_string();
        assert!(
            line.contains(expected) && line.contains(&*file.to_string_lossy()),
            "{line}"
        );
    }
    let line = wasmpak(args(&[
        &"build",
        &pack,
        &s.path("trap.wat"),
        &"--sign",
        &public,
    ]))
    .fails(1)
    .to_string();
    assert!(line.contains("public key"), "{line}");
    assert_eq!(std::fs::read(&pack).unwrap(), before, "nothing was written");
}

#[test]
fn failed_installs_leave_the_installed_pack_intact() {
    let s = Scratch::new();
    let pack = s.pack("app.wpk");
    let node = s.path("node");
    std::fs::create_dir(&node).unwrap();
    wasmpak(args(&[&"install", &pack, &node])).ok();
    let installed = node.join("app.wpk");
    let before = std::fs::read(&installed).unwrap();
    wasmpak(args(&[&"build", &pack, &s.path("trap.wat")])).ok();
    let newer_len = std::fs::metadata(&pack).unwrap().len();

    // A full disk: the file size limit stops the copy.
    if !crate::common::installed("prlimit") {
        missing(
            "prlimit",
            "prlimit(1), from util-linux, imposes the file size limit of the full-disk case",
        );
    } else {
        let output = Command::new("sh")
            .args([
                "-c",
                r#"trap "" XFSZ; exec prlimit --fsize="$LIMIT" "$BIN" install "$PACK" "$DIR""#,
            ])
            .env("LIMIT", (newer_len / 2).to_string())
            .env("BIN", BIN)
            .env("PACK", &pack)
            .env("DIR", &node)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("app.wpk") && stderr.contains("File too large"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(&installed).unwrap(), before);
        assert_eq!(std::fs::read_dir(&node).unwrap().count(), 1, "no leftovers");
    }

    // A directory we may not write to.
    if let Err(why) = nobody_can_run() {
        return missing("nobody", why);
    }
    s.open_to_all();
    set_mode(&pack, 0o644);
    set_mode(&node, 0o755);
    let output = unprivileged(&mut command(args(&[
        &"install",
        &pack,
        &node,
        &"--allow-shared-write",
    ])))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("node") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&installed).unwrap(), before);
}

/// A real artifact with everything after its first 64 bytes scrambled: valid checksums once
/// stored, but the archive's pointers lead anywhere, so wasmer's unchecked deserializer reads
/// wild memory (or panics) instead of refusing it.
fn scrambled_artifact(pack: &Path, label: &str, s: &Scratch) -> Vec<u8> {
    let out = s.path("artifact.bin");
    wasmpak(args(&[&"extract", &pack, &label, &"-o", &out])).ok();
    let mut bytes = std::fs::read(&out).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in &mut bytes[64..] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8 | 0x40;
    }
    bytes
}

/// Found in review: `verify --deep --key` opened the pack without the keys and skipped only
/// entries that failed their checksum, so a forged artifact with valid CRCs reached wasmer's
/// unchecked deserializer in the operator's process. `--deep` hands wasmer only entries that
/// passed every check it was asked to make.
#[test]
fn verify_deep_never_hands_wasmer_an_entry_that_failed_a_check() {
    let s = Scratch::new();
    let (secret, public, _) = keygen(&s, "ci");
    let pack = s.path("app.wpk");
    wasmpak(args(&[
        &"build",
        &pack,
        &s.path("answer.wat"),
        &"--sign",
        &secret,
    ]))
    .ok();
    let forged = scrambled_artifact(&pack, "answer.wat", &s);
    let identity = wasmpak::Pack::open_any(&pack).unwrap().identity().clone();
    let writer = wasmpak::Pack::open(&pack, &identity).unwrap();
    writer
        .insert_with_label(&key(99), &forged, "evil.wasm")
        .unwrap();
    drop(writer);
    wasmpak(args(&[&"verify", &pack])).ok(); // Checksum-clean.

    let run = wasmpak(args(&[&"verify", &"--deep", &pack, &"--key", &public]));
    assert_eq!(
        run.code,
        Some(3),
        "ended by exit 3, not by a signal:\n{run:#?}"
    );
    let line = run.fails(3);
    assert!(
        line.contains("evil.wasm") && line.contains("no signature covers it"),
        "{line}"
    );
    assert!(
        run.stdout
            .contains("deep: 1 entry loaded by wasmer, all accepted"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("wasmer refuses"), "{}", run.stdout);

    // Without --key the bytes are trusted as written, and it says so.
    let signed = s.path("signed.wpk");
    wasmpak(args(&[
        &"build",
        &signed,
        &s.path("answer.wat"),
        &"--sign",
        &secret,
    ]))
    .ok();
    let run = wasmpak(args(&[&"verify", &"--deep", &signed])).ok();
    assert!(
        run.stdout
            .contains("deep: signatures not checked (no --key): trusting its bytes as written"),
        "{}",
        run.stdout
    );
    let unsigned = s.pack("unsigned.wpk");
    let run = wasmpak(args(&[&"verify", &"--deep", &unsigned])).ok();
    assert!(
        run.stdout
            .contains("deep: the pack is not signed: trusting its bytes as written"),
        "{}",
        run.stdout
    );
}

/// Found in review: nothing ordered releases, so an older genuine pack could be installed
/// over a newer one. Signatures name a release; `install --key` refuses an older one unless
/// `--allow-downgrade`.
#[test]
fn install_refuses_an_older_release_unless_allowed() {
    let s = Scratch::new();
    let (secret, public, _) = keygen(&s, "ci");
    let build = |dir: &str, input: &str, release: &str| {
        let pack = s.path(dir).join("app.wpk");
        std::fs::create_dir_all(pack.parent().unwrap()).unwrap();
        let run = wasmpak(args(&[
            &"build",
            &pack,
            &s.path(input),
            &"--sign",
            &secret,
            &"--release",
            &release,
        ]))
        .ok();
        assert!(
            run.stdout.contains(&format!("release {release})")),
            "{}",
            run.stdout
        );
        pack
    };
    let a = build("a", "answer.wat", "1");
    let b = build("b", "imports.wat", "2");
    let node = s.path("node");
    std::fs::create_dir(&node).unwrap();
    let run = wasmpak(args(&[&"install", &b, &node, &"--key", &public])).ok();
    assert!(run.stdout.contains("release 2"), "{}", run.stdout);
    let installed = node.join("app.wpk");
    let newer = std::fs::read(&installed).unwrap();

    let line = wasmpak(args(&[&"install", &a, &node, &"--key", &public]))
        .fails(3)
        .to_string();
    assert!(
        line.contains("release 1")
            && line.contains("release 2")
            && line.contains("--allow-downgrade"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        newer,
        "nothing installed"
    );
    assert_eq!(std::fs::read_dir(&node).unwrap().count(), 1, "no leftovers");

    // Signed without a release: older than any release.
    let plain = s.path("plain").join("app.wpk");
    std::fs::create_dir(plain.parent().unwrap()).unwrap();
    wasmpak(args(&[
        &"build",
        &plain,
        &s.path("trap.wat"),
        &"--sign",
        &secret,
    ]))
    .ok();
    let line = wasmpak(args(&[&"install", &plain, &node, &"--key", &public]))
        .fails(3)
        .to_string();
    assert!(line.contains("signed without a release"), "{line}");

    // Allowed on purpose, it installs; the same release again is no downgrade.
    wasmpak(args(&[
        &"install",
        &a,
        &node,
        &"--key",
        &public,
        &"--allow-downgrade",
    ]))
    .ok();
    assert_eq!(labels(&installed), ["answer.wat"]);
    wasmpak(args(&[&"install", &a, &node, &"--key", &public])).ok();
    wasmpak(args(&[&"install", &b, &node, &"--key", &public])).ok();

    // `sign --release` names it too; 0 is no release.
    wasmpak(args(&[&"sign", &a, &"--key", &secret, &"--release", &"3"])).ok();
    wasmpak(args(&[&"install", &a, &node, &"--key", &public])).ok();
    for usage in [
        wasmpak(args(&[&"sign", &a, &"--key", &secret, &"--release", &"0"])),
        wasmpak(args(&[
            &"build",
            &a,
            &s.path("trap.wat"),
            &"--release",
            &"4",
        ])),
    ] {
        assert_eq!(usage.code, Some(2), "{usage:#?}");
        assert!(usage.stderr.contains("--release"), "{usage:#?}");
    }
}

//! Signing a pack: a manifest of its live entries, signed, appended as the newest record of
//! its signature chain.

use std::time::SystemTime;

use bytes::Bytes;

use crate::format::signature::{self, ManifestEntry, SignatureHeader, Statement};
use crate::pack::checksum;
use crate::pack::signatures::{encode_chain, read_chain};
use crate::{Error, Pack, Result};

use super::digest::{identity_hash, value_hash};
use super::judge::judge_chain;
use super::keys::SecretKey;
use super::signature::SignatureInfo;

impl Pack {
    /// Signs every live entry with `key`: appends a signature record whose manifest lists each
    /// entry's key, label, length and BLAKE3 hash, and commits it as the newest signature.
    /// An earlier signature by the same key is dropped (this one supersedes it); signatures by
    /// other keys are kept. Each value's CRC-32 is checked first: a damaged pack is not signed.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity, SecretKey, SignatureStatus};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pack = Pack::create(dir.path().join("app.wpk"), &PackIdentity::new().with("a", "b"))?;
    /// pack.insert_with_label(&Key::from_bytes([1; 32]), b"module", "hello.wasm")?;
    /// let ci = SecretKey::generate()?;
    /// let signature = pack.sign(&ci)?;
    /// assert_eq!(signature.entries(), 1);
    /// let report = pack.verify_signatures(&[ci.public_key()])?;
    /// assert!(report.is_ok());
    /// assert_eq!(report.signatures()[0].status(), &SignatureStatus::Trusted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign(&self, key: &SecretKey) -> Result<SignatureInfo> {
        self.sign_as(key, 0)
    }

    /// Signs as [`Pack::sign`] does, naming `release` in the signed statement: a number that
    /// orders the releases of one product (a build number, a date such as `20250611`), so that
    /// a reader can refuse older ones ([`PackOptions::min_release`](crate::PackOptions::min_release),
    /// `wasmpak install`'s downgrade check). It must be at least 1; a signature without one
    /// ([`Pack::sign`]) counts as older than every release.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity, SecretKey};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pack = Pack::create(dir.path().join("app.wpk"), &PackIdentity::new().with("a", "b"))?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"module")?;
    /// let signature = pack.sign_release(&SecretKey::generate()?, 20250611)?;
    /// assert_eq!(signature.release(), Some(20250611));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign_release(&self, key: &SecretKey, release: u64) -> Result<SignatureInfo> {
        if release == 0 {
            return Err(Error::invalid_input(
                self.path(),
                "release 0 means no release: sign without one, or name a release from 1 up",
            ));
        }
        self.sign_as(key, release)
    }

    /// Signs every live entry with `key`, naming `release` (0: none).
    fn sign_as(&self, key: &SecretKey, release: u64) -> Result<SignatureInfo> {
        let mut session = self.begin()?;
        let view = session.base_arc().clone();
        let old = read_chain(&view).map_err(|damage| {
            view.corrupt(format!(
                "cannot sign: its signature chain is damaged: {damage}"
            ))
        })?;
        let mut entries = Vec::new();
        for (entry, label) in view.live_entries()? {
            let (offset, payload) = view.payload(&entry)?;
            if checksum(payload) != entry.payload_crc {
                return Err(view.corrupt(format!(
                    "cannot sign: the value of {} at offset {offset} fails its checksum",
                    entry.key
                )));
            }
            entries.push(ManifestEntry {
                key: entry.key,
                value_hash: value_hash(payload),
                value_len: entry.payload_len,
                label: label.to_vec(),
            });
        }
        let manifest = signature::encode_manifest(&entries)
            .ok_or_else(|| Error::invalid_input(self.path(), "the manifest cannot be encoded"))?;
        let signer = key.public_key().to_bytes();
        let mut header = SignatureHeader {
            signer,
            signature: [0; 64],
            generation: view.commit.generation + 1,
            signed_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            release,
            previous: 0,
            entry_count: entries.len() as u32,
            labels_len: (manifest.len() - entries.len() * signature::MANIFEST_ENTRY_LEN) as u32,
            manifest_hash: value_hash(&manifest),
        };
        header.signature = key.sign(&Statement::of(&header, identity_hash(&view)?).encode());
        // Oldest first, without this key's earlier signatures, then the new one.
        let mut chain: Vec<(SignatureHeader, Bytes)> = old
            .into_iter()
            .rev()
            .filter(|(_, h, _)| h.signer != signer)
            .map(|(_, h, m)| (h, m))
            .collect();
        chain.push((header, Bytes::from(manifest)));
        let (bytes, head) = encode_chain(&chain, session.tail());
        session.append_encoded(&bytes)?;
        session.commit_signatures(head)?;
        let view = self.view()?;
        let chain = judge_chain(&view, &[key.public_key()], false)?;
        chain
            .records
            .into_iter()
            .next()
            .ok_or_else(|| Error::corrupt(self.path(), "the new signature cannot be read back"))
    }
}

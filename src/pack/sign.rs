//! Signing a pack, and carrying its signatures through compaction.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;

use crate::format::index::{EntryKind, IndexEntry};
use crate::format::record::{RecordHeader, RecordKind, payload_padding};
use crate::format::signature::{self, ManifestEntry, SignatureHeader, Statement};
use crate::{Error, Pack, Result, SecretKey};

use super::digest::value_hash;
use super::signature::{identity_hash, judge_chain, read_chain};
use super::signature_report::SignatureInfo;
use super::view::View;

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
        let mut session = self.begin()?;
        let view = session.base_arc().clone();
        let old = read_chain(&view).map_err(|damage| {
            view.corrupt(format!(
                "cannot sign: its signature chain is damaged: {damage}"
            ))
        })?;
        let mut entries = Vec::new();
        for (entry, label) in live_entries(&view)? {
            let (offset, payload) = view.payload(&entry)?;
            if super::mapping::checksum(payload) != entry.payload_crc {
                return Err(view.corrupt(format!(
                    "cannot sign: the value of {} at offset {offset} fails its checksum",
                    entry.key
                )));
            }
            entries.push(ManifestEntry {
                key: entry.key,
                value_hash: value_hash(payload),
                value_len: entry.payload_len,
                label,
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

/// Every live value entry of `view` with its label, sorted by key.
pub(super) fn live_entries(view: &View) -> Result<Vec<(IndexEntry, Vec<u8>)>> {
    let mut newest = BTreeMap::new();
    for block in view.blocks.iter().rev() {
        for entry in view.block_entries(block)? {
            newest.insert(entry.key, entry);
        }
    }
    let mut out = Vec::with_capacity(newest.len());
    for entry in newest.into_values() {
        if entry.kind != EntryKind::Value {
            continue;
        }
        let (header, label) = view.record_header(entry.record_offset)?;
        if header.key != *entry.key.as_bytes() || header.payload_len != entry.payload_len {
            return Err(view.corrupt(format!(
                "record at offset {} does not match its index entry for {}",
                entry.record_offset, entry.key
            )));
        }
        out.push((entry, label.to_vec()));
    }
    Ok(out)
}

/// Encodes signature records (oldest first) as they will lie from `start` on, each pointing
/// at the one before; returns the bytes and the offset of the last (the chain's head).
pub(crate) fn encode_chain(chain: &[(SignatureHeader, Bytes)], start: u64) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut previous = 0;
    for (header, manifest) in chain {
        let at = start + out.len() as u64;
        let header = SignatureHeader {
            previous,
            ..*header
        };
        let payload = signature::encode(&header, manifest);
        let record = RecordHeader::for_payload(RecordKind::Signature, [0; 32], 0, &payload);
        out.extend_from_slice(&record.encode_with_label(b""));
        out.extend_from_slice(&payload);
        out.resize(out.len() + payload_padding(payload.len() as u64), 0);
        previous = at;
    }
    (out, previous)
}

/// The chain of `view` for compaction to copy, oldest first; a damaged chain is dropped (it
/// could vouch for nothing anyway).
pub(crate) fn chain_to_copy(view: &View) -> Vec<(SignatureHeader, Bytes)> {
    match read_chain(view) {
        Ok(chain) => chain.into_iter().rev().map(|(_, h, m)| (h, m)).collect(),
        Err(damage) => {
            tracing::warn!(%damage, "dropping a damaged signature chain while compacting");
            Vec::new()
        }
    }
}

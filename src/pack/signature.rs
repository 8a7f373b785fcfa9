//! Signed packs: signing, the signature chain of a commit, and the check of each entry.
//!
//! A commit slot points at the newest signature record; each record points at the next
//! older one (docs/FORMAT.md, section 11). A signature vouches for the entries its manifest
//! lists (key, length, label, BLAKE3 of the value) in a pack of one identity, so an entry is
//! trusted when some signature by a trusted key lists it and its bytes hash to what was
//! signed. Entries appended later are simply not listed; signing again lists them.
//!
//! The chain is read and its trusted signatures checked once per commit that changes it
//! (cached per pack handle), so a lookup costs a binary search in a manifest, and the value's
//! hash once per entry per process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::format::index::{EntryKind, IndexEntry};
use crate::format::record::{RecordHeader, RecordKind, payload_padding};
use crate::format::signature::{
    self, FIXED_LEN, MAX_SIGNATURES, ManifestEntry, SignatureHeader, SignatureRecord, Statement,
};
use crate::keys::key_id;
use crate::{Error, Key, Pack, PublicKey, Result, SecretKey};

use super::digest::value_hash;
use super::verify::Problem;
use super::view::View;

/// Whether a signature checks out, and whether its key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureStatus {
    /// Valid, by a key the caller trusts.
    Trusted,
    /// Valid for the public key it names, which the caller does not trust (or named none).
    Valid,
    /// Invalid: the record or its manifest was altered, or it was made for another pack.
    Invalid(String),
}

/// One signature of a pack, as [`Pack::signatures`] and [`Pack::verify_signatures`] report it.
#[derive(Debug, Clone)]
pub struct SignatureInfo {
    offset: u64,
    header: SignatureHeader,
    manifest: Bytes,
    status: SignatureStatus,
    /// Whether the signer is one of the keys it was judged against.
    by_trusted_key: bool,
}

/// What a signature says about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    /// The value's length.
    pub len: u64,
    /// The entry's label.
    pub label: String,
    /// BLAKE3 of the value.
    pub hash: [u8; 32],
}

impl SignatureInfo {
    /// The signer's key id (16 hex digits, as `wasmpak keygen` prints it).
    pub fn signer_id(&self) -> String {
        key_id(&self.header.signer)
    }

    /// The signer's public key, if the record holds a valid one.
    pub fn signer(&self) -> Option<PublicKey> {
        PublicKey::from_bytes(&self.header.signer).ok()
    }

    /// The commit generation the signature was made for.
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// When it was signed, by the signer's clock.
    pub fn signed_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.header.signed_at)
    }

    /// How many entries it vouches for.
    pub fn entries(&self) -> u64 {
        u64::from(self.header.entry_count)
    }

    /// Where its record is in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether it checks out.
    pub fn status(&self) -> &SignatureStatus {
        &self.status
    }

    /// What it says about `key`, if it lists it.
    pub fn find(&self, key: &Key) -> Option<SignedEntry> {
        let record = self.record()?;
        record.find(key).map(|e| SignedEntry {
            len: e.value_len,
            label: String::from_utf8_lossy(&e.label).into_owned(),
            hash: e.value_hash,
        })
    }

    fn record(&self) -> Option<SignatureRecord<'_>> {
        let record = SignatureRecord {
            header: self.header,
            manifest: &self.manifest,
        };
        record.check_sorted().ok().map(|()| record)
    }
}

/// The result of [`Pack::verify_signatures`].
#[derive(Debug, Clone, Default)]
pub struct SignatureReport {
    signatures: Vec<SignatureInfo>,
    entries: u64,
    problems: Vec<Problem>,
}

impl SignatureReport {
    /// Whether every live entry is covered by a trusted signature and matches it.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The pack's signatures, newest first.
    pub fn signatures(&self) -> &[SignatureInfo] {
        &self.signatures
    }

    /// Live entries checked.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Each entry refused, and why (plus damage to the signature chain itself).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// A commit's signature chain, with each signature judged against the trusted keys.
#[derive(Debug)]
pub(crate) struct Chain {
    /// (device, inode, signature offset): what the chain was read from.
    id: (u64, u64, u64),
    records: Vec<SignatureInfo>,
    /// Why the chain could not be read to its end, if it could not.
    damage: Option<String>,
}

/// The chain of the latest view, kept by a [`Pack`] handle.
#[derive(Debug, Default)]
pub(crate) struct ChainCache(Mutex<Option<Arc<Chain>>>);

/// One record read from the file: its offset, header and manifest.
type RawRecord = (u64, SignatureHeader, Bytes);

/// Reads the chain of `view`'s commit, newest first.
fn read_chain(view: &View) -> std::result::Result<Vec<RawRecord>, String> {
    let mut out: Vec<RawRecord> = Vec::new();
    let mut at = view.commit.signature_offset;
    while at != 0 {
        if out.len() == MAX_SIGNATURES {
            return Err(format!("it holds more than {MAX_SIGNATURES} signatures"));
        }
        if out.last().is_some_and(|(newer, _, _)| at >= *newer) {
            return Err(format!(
                "the signature at offset {} points forward, at offset {at}",
                out.last().map_or(0, |r| r.0)
            ));
        }
        let (header, _) = view.record_header(at).map_err(|e| strip(&e))?;
        if header.kind != RecordKind::Signature {
            return Err(format!(
                "the record at offset {at} is a {:?}, not a signature",
                header.kind
            ));
        }
        let start = header
            .payload_offset(at)
            .ok_or_else(|| format!("the signature at offset {at} overflows"))?;
        let payload = view
            .shared_bytes(start, header.payload_len)
            .map_err(|e| format!("the signature at offset {at} is truncated: {}", strip(&e)))?;
        let record = SignatureRecord::decode(&payload)
            .map_err(|e| format!("the signature at offset {at}: {e}"))?;
        let header = record.header;
        out.push((at, header, payload.slice(FIXED_LEN..)));
        at = header.previous;
    }
    Ok(out)
}

/// Checks one signature: its generation, its manifest's hash and order, and the Ed25519
/// signature of its statement by the key it names.
fn check_record(
    view: &View,
    identity_hash: &[u8; 32],
    header: &SignatureHeader,
    manifest: &[u8],
) -> std::result::Result<(), String> {
    if header.generation > view.commit.generation {
        return Err(format!(
            "it was made for generation {}, newer than this commit ({}): it was copied from \
             another copy of the pack",
            header.generation, view.commit.generation
        ));
    }
    if value_hash(manifest) != header.manifest_hash {
        return Err("its manifest was altered after signing".to_string());
    }
    let key = PublicKey::from_bytes(&header.signer)
        .map_err(|_| "it names an invalid public key".to_string())?;
    let statement = Statement::of(header, *identity_hash).encode();
    if !key.verifies(&statement, &header.signature) {
        return Err(
            "the signature does not verify: the record was altered, or signed for another pack"
                .to_string(),
        );
    }
    SignatureRecord {
        header: *header,
        manifest,
    }
    .check_sorted()
    .map_err(|e| e.to_string())
}

fn identity_hash(view: &View) -> Result<[u8; 32]> {
    let encoded = view
        .file
        .identity
        .encode()
        .map_err(|detail| view.corrupt(format!("bad identity: {detail}")))?;
    Ok(*blake3::hash(&encoded).as_bytes())
}

/// Reads and judges `view`'s chain. Signatures by keys outside `trusted` are checked only if
/// `check_all` (reports), not on the load path.
fn judge_chain(view: &View, trusted: &[PublicKey], check_all: bool) -> Result<Chain> {
    let id = (view.file.id.0, view.file.id.1, view.commit.signature_offset);
    let (raw, damage) = match read_chain(view) {
        Ok(raw) => (raw, None),
        Err(damage) => (Vec::new(), Some(damage)),
    };
    let identity = identity_hash(view)?;
    let records = raw
        .into_iter()
        .map(|(offset, header, manifest)| {
            let is_trusted = trusted.iter().any(|k| k.to_bytes() == header.signer);
            let status = if is_trusted || check_all {
                match check_record(view, &identity, &header, &manifest) {
                    Ok(()) if is_trusted => SignatureStatus::Trusted,
                    Ok(()) => SignatureStatus::Valid,
                    Err(why) => SignatureStatus::Invalid(why),
                }
            } else {
                // Never used to accept anything: only trusted signatures are.
                SignatureStatus::Valid
            };
            SignatureInfo {
                offset,
                header,
                manifest,
                status,
                by_trusted_key: is_trusted,
            }
        })
        .collect();
    Ok(Chain {
        id,
        records,
        damage,
    })
}

impl ChainCache {
    /// The judged chain of `view`, read once per chain.
    fn get(&self, view: &View, trusted: &[PublicKey]) -> Result<Arc<Chain>> {
        let id = (view.file.id.0, view.file.id.1, view.commit.signature_offset);
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(chain) = cached.as_ref().filter(|c| c.id == id) {
            return Ok(chain.clone());
        }
        let chain = Arc::new(judge_chain(view, trusted, false)?);
        *cached = Some(chain.clone());
        Ok(chain)
    }
}

/// Decides whether one entry is trusted: some trusted, valid signature lists its key with its
/// length and label, and (if `payload` is given) its bytes hash to what was signed.
fn judge_entry(
    chain: &Chain,
    key: &Key,
    len: u64,
    label: &[u8],
    payload: Option<&[u8]>,
) -> std::result::Result<(), String> {
    let mut reasons: Vec<String> = Vec::new();
    let mut hash: Option<[u8; 32]> = None;
    let mut other_signers = Vec::new();
    for record in &chain.records {
        match &record.status {
            // A trusted key's signature that does not check out vouches for nothing, and its
            // manifest cannot even be searched: say so for every entry.
            SignatureStatus::Invalid(why) if record.by_trusted_key => {
                reasons.push(format!(
                    "the signature by {} is invalid: {why}",
                    record.signer_id()
                ));
                continue;
            }
            SignatureStatus::Trusted => {}
            _ => {
                if record.record().and_then(|r| r.find(key)).is_some() {
                    other_signers.push(record.signer_id());
                }
                continue;
            }
        }
        let Some(signed) = record.record().and_then(|r| r.find(key)) else {
            continue;
        };
        if signed.value_len != len || signed.label != label {
            reasons.push(format!(
                "its length or label differs from what {} signed ({} bytes, label {:?})",
                record.signer_id(),
                signed.value_len,
                String::from_utf8_lossy(&signed.label)
            ));
            continue;
        }
        let Some(payload) = payload else {
            return Ok(());
        };
        let actual = *hash.get_or_insert_with(|| value_hash(payload));
        if actual == signed.value_hash {
            return Ok(());
        }
        reasons.push(format!(
            "its bytes differ from what {} signed: it was altered after signing",
            record.signer_id()
        ));
    }
    if reasons.is_empty() {
        reasons.push(if !other_signers.is_empty() {
            format!(
                "it is signed only by keys not trusted here ({})",
                other_signers.join(", ")
            )
        } else if let Some(damage) = &chain.damage {
            format!("the pack's signature chain is damaged: {damage}")
        } else if chain.records.is_empty() {
            "the pack is not signed".to_string()
        } else {
            "no signature covers it (added after the pack was signed?)".to_string()
        });
    }
    Err(reasons.join("; "))
}

impl Pack {
    /// The judged signature chain of `view` for this handle's trusted keys (cached).
    fn chain(&self, view: &View) -> Result<Arc<Chain>> {
        self.inner
            .signatures
            .get(view, &self.inner.options.trusted_keys)
    }

    /// The load path's check of an entry found by a lookup: covered by a trusted signature
    /// with its length and label, and (if `hash_it`) its bytes hash to the signed hash.
    pub(crate) fn check_signed(
        &self,
        view: &View,
        entry: &IndexEntry,
        payload: &[u8],
        hash_it: bool,
    ) -> Result<()> {
        let chain = self.chain(view)?;
        let (_, label) = view.record_header(entry.record_offset)?;
        judge_entry(
            &chain,
            &entry.key,
            entry.payload_len,
            label,
            hash_it.then_some(payload),
        )
        .map_err(|reason| Error::Untrusted {
            path: self.path().to_path_buf(),
            key: entry.key,
            reason,
        })
    }

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

    /// The signatures of the latest commit, newest first, each checked against the key it
    /// names (and marked [`SignatureStatus::Trusted`] if that key is one of the pack's
    /// trusted keys). Reads the manifests, not the values.
    pub fn signatures(&self) -> Result<Vec<SignatureInfo>> {
        let view = self.view()?;
        let chain = judge_chain(&view, &self.inner.options.trusted_keys, true)?;
        match chain.damage {
            Some(damage) => Err(view.corrupt(format!("signature chain: {damage}"))),
            None => Ok(chain.records),
        }
    }

    /// Checks every live entry against the signatures by `trusted` keys, hashing every value:
    /// reports each entry that no trusted signature covers, that differs from what was signed,
    /// or that fails its CRC-32, and damage to the signatures themselves.
    pub fn verify_signatures(&self, trusted: &[PublicKey]) -> Result<SignatureReport> {
        let view = self.view()?;
        let chain = judge_chain(&view, trusted, true)?;
        let mut report = SignatureReport::default();
        if let Some(damage) = &chain.damage {
            report.problems.push(Problem::new(
                None,
                view.commit.signature_offset,
                format!("signature chain: {damage}"),
            ));
        }
        for record in &chain.records {
            if let Err(e) = view
                .record_header(record.offset)
                .and_then(|(h, _)| view.record_payload(record.offset, &h))
            {
                report
                    .problems
                    .push(Problem::new(None, record.offset, strip(&e)));
            }
        }
        for (entry, label) in live_entries(&view)? {
            report.entries += 1;
            let problem = match view.payload(&entry) {
                Err(e) => Some(strip(&e)),
                Ok((_, payload)) if crc32fast::hash(payload) != entry.payload_crc => {
                    Some("value checksum mismatch".to_string())
                }
                Ok((_, payload)) => {
                    judge_entry(&chain, &entry.key, entry.payload_len, &label, Some(payload)).err()
                }
            };
            if let Some(detail) = problem {
                report
                    .problems
                    .push(Problem::new(Some(entry.key), entry.record_offset, detail));
            }
        }
        report.signatures = chain.records;
        Ok(report)
    }
}

/// Every live value entry of `view` with its label, sorted by key.
fn live_entries(view: &View) -> Result<Vec<(IndexEntry, Vec<u8>)>> {
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

/// The detail of a corruption error, without the "pack ... is corrupt" prefix.
fn strip(error: &Error) -> String {
    match error {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

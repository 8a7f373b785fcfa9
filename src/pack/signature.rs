//! The signature chain of a commit, and the load path's check of each entry.
//!
//! A commit slot points at the newest signature record; each record points at the next
//! older one (docs/FORMAT.md, section 14). A signature vouches for the entries its manifest
//! lists (key, length, label, BLAKE3 of the value) in a pack of one identity, so an entry is
//! trusted when some signature by a trusted key lists it and its bytes hash to what was
//! signed. Entries appended later are simply not listed; signing again lists them.
//!
//! The chain is read and its trusted signatures checked once per chain (cached per pack
//! handle), so a lookup costs a binary search in a manifest, and the value's hash once per
//! entry per process. Signing is in `sign.rs`, reports in `signature_report.rs`.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::format::index::IndexEntry;
use crate::format::record::RecordKind;
use crate::format::signature::{
    FIXED_LEN, MAX_SIGNATURES, SignatureHeader, SignatureRecord, Statement,
};
use crate::{Error, Key, Pack, PublicKey, Result};

use super::digest::value_hash;
use super::signature_report::{SignatureInfo, SignatureStatus};
use super::view::View;

/// A commit's signature chain, with each signature judged against the trusted keys.
#[derive(Debug)]
pub(crate) struct Chain {
    /// (device, inode, signature offset): what the chain was read from.
    id: (u64, u64, u64),
    pub(super) records: Vec<SignatureInfo>,
    /// Why the chain could not be read to its end, if it could not.
    pub(super) damage: Option<String>,
}

/// The chain of the latest view, kept by a [`Pack`] handle.
#[derive(Debug, Default)]
pub(crate) struct ChainCache(Mutex<Option<Arc<Chain>>>);

/// One record read from the file: its offset, header and manifest.
pub(super) type RawRecord = (u64, SignatureHeader, Bytes);

/// Reads the chain of `view`'s commit, newest first.
pub(super) fn read_chain(view: &View) -> std::result::Result<Vec<RawRecord>, String> {
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

pub(super) fn identity_hash(view: &View) -> Result<[u8; 32]> {
    let encoded = view
        .file
        .identity
        .encode()
        .map_err(|detail| view.corrupt(format!("bad identity: {detail}")))?;
    Ok(*blake3::hash(&encoded).as_bytes())
}

/// Reads and judges `view`'s chain. Signatures by keys outside `trusted` are checked only if
/// `check_all` (reports), not on the load path.
pub(super) fn judge_chain(view: &View, trusted: &[PublicKey], check_all: bool) -> Result<Chain> {
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
pub(super) fn judge_entry(
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
}

/// The detail of a corruption error, without the "pack ... is corrupt" prefix.
pub(super) fn strip(error: &Error) -> String {
    match error {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

//! What a pack's signatures say: each signature's status, and a full check of every entry.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::format::signature::{SignatureHeader, SignatureRecord};
use crate::keys::key_id;
use crate::{Key, Pack, PublicKey, Result};

use super::sign::live_entries;
use super::signature::{judge_chain, judge_entry, strip};
use super::verify::Problem;

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
    pub(super) offset: u64,
    pub(super) header: SignatureHeader,
    pub(super) manifest: Bytes,
    pub(super) status: SignatureStatus,
    /// Whether the signer is one of the keys it was judged against.
    pub(super) by_trusted_key: bool,
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

    pub(super) fn record(&self) -> Option<SignatureRecord<'_>> {
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

impl Pack {
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

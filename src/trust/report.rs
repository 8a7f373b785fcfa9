//! What a pack's signatures say: each signature's status, and a full check of every entry
//! against them.

use crate::pack::problem::Problem;
use crate::pack::view::View;
use crate::{Pack, Result};

use super::judge::{judge_chain, judge_entry};
use super::keys::PublicKey;
use super::signature::SignatureInfo;
#[cfg(doc)]
use super::signature::SignatureStatus;
use super::trusted::TrustedKeys;

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
        let chain = judge_chain(&view, TrustedKeys::of(self.options()), true)?;
        match chain.damage {
            Some(damage) => Err(view.corrupt(format!("signature chain: {damage}"))),
            None => Ok(chain.records),
        }
    }

    /// Checks every live entry against the signatures by `trusted` keys, hashing every value:
    /// reports each entry that no trusted signature covers, that differs from what was signed,
    /// or that fails its CRC-32, and damage to the signatures themselves.
    pub fn verify_signatures(&self, trusted: &[PublicKey]) -> Result<SignatureReport> {
        verify_signatures(&*self.view()?, trusted)
    }
}

/// Checks every live entry of `view` against the signatures by `trusted` keys: see
/// [`Pack::verify_signatures`].
pub(super) fn verify_signatures(view: &View, trusted: &[PublicKey]) -> Result<SignatureReport> {
    let chain = judge_chain(view, trusted, true)?;
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
                .push(Problem::new(None, record.offset, e.detail()));
        }
    }
    for (entry, label) in view.live_entries()? {
        report.entries += 1;
        let problem = match view.payload(&entry) {
            Err(e) => Some(e.detail()),
            Ok((_, payload)) if crc32fast::hash(payload) != entry.payload_crc => {
                Some("value checksum mismatch".to_string())
            }
            Ok((_, payload)) => {
                judge_entry(&chain, &entry.key, entry.payload_len, label, Some(payload)).err()
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

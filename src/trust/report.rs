//! What a pack's signatures say: each signature's status, and a full check of every entry
//! against them.

use crate::pack::problem::Problem;
use crate::pack::view::View;
use crate::{Pack, Result};

use super::judge::{judge_chain, judge_entry};
use super::keys::PublicKey;
use super::signature::{SignatureInfo, SignatureStatus};
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
    /// reports each entry that no trusted signature covers (at the handle's
    /// [minimum release](crate::PackOptions::min_release), if it has one), that differs from
    /// what was signed, or that fails its CRC-32, and damage to the signatures themselves.
    pub fn verify_signatures(&self, trusted: &[PublicKey]) -> Result<SignatureReport> {
        verify_signatures(&*self.view()?, trusted, self.options().min_release)
    }

    /// The release at which signatures by `trusted` keys vouch for every live entry: for each
    /// entry, the newest release among the valid trusted signatures that list it with its
    /// length and label; the oldest of those over all entries (so an older signature grafted
    /// beside a newer one shows). `Some(0)` if the signatures name no release; `None` if some
    /// entry no trusted signature lists, or the pack holds no entries and no trusted
    /// signature. Reads the manifests, not the values: [`Pack::verify_signatures`] hashes
    /// them.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{Key, Pack, PackIdentity, SecretKey};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pack = Pack::create(dir.path().join("app.wpk"), &PackIdentity::new().with("a", "b"))?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"module")?;
    /// let ci = SecretKey::generate()?;
    /// assert_eq!(pack.signed_release(&[ci.public_key()])?, None);
    /// pack.sign_release(&ci, 3)?;
    /// assert_eq!(pack.signed_release(&[ci.public_key()])?, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signed_release(&self, trusted: &[PublicKey]) -> Result<Option<u64>> {
        let view = self.view()?;
        let chain = judge_chain(&view, trusted, false)?;
        let trusted_records = || {
            chain
                .records
                .iter()
                .filter(|r| r.status == SignatureStatus::Trusted)
        };
        let mut oldest: Option<u64> = None;
        for (entry, label) in view.live_entries()? {
            let newest = trusted_records()
                .filter(|r| {
                    r.record()
                        .and_then(|record| record.find(&entry.key))
                        .is_some_and(|s| s.value_len == entry.payload_len && s.label == label)
                })
                .map(|r| r.header.release)
                .max();
            let Some(newest) = newest else {
                return Ok(None);
            };
            oldest = Some(oldest.map_or(newest, |o| o.min(newest)));
        }
        Ok(oldest.or_else(|| trusted_records().map(|r| r.header.release).max()))
    }
}

/// Checks every live entry of `view` against the signatures by `trusted` keys naming at least
/// `min_release`: see [`Pack::verify_signatures`].
pub(super) fn verify_signatures(
    view: &View,
    trusted: &[PublicKey],
    min_release: u64,
) -> Result<SignatureReport> {
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
            Ok((_, payload)) => judge_entry(
                &chain,
                &entry.key,
                entry.payload_len,
                label,
                Some(payload),
                min_release,
            )
            .err(),
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

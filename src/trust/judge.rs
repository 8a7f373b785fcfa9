//! Trust decisions: whether each signature of a commit checks out, and whether an entry is
//! covered by a trusted one.
//!
//! A commit slot points at the newest signature record; each record points at the next
//! older one (docs/FORMAT.md, section 14; the store reads them, `pack/signatures.rs`). A
//! signature vouches for the entries its manifest lists (key, length, label, BLAKE3 of the
//! value) in a pack of one identity, so an entry is trusted when some signature by a trusted
//! key lists it and its bytes hash to what was signed. Entries appended later are simply not
//! listed; signing again lists them.

use bytes::Bytes;

use crate::format::signature::{SignatureHeader, SignatureRecord, Statement};
use crate::pack::signatures::read_chain;
use crate::pack::view::View;
use crate::{Key, Result};

use super::digest::{identity_hash, value_hash};
use super::keys::PublicKey;
use super::signature::{SignatureInfo, SignatureStatus};

/// What a chain was read from: (device, inode, signature offset).
pub(super) type ChainId = (u64, u64, u64);

/// The id of `view`'s chain.
pub(super) fn chain_id(view: &View) -> ChainId {
    (view.file.id.0, view.file.id.1, view.commit.signature_offset)
}

/// A commit's signature chain, with each signature judged against the trusted keys.
#[derive(Debug)]
pub(super) struct Chain {
    /// (device, inode, signature offset): what the chain was read from.
    pub(super) id: ChainId,
    pub(super) records: Vec<SignatureInfo>,
    /// Why the chain could not be read to its end, if it could not.
    pub(super) damage: Option<String>,
}

/// Checks one signature: its generation, its manifest's hash and order (`sorted`), and the
/// Ed25519 signature of its statement by the key it names.
fn check_record(
    view: &View,
    identity_hash: &[u8; 32],
    header: &SignatureHeader,
    manifest: &[u8],
    sorted: std::result::Result<(), String>,
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
    sorted
}

/// Reads and judges `view`'s chain. Signatures by keys outside `trusted` are checked only if
/// `check_all` (reports), not on the load path.
///
/// Each manifest is copied out of the mapping first, and everything after reads the copy: its
/// hash, its order (checked here, once) and every lookup in it. So a writer who changes the
/// file later (a pack opened with `allow_shared_write`) cannot change what was judged.
pub(super) fn judge_chain(view: &View, trusted: &[PublicKey], check_all: bool) -> Result<Chain> {
    let (raw, damage) = match read_chain(view) {
        Ok(raw) => (raw, None),
        Err(damage) => (Vec::new(), Some(damage)),
    };
    let identity = identity_hash(view)?;
    let records = raw
        .into_iter()
        .map(|(offset, header, shared)| {
            let manifest = Bytes::copy_from_slice(&shared);
            let sorted = SignatureRecord {
                header,
                manifest: &manifest,
            }
            .check_sorted()
            .map_err(|e| e.to_string());
            let is_trusted = trusted.iter().any(|k| k.to_bytes() == header.signer);
            let status = if is_trusted || check_all {
                match check_record(view, &identity, &header, &manifest, sorted.clone()) {
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
                sorted: sorted.is_ok(),
                status,
                by_trusted_key: is_trusted,
            }
        })
        .collect();
    Ok(Chain {
        id: chain_id(view),
        records,
        damage,
    })
}

/// Decides whether one entry is trusted: some trusted, valid signature naming at least
/// `min_release` lists its key with its length and label, and (if `payload` is given) its
/// bytes hash to what was signed.
pub(super) fn judge_entry(
    chain: &Chain,
    key: &Key,
    len: u64,
    label: &[u8],
    payload: Option<&[u8]>,
    min_release: u64,
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
        if record.header.release < min_release {
            reasons.push(format!(
                "the signature by {} {}, older than the minimum release {min_release}",
                record.signer_id(),
                match record.header.release {
                    0 => "names no release".to_string(),
                    release => format!("is for release {release}"),
                }
            ));
            continue;
        }
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

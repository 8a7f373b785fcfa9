//! Signature records as the store keeps them: a chain from the commit slot through each
//! record to the one before (docs/FORMAT.md, section 14). The store reads the chain, appends
//! to it and carries it through compaction; it never checks a signature, which is the trust
//! layer's business (`crate::trust`).

use bytes::Bytes;

use crate::format::record::{RecordHeader, RecordKind, payload_padding};
use crate::format::signature::{self, MAX_SIGNATURES, SignatureHeader, SignatureRecord};

use super::view::View;

/// One record read from the file: its offset, header and manifest.
pub(crate) type RawRecord = (u64, SignatureHeader, Bytes);

/// Reads the chain of `view`'s commit, newest first; `Err` says why it cannot be read to its
/// end.
pub(crate) fn read_chain(view: &View) -> Result<Vec<RawRecord>, String> {
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
        let (header, _) = view.record_header(at).map_err(|e| e.detail())?;
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
            .map_err(|e| format!("the signature at offset {at} is truncated: {}", e.detail()))?;
        let record = SignatureRecord::decode(&payload)
            .map_err(|e| format!("the signature at offset {at}: {e}"))?;
        let header = record.header;
        out.push((at, header, payload.slice_ref(record.manifest)));
        at = header.previous;
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
/// could vouch for nothing anyway). Signatures survive compaction: they vouch for keys and
/// bytes, not offsets.
pub(crate) fn chain_to_copy(view: &View) -> Vec<(SignatureHeader, Bytes)> {
    match read_chain(view) {
        Ok(chain) => chain.into_iter().rev().map(|(_, h, m)| (h, m)).collect(),
        Err(damage) => {
            tracing::warn!(%damage, "dropping a damaged signature chain while compacting");
            Vec::new()
        }
    }
}

//! Signature records: an Ed25519 signature over a manifest of the entries it vouches for.
//!
//! A signature record (record kind 5) holds the signer's public key, the signature, the
//! fields of the signed statement, a pointer to the next older signature record, and the
//! manifest: one fixed-size entry per signed key (sorted by key) followed by the labels.
//! The signature covers a 128-byte [`Statement`], which binds the pack's identity, the
//! generation of the commit the signature was made for, the release it names (if any) and the
//! BLAKE3 hash of the manifest; the `previous` pointer is deliberately outside it, so that
//! compaction may move records.
//!
//! Records come in two versions: version 1 (no release, [`FIXED_LEN`] bytes before the
//! manifest) and version 2 (a release number after the fixed part, [`FIXED_LEN_V2`] bytes).
//! A signature without a release is always written as version 1, so that readers which know
//! only version 1 still read it; one with a release is version 2, which they refuse.
//!
//! Everything here is pure: decoding checks lengths, order and bounds, never the signature
//! or the hash (that is the trust layer's job, `src/trust/`, with the trusted keys).

use super::{DecodeError, part, read_u16, read_u32, read_u64, write_u16, write_u32, write_u64};
use crate::Key;

/// The size of the fixed part of a version-1 signature payload, before the manifest entries.
pub const FIXED_LEN: usize = 168;
/// The size of the fixed part of a version-2 signature payload (with a release number).
pub const FIXED_LEN_V2: usize = 176;
/// The size of one manifest entry.
pub const MANIFEST_ENTRY_LEN: usize = 80;
/// The size of the signed statement.
pub const STATEMENT_LEN: usize = 128;
/// The most signature records a commit's chain may hold.
pub const MAX_SIGNATURES: usize = 16;
/// The longest label a manifest entry may carry (as for entries).
pub const MAX_LABEL_LEN: usize = super::record::MAX_LABEL_LEN;
/// Domain separation: the first 32 bytes of every statement.
pub const STATEMENT_CONTEXT: [u8; 32] = *b"wasmpak signed manifest v1\0\0\0\0\0\0";

const MAGIC: [u8; 4] = *b"WPSG";

/// One signed entry: what the signer vouches the entry under `key` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The entry's key.
    pub key: Key,
    /// BLAKE3 of the value.
    pub value_hash: [u8; 32],
    /// The value's length.
    pub value_len: u64,
    /// The entry's label.
    pub label: Vec<u8>,
}

/// The fields of a signature record other than the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The signer's Ed25519 public key.
    pub signer: [u8; 32],
    /// The Ed25519 signature of the [`Statement`].
    pub signature: [u8; 64],
    /// The generation of the commit the signature was made for.
    pub generation: u64,
    /// When it was signed, in seconds since the Unix epoch (informational).
    pub signed_at: u64,
    /// The release the signer named (orders releases of one product), or 0 for none.
    pub release: u64,
    /// Offset of the next older signature record of the chain, or 0.
    pub previous: u64,
    /// Number of manifest entries.
    pub entry_count: u32,
    /// Bytes of labels after the entries.
    pub labels_len: u32,
    /// BLAKE3 of the manifest: the entries and the labels.
    pub manifest_hash: [u8; 32],
}

/// The message an Ed25519 signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// BLAKE3 of the encoded pack identity.
    pub identity_hash: [u8; 32],
    /// The generation of the commit the signature was made for.
    pub generation: u64,
    /// When it was signed (seconds since the Unix epoch).
    pub signed_at: u64,
    /// Number of manifest entries.
    pub entry_count: u64,
    /// BLAKE3 of the manifest.
    pub manifest_hash: [u8; 32],
    /// The release the signer named, or 0 for none (the bytes every statement had there
    /// before releases existed).
    pub release: u64,
}

impl Statement {
    /// The statement a signature record claims, for the pack identity hashing to
    /// `identity_hash`.
    pub fn of(header: &SignatureHeader, identity_hash: [u8; 32]) -> Statement {
        Statement {
            identity_hash,
            generation: header.generation,
            signed_at: header.signed_at,
            entry_count: u64::from(header.entry_count),
            manifest_hash: header.manifest_hash,
            release: header.release,
        }
    }

    /// The exact bytes that are signed.
    pub fn encode(&self) -> [u8; STATEMENT_LEN] {
        let mut b = [0u8; STATEMENT_LEN];
        b[..32].copy_from_slice(&STATEMENT_CONTEXT);
        b[32..64].copy_from_slice(&self.identity_hash);
        write_u64(&mut b, 64, self.generation);
        write_u64(&mut b, 72, self.signed_at);
        write_u64(&mut b, 80, self.entry_count);
        b[88..120].copy_from_slice(&self.manifest_hash);
        write_u64(&mut b, 120, self.release);
        b
    }
}

/// Encodes a manifest: `entries` sorted by key without duplicates, then their labels.
/// Returns `None` if the entries are unsorted or a label is too long.
pub fn encode_manifest(entries: &[ManifestEntry]) -> Option<Vec<u8>> {
    if !entries.windows(2).all(|w| w[0].key < w[1].key)
        || entries.iter().any(|e| e.label.len() > MAX_LABEL_LEN)
        || u32::try_from(entries.len()).is_err()
    {
        return None;
    }
    let labels_len: usize = entries.iter().map(|e| e.label.len()).sum();
    u32::try_from(labels_len).ok()?;
    let mut out = vec![0u8; entries.len() * MANIFEST_ENTRY_LEN];
    let mut label_at = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        let b = &mut out[i * MANIFEST_ENTRY_LEN..(i + 1) * MANIFEST_ENTRY_LEN];
        b[..32].copy_from_slice(entry.key.as_bytes());
        b[32..64].copy_from_slice(&entry.value_hash);
        write_u64(b, 64, entry.value_len);
        write_u32(b, 72, label_at as u32);
        write_u16(b, 76, entry.label.len() as u16);
        label_at += entry.label.len();
    }
    for entry in entries {
        out.extend_from_slice(&entry.label);
    }
    Some(out)
}

/// Encodes a whole signature payload from its header and an encoded manifest: version 1
/// without a release, version 2 with one.
pub fn encode(header: &SignatureHeader, manifest: &[u8]) -> Vec<u8> {
    let (version, fixed_len) = match header.release {
        0 => (1, FIXED_LEN),
        _ => (2, FIXED_LEN_V2),
    };
    let mut out = vec![0u8; fixed_len];
    out[..4].copy_from_slice(&MAGIC);
    write_u32(&mut out, 4, version);
    out[8..40].copy_from_slice(&header.signer);
    out[40..104].copy_from_slice(&header.signature);
    write_u64(&mut out, 104, header.generation);
    write_u64(&mut out, 112, header.signed_at);
    write_u64(&mut out, 120, header.previous);
    write_u32(&mut out, 128, header.entry_count);
    write_u32(&mut out, 132, header.labels_len);
    out[136..168].copy_from_slice(&header.manifest_hash);
    if version == 2 {
        write_u64(&mut out, FIXED_LEN, header.release);
    }
    out.extend_from_slice(manifest);
    out
}

/// A decoded signature payload: the header and the manifest bytes, checked for shape.
#[derive(Debug, Clone, Copy)]
pub struct SignatureRecord<'a> {
    /// The header fields.
    pub header: SignatureHeader,
    /// The manifest: entries then labels, exactly as hashed.
    pub manifest: &'a [u8],
}

impl<'a> SignatureRecord<'a> {
    /// Decodes a signature payload. Checks the magic, the version, that the manifest's length
    /// matches its counts, and that every label lies inside the label area; not the order of
    /// the entries (see [`SignatureRecord::check_sorted`]), the hash or the signature.
    pub fn decode(payload: &'a [u8]) -> Result<SignatureRecord<'a>, DecodeError> {
        let truncated = || DecodeError::new("signature record is truncated");
        let fixed = part(payload, ..FIXED_LEN, "signature record")?;
        if fixed[..4] != MAGIC {
            return Err(DecodeError::new("signature record has no magic"));
        }
        let (fixed_len, release) = match read_u32(fixed, 4) {
            1 => (FIXED_LEN, 0),
            2 => {
                let release = read_u64(
                    payload.get(..FIXED_LEN_V2).ok_or_else(truncated)?,
                    FIXED_LEN,
                );
                if release == 0 {
                    // One encoding per record: a signature without a release is version 1.
                    return Err(DecodeError::new(
                        "signature record version 2 names release 0",
                    ));
                }
                (FIXED_LEN_V2, release)
            }
            version => {
                return Err(DecodeError::new(format!(
                    "signature record version {version} is not supported"
                )));
            }
        };
        let mut signer = [0u8; 32];
        signer.copy_from_slice(&fixed[8..40]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&fixed[40..104]);
        let mut manifest_hash = [0u8; 32];
        manifest_hash.copy_from_slice(&fixed[136..168]);
        let header = SignatureHeader {
            signer,
            signature,
            generation: read_u64(fixed, 104),
            signed_at: read_u64(fixed, 112),
            release,
            previous: read_u64(fixed, 120),
            entry_count: read_u32(fixed, 128),
            labels_len: read_u32(fixed, 132),
            manifest_hash,
        };
        let expected = (header.entry_count as usize)
            .checked_mul(MANIFEST_ENTRY_LEN)
            .and_then(|n| n.checked_add(header.labels_len as usize));
        let manifest = &payload[fixed_len..];
        if expected != Some(manifest.len()) {
            return Err(DecodeError::new(format!(
                "signature manifest is {} bytes, its counts say {} entries and {} label bytes",
                manifest.len(),
                header.entry_count,
                header.labels_len
            )));
        }
        let record = SignatureRecord { header, manifest };
        for i in 0..record.len() {
            let b = record.entry_bytes(i);
            let (at, len) = (read_u32(b, 72) as usize, usize::from(read_u16(b, 76)));
            if len > MAX_LABEL_LEN || at + len > header.labels_len as usize {
                return Err(DecodeError::new(format!(
                    "signature manifest entry {i} has a label outside the label area"
                )));
            }
            if read_u16(b, 78) != 0 {
                return Err(DecodeError::new(format!(
                    "signature manifest entry {i} has reserved bytes set"
                )));
            }
        }
        Ok(record)
    }

    /// Number of manifest entries.
    pub fn len(&self) -> usize {
        self.header.entry_count as usize
    }

    /// Whether the manifest is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry_bytes(&self, i: usize) -> &'a [u8] {
        &self.manifest[i * MANIFEST_ENTRY_LEN..(i + 1) * MANIFEST_ENTRY_LEN]
    }

    fn key_at(&self, i: usize) -> &'a [u8] {
        &self.entry_bytes(i)[..32]
    }

    /// Manifest entry `i` (`i < len()`).
    pub fn entry(&self, i: usize) -> ManifestEntry {
        let b = self.entry_bytes(i);
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        let mut value_hash = [0u8; 32];
        value_hash.copy_from_slice(&b[32..64]);
        let labels = &self.manifest[self.len() * MANIFEST_ENTRY_LEN..];
        let at = read_u32(b, 72) as usize;
        let len = usize::from(read_u16(b, 76));
        ManifestEntry {
            key: Key::from_bytes(key),
            value_hash,
            value_len: read_u64(b, 64),
            // In bounds: checked by `decode`.
            label: labels[at..at + len].to_vec(),
        }
    }

    /// Whether the entries are sorted by key strictly ascending, as every signer writes them
    /// and as [`SignatureRecord::find`] needs.
    pub fn check_sorted(&self) -> Result<(), DecodeError> {
        for i in 1..self.len() {
            if self.key_at(i - 1) >= self.key_at(i) {
                return Err(DecodeError::new(format!(
                    "signature manifest entries {} and {i} are out of order",
                    i - 1
                )));
            }
        }
        Ok(())
    }

    /// The manifest entry for `key`, by binary search (the manifest must be sorted).
    pub fn find(&self, key: &Key) -> Option<ManifestEntry> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key_at(mid).cmp(key.as_bytes().as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.entry(mid)),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: u8, label: &str) -> ManifestEntry {
        ManifestEntry {
            key: Key::from_bytes([k; 32]),
            value_hash: [k ^ 0x55; 32],
            value_len: u64::from(k) * 100,
            label: label.as_bytes().to_vec(),
        }
    }

    fn header(manifest: &[u8], entries: usize, labels: usize) -> SignatureHeader {
        SignatureHeader {
            signer: [7; 32],
            signature: [9; 64],
            generation: 5,
            signed_at: 1_700_000_000,
            release: 0,
            previous: 12288,
            entry_count: entries as u32,
            labels_len: labels as u32,
            manifest_hash: *blake3::hash(manifest).as_bytes(),
        }
    }

    #[test]
    fn round_trips_and_finds_every_key() {
        let entries = vec![entry(1, "a.wasm"), entry(3, ""), entry(9, "long-name.wat")];
        let manifest = encode_manifest(&entries).unwrap();
        let head = header(&manifest, 3, 19);
        let payload = encode(&head, &manifest);
        assert_eq!(payload.len(), FIXED_LEN + 3 * MANIFEST_ENTRY_LEN + 19);
        let record = SignatureRecord::decode(&payload).unwrap();
        assert_eq!(record.header, head);
        assert_eq!(record.manifest, &manifest[..]);
        record.check_sorted().unwrap();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(record.entry(i), *e);
            assert_eq!(record.find(&e.key).as_ref(), Some(e));
        }
        assert_eq!(record.find(&Key::from_bytes([2; 32])), None);
        assert_eq!(record.find(&Key::from_bytes([0xff; 32])), None);
    }

    #[test]
    fn statement_binds_every_field() {
        let manifest = encode_manifest(&[entry(1, "x")]).unwrap();
        let head = header(&manifest, 1, 1);
        let base = Statement::of(&head, [1; 32]).encode();
        assert_eq!(&base[..32], &STATEMENT_CONTEXT);
        let variants = [
            Statement::of(&head, [2; 32]),
            Statement::of(
                &SignatureHeader {
                    generation: 6,
                    ..head
                },
                [1; 32],
            ),
            Statement::of(
                &SignatureHeader {
                    entry_count: 2,
                    ..head
                },
                [1; 32],
            ),
            Statement::of(
                &SignatureHeader {
                    manifest_hash: [0; 32],
                    ..head
                },
                [1; 32],
            ),
            Statement::of(&SignatureHeader { release: 3, ..head }, [1; 32]),
        ];
        for v in variants {
            assert_ne!(v.encode(), base);
        }
        // The chain pointer is not signed: compaction moves records.
        let moved = SignatureHeader {
            previous: 99 * 64,
            ..head
        };
        assert_eq!(Statement::of(&moved, [1; 32]).encode(), base);
    }

    #[test]
    fn releases_are_version_2_records_and_none_stays_version_1() {
        let manifest = encode_manifest(&[entry(1, "a")]).unwrap();
        let none = header(&manifest, 1, 1);
        let v1 = encode(&none, &manifest);
        assert_eq!(read_u32(&v1, 4), 1);
        assert_eq!(v1.len(), FIXED_LEN + MANIFEST_ENTRY_LEN + 1);
        // A statement without a release is byte for byte what it was before releases.
        assert_eq!(Statement::of(&none, [1; 32]).encode()[120..], [0; 8]);
        let released = SignatureHeader {
            release: 42,
            ..none
        };
        let v2 = encode(&released, &manifest);
        assert_eq!(read_u32(&v2, 4), 2);
        assert_eq!(v2.len(), FIXED_LEN_V2 + MANIFEST_ENTRY_LEN + 1);
        let record = SignatureRecord::decode(&v2).unwrap();
        assert_eq!(record.header, released);
        assert_eq!(record.manifest, &manifest[..]);
        assert_eq!(record.find(&Key::from_bytes([1; 32])), Some(entry(1, "a")));
        // Release 0 has one encoding, version 1; a cut release field is truncated.
        let mut zero = v2.clone();
        zero[FIXED_LEN..FIXED_LEN_V2].fill(0);
        assert!(SignatureRecord::decode(&zero).is_err());
        assert!(SignatureRecord::decode(&v2[..FIXED_LEN + 4]).is_err());
        let mut v3 = v2.clone();
        v3[4] = 3;
        assert!(SignatureRecord::decode(&v3).is_err());
    }

    #[test]
    fn unsorted_or_oversized_manifests_are_not_encoded() {
        assert!(encode_manifest(&[entry(2, ""), entry(1, "")]).is_none());
        assert!(encode_manifest(&[entry(2, ""), entry(2, "")]).is_none());
        let long = ManifestEntry {
            label: vec![b'x'; MAX_LABEL_LEN + 1],
            ..entry(1, "")
        };
        assert!(encode_manifest(&[long]).is_none());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let manifest = encode_manifest(&[entry(1, "ab"), entry(2, "c")]).unwrap();
        let payload = encode(&header(&manifest, 2, 3), &manifest);
        for cut in 0..payload.len() {
            assert!(
                SignatureRecord::decode(&payload[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut bad_magic = payload.clone();
        bad_magic[0] ^= 1;
        assert!(SignatureRecord::decode(&bad_magic).is_err());
        let mut bad_count = payload.clone();
        bad_count[128] = 3;
        assert!(SignatureRecord::decode(&bad_count).is_err());
        let mut huge_count = payload.clone();
        huge_count[128..132].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SignatureRecord::decode(&huge_count).is_err());
        // A label pointing past the label area.
        let mut bad_label = payload.clone();
        bad_label[FIXED_LEN + 72] = 200;
        assert!(SignatureRecord::decode(&bad_label).is_err());
        // Swapped entries decode but are not sorted.
        let mut swapped = payload.clone();
        let (a, b) = (FIXED_LEN, FIXED_LEN + MANIFEST_ENTRY_LEN);
        let first: Vec<u8> = swapped[a..b].to_vec();
        swapped.copy_within(b..b + MANIFEST_ENTRY_LEN, a);
        swapped[b..b + MANIFEST_ENTRY_LEN].copy_from_slice(&first);
        let record = SignatureRecord::decode(&swapped).unwrap();
        assert!(record.check_sorted().is_err());
    }
}

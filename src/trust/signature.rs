//! One signature of a pack as the trust layer reports it: who signed, when, what it lists,
//! and whether it checks out.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::Key;
use crate::format::signature::{SignatureHeader, SignatureRecord};

use super::keys::{PublicKey, key_id};

#[cfg(doc)]
use crate::Pack;

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
    /// The manifest, copied out of the pack when the chain was judged.
    pub(super) manifest: Bytes,
    /// Whether the manifest's entries are sorted (checked once, when the chain was judged).
    pub(super) sorted: bool,
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

    /// The release the signer named (`wasmpak sign --release`, [`Pack::sign_release`]), if
    /// any: it orders releases, and [`PackOptions::min_release`](crate::PackOptions::min_release)
    /// refuses what older ones vouch for.
    pub fn release(&self) -> Option<u64> {
        (self.header.release != 0).then_some(self.header.release)
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

    /// The record, to search, if its manifest is sorted (binary search needs it).
    pub(super) fn record(&self) -> Option<SignatureRecord<'_>> {
        self.sorted.then_some(SignatureRecord {
            header: self.header,
            manifest: &self.manifest,
        })
    }
}

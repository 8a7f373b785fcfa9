//! The trust layer's way into the store: [`TrustedKeys`] as the value check
//! [`PackOptions::trusted_keys`] sets, which [`Pack::get`](crate::Pack::get) and
//! [`Pack::install_into`](crate::Pack::install_into) consult through the store's one door,
//! `pack::check::ValueCheck`.

use std::any::Any;
use std::sync::Arc;

use crate::error::Repr;
use crate::format::index::IndexEntry;
use crate::pack::check::ValueCheck;
use crate::pack::problem::Problem;
use crate::pack::view::View;
use crate::{Error, PackOptions, Result};

use super::judge::judge_entry;
use super::keys::PublicKey;
use super::report::verify_signatures;
use super::signature::SignatureStatus;
use super::trusted::TrustedKeys;

impl ValueCheck for TrustedKeys {
    /// Covered by a trusted signature with its length and label, and (if `payload` is given)
    /// its bytes hash to the signed hash.
    fn check_value(&self, view: &View, entry: &IndexEntry, payload: Option<&[u8]>) -> Result<()> {
        let chain = self.chain(view)?;
        let (_, label) = view.record_header(entry.record_offset)?;
        judge_entry(
            &chain,
            &entry.key,
            entry.payload_len,
            label,
            payload,
            self.min_release(),
        )
        .map_err(|reason| {
            Error::from(Repr::Untrusted {
                path: view.file.path.clone(),
                key: entry.key,
                reason,
            })
        })
    }

    fn check_all(&self, view: &View) -> Result<Option<Problem>> {
        Ok(verify_signatures(view, self.keys(), self.min_release())?
            .problems()
            .first()
            .cloned())
    }

    fn seal_keys(&self, view: &View) -> Result<Vec<[u8; 32]>> {
        let chain = self.chain(view)?;
        Ok(chain
            .records
            .iter()
            .filter(|r| {
                r.status == SignatureStatus::Trusted && r.header.release >= self.min_release()
            })
            .map(|r| r.header.signer)
            .collect())
    }

    fn covers_seal(&self, seal_keys: &[[u8; 32]]) -> bool {
        !seal_keys.is_empty()
            && seal_keys
                .iter()
                .all(|sealed| self.keys().iter().any(|k| k.to_bytes() == *sealed))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl PackOptions {
    /// Accept only entries signed by one of `keys`: [`Pack::get`](crate::Pack::get) refuses
    /// an entry that no signature by a trusted key covers, or whose length, label or bytes
    /// differ from what was signed, with an
    /// [`ErrorKind::Untrusted`](crate::ErrorKind::Untrusted) error naming the entry and the
    /// reason. The value's BLAKE3 hash replaces its CRC-32 check, on the same
    /// [`Verify`](crate::Verify) schedule (once per entry per process by default). An empty
    /// list (the default) checks no signatures and costs nothing.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{ErrorKind, Key, Pack, PackIdentity, PackOptions, SecretKey};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.wpk");
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let ci = SecretKey::generate()?;
    /// let pack = Pack::create(&path, &identity)?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"signed")?;
    /// pack.sign(&ci)?;
    /// pack.insert(&Key::from_bytes([2; 32]), b"appended later")?;
    ///
    /// let node = PackOptions::new().trusted_keys([ci.public_key()]).open(&path, &identity)?;
    /// assert_eq!(node.get(&Key::from_bytes([1; 32]))?.as_deref(), Some(&b"signed"[..]));
    /// let err = node.get(&Key::from_bytes([2; 32])).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Untrusted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusted_keys(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let keys: Vec<PublicKey> = keys.into_iter().collect();
        self.check = (!keys.is_empty())
            .then(|| Arc::new(TrustedKeys::new(keys, self.min_release)) as Arc<dyn ValueCheck>);
        self
    }

    /// Accept only what signatures naming release `release` or a later one vouch for: an
    /// entry that only older signatures (or signatures without a release) list is refused
    /// with [`ErrorKind::Untrusted`](crate::ErrorKind::Untrusted), saying so. Stops a
    /// rollback to an older genuine pack, which signatures alone do not (docs/FORMAT.md,
    /// section 15). Needs [`PackOptions::trusted_keys`]: opening refuses a minimum release
    /// without them. 0 (the default) accepts any release.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmpak::{ErrorKind, Key, Pack, PackIdentity, PackOptions, SecretKey};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.wpk");
    /// let identity = PackIdentity::new().with("engine", "demo");
    /// let ci = SecretKey::generate()?;
    /// let pack = Pack::create(&path, &identity)?;
    /// pack.insert(&Key::from_bytes([1; 32]), b"module")?;
    /// pack.sign_release(&ci, 7)?;
    ///
    /// let node = PackOptions::new().trusted_keys([ci.public_key()]);
    /// assert!(node.clone().min_release(7).open(&path, &identity)?.get(&Key::from_bytes([1; 32]))?.is_some());
    /// let err = node.min_release(8).open(&path, &identity)?.get(&Key::from_bytes([1; 32])).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Untrusted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn min_release(mut self, release: u64) -> Self {
        self.min_release = release;
        if let Some(trusted) = self
            .check
            .as_ref()
            .and_then(|check| check.as_any().downcast_ref::<TrustedKeys>())
        {
            let keys = trusted.keys().to_vec();
            self.check = Some(Arc::new(TrustedKeys::new(keys, release)));
        }
        self
    }
}

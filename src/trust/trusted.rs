//! The keys a pack handle trusts, with the signature chains it judged against them.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::pack::view::View;
use crate::{PackOptions, Result, sync};

use super::judge::{Chain, chain_id, judge_chain};
use super::keys::PublicKey;

/// How many judged chains a [`TrustedKeys`] keeps: one per pack its options opened, for the
/// few packs a cache reads at once.
const CACHED_CHAINS: usize = 8;

/// Entries must be signed by one of these keys.
///
/// Each chain is read and its trusted signatures checked once (then cached by the file and
/// offset it was read from, which never change), so a lookup costs a binary search in a
/// manifest, and the value's hash once per entry per process.
pub(super) struct TrustedKeys {
    keys: Vec<PublicKey>,
    /// The lowest release a signature must name to vouch for anything (0: any).
    min_release: u64,
    /// The chains judged lately, the newest last.
    chains: Mutex<Vec<Arc<Chain>>>,
}

impl TrustedKeys {
    pub(super) fn new(keys: Vec<PublicKey>, min_release: u64) -> TrustedKeys {
        TrustedKeys {
            keys,
            min_release,
            chains: Mutex::default(),
        }
    }

    /// The keys.
    pub(super) fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The lowest release a signature must name to vouch for anything (0: any).
    pub(super) fn min_release(&self) -> u64 {
        self.min_release
    }

    /// The trusted keys `options` were given (none if none).
    pub(super) fn of(options: &PackOptions) -> &[PublicKey] {
        options
            .check
            .as_ref()
            .and_then(|check| check.as_any().downcast_ref::<TrustedKeys>())
            .map_or(&[], |trusted| &trusted.keys)
    }

    /// The judged chain of `view`'s commit.
    pub(super) fn chain(&self, view: &View) -> Result<Arc<Chain>> {
        let id = chain_id(view);
        let mut chains = sync::lock(&self.chains);
        if let Some(chain) = chains.iter().find(|c| c.id == id) {
            return Ok(chain.clone());
        }
        let chain = Arc::new(judge_chain(view, &self.keys, false)?);
        if chains.len() == CACHED_CHAINS {
            chains.remove(0);
        }
        chains.push(chain.clone());
        Ok(chain)
    }
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKeys")
            .field("keys", &self.keys)
            .field("min_release", &self.min_release)
            .finish_non_exhaustive()
    }
}

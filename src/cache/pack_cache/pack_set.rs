//! The packs one engine identity reads, in the order it reads them, and the one it writes.
//!
//! Order: first the shipped packs (files the application named, then packs found by name in
//! shipped directories), then the cache's own directory: the engine's own pack, then sibling
//! packs of other CPU levels. Within each group the most specific identity comes first (see
//! [`specificity`]). Shipped packs come first because they are what the application vouches
//! for; the own pack only ever holds what this host had to compile itself, so in steady state a
//! key lives in one of them. Packs the engine cannot load (CPU features it lacks, another
//! wasmer, a damaged or missing shipped file) are remembered so that a miss can say why.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::{EngineIdentity, Incompatibility};

use super::discovery::{siblings, specificity};
use super::slot::PackSlot;
use super::{Inner, Sources};

/// How long a set of layers is trusted before a miss lists the directories again, so that a
/// pack installed while the process runs is found.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct PackSet {
    pub(super) identity: EngineIdentity,
    /// Where saves go; `None` for a cache without a directory of its own.
    pub(super) own: Option<Arc<PackSlot>>,
    layers: RwLock<Option<Arc<Layers>>>,
    /// Unusable packs this set has reported (and counted) already.
    reported: Mutex<HashSet<PathBuf>>,
}

/// The result of one look at the sources.
#[derive(Debug)]
pub(super) struct Layers {
    /// The packs to read, in order.
    pub(super) readable: Vec<Arc<PackSlot>>,
    /// Packs that could have served this engine but cannot.
    pub(super) unusable: Vec<Unusable>,
    /// Whether the cache's own directory was listed for packs of other CPU levels. The first
    /// look skips that: they come after the engine's own pack anyway, so a process whose own
    /// pack has what it loads never pays for the listing.
    pub(super) complete: bool,
    built: Instant,
}

/// A pack an engine cannot load, and why.
#[derive(Debug, Clone)]
pub(super) struct Unusable {
    pub(super) path: PathBuf,
    pub(super) why: String,
}

impl PackSet {
    pub(super) fn new(identity: EngineIdentity, own: Option<Arc<PackSlot>>) -> PackSet {
        PackSet {
            identity,
            own,
            layers: RwLock::new(None),
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// The layers if they were built already: no I/O.
    pub(super) fn layers(&self) -> Option<Arc<Layers>> {
        self.layers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The layers, built on first use (without listing the cache's own directory). Blocks on
    /// the file system then.
    pub(super) fn layers_or_build(&self, cache: &Inner) -> Arc<Layers> {
        match self.layers() {
            Some(layers) => layers,
            None => self.rebuild(cache, false),
        }
    }

    /// Whether a miss should look at the sources again: the own directory was not listed
    /// yet, or the last look is older than [`RESCAN_INTERVAL`].
    pub(super) fn rescan_due(&self) -> bool {
        self.layers()
            .is_none_or(|layers| !layers.complete || layers.built.elapsed() >= RESCAN_INTERVAL)
    }

    /// Looks at the sources again, listing the own directory if `complete`. Blocks on the
    /// file system.
    pub(super) fn rebuild(&self, cache: &Inner, complete: bool) -> Arc<Layers> {
        let layers = Arc::new(self.build(cache, complete));
        *self.layers.write().unwrap_or_else(PoisonError::into_inner) = Some(layers.clone());
        layers
    }

    fn build(&self, cache: &Inner, complete: bool) -> Layers {
        let Sources {
            local_dir,
            shipped_packs,
            shipped_dirs,
            embedded_packs,
        } = &cache.sources;
        let mut unusable = Vec::new();
        let mut refuse = |path: &PathBuf, why: String| {
            unusable.push(Unusable {
                path: path.clone(),
                why,
            })
        };

        let mut shipped: Vec<(usize, Arc<PackSlot>)> = Vec::new();
        let embedded = embedded_packs.iter().map(|(name, bytes)| {
            let slot = cache.slot(name, || PackSlot::embedded(name.clone(), bytes.clone()));
            (name, slot)
        });
        let files = shipped_packs.iter().map(|path| {
            (
                path,
                cache.slot(path, || PackSlot::shipped(path.clone(), None)),
            )
        });
        for (path, slot) in embedded.chain(files) {
            let on_stale = |e: &crate::Error| tracing::debug!(error = %e, "unusable shipped pack");
            match slot.for_read(&cache.pack_options, on_stale) {
                Ok(Some(pack)) => match EngineIdentity::from_pack_identity(pack.identity()) {
                    Some(theirs) => match self.identity.can_load(&theirs) {
                        Ok(()) => shipped.push((specificity(&theirs), slot)),
                        Err(why) => refuse(path, why.to_string()),
                    },
                    None => {
                        let identity = pack.identity().to_string();
                        refuse(path, Incompatibility::NotAnEngine { identity }.to_string())
                    }
                },
                Ok(None) => refuse(
                    path,
                    slot.stale_reason()
                        .unwrap_or_else(|| "the file does not exist".to_string()),
                ),
                Err(e) => refuse(path, e.to_string()),
            }
        }
        for dir in shipped_dirs {
            let found = self.compatible_in(dir, &mut refuse, |path, theirs| {
                cache.slot(path, || {
                    PackSlot::shipped(path.clone(), Some(theirs.clone()))
                })
            });
            shipped.extend(found);
        }
        // Stable: equally specific packs keep the order the application gave.
        shipped.sort_by_key(|(specific, _)| std::cmp::Reverse(*specific));

        let mut readable: Vec<Arc<PackSlot>> = shipped.into_iter().map(|(_, s)| s).collect();
        if let Some(own) = &self.own {
            readable.push(own.clone());
        }
        if let Some(dir) = local_dir.as_ref().filter(|_| complete) {
            let mut local = self.compatible_in(dir, &mut refuse, |path, theirs| {
                cache.slot(path, || PackSlot::local(path.clone(), theirs.clone()))
            });
            local.sort_by_key(|(specific, _)| std::cmp::Reverse(*specific));
            readable.extend(local.into_iter().map(|(_, s)| s));
        }
        let mut seen = HashSet::new();
        readable.retain(|slot| seen.insert(slot.path.clone()));
        Layers {
            readable,
            unusable,
            complete: complete || local_dir.is_none(),
            built: Instant::now(),
        }
    }

    /// The packs of this engine's family in `dir` that it can load (not its own pack), with
    /// their specificity; the others go to `refuse`.
    fn compatible_in(
        &self,
        dir: &std::path::Path,
        refuse: &mut impl FnMut(&PathBuf, String),
        slot: impl Fn(&PathBuf, &EngineIdentity) -> Arc<PackSlot>,
    ) -> Vec<(usize, Arc<PackSlot>)> {
        let found = match siblings(dir, &self.identity) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list module packs");
                return Vec::new();
            }
        };
        let own = self.own.as_ref().map(|slot| slot.path.clone());
        let mut compatible = Vec::new();
        for (path, theirs) in found {
            if own.as_ref() == Some(&path) {
                continue;
            }
            match self.identity.can_load(&theirs) {
                Ok(()) => compatible.push((specificity(&theirs), slot(&path, &theirs))),
                // Another family cannot be listed here; only CPU features can differ.
                Err(why @ Incompatibility::CpuFeatures { .. }) => refuse(&path, why.to_string()),
                Err(_) => {}
            }
        }
        compatible
    }

    /// After a miss: names each pack that might have held the module but could not be used,
    /// once per pack in this set, and once per pack and process in the log. Returns how many
    /// were reported for the first time.
    pub(super) fn report_unusable(&self, layers: &Layers) -> u64 {
        if layers.unusable.is_empty() {
            return 0;
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let mut new = 0;
        for pack in &layers.unusable {
            if !reported.insert(pack.path.clone()) {
                continue;
            }
            new += 1;
            if warned_in_this_process(&pack.path) {
                continue;
            }
            tracing::warn!(
                pack = %pack.path.display(),
                engine = %self.identity,
                "module pack {} cannot be used by this engine: {}; the modules it holds are \
                 compiled instead",
                pack.path.display(),
                pack.why
            );
        }
        new
    }
}

/// Whether the log has named `path` as unusable in this process already (and notes it).
fn warned_in_this_process(path: &std::path::Path) -> bool {
    static WARNED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    !WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_path_buf())
}

//! Whether an engine may load the artifacts of a pack (or module object) of some identity:
//! the check every artifact passes before it reaches wasmer, cheap enough for every first load.
//!
//! Assumptions: an engine's identity never changes (wasmer fixes its compiler and target when
//! it is built) and engine ids are never reused within a process, so the identity is computed
//! once per engine and remembered by id. An engine without a compiler
//! (`Engine::headless`) loads the artifacts of any compiler of the same artifact format, ABI,
//! target and CPU features: the compiler matters for compiling only.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use wasmer::{Engine, EngineId};

use super::{EngineIdentity, Incompatibility};
use crate::PackIdentity;

/// How many engines' identities are remembered; beyond that the memo starts over (a
/// forgotten identity only costs recomputing it, about a microsecond).
const MAX_REMEMBERED_ENGINES: usize = 256;

/// What is known about one engine, computed once.
#[derive(Debug)]
pub(crate) struct Known {
    /// The engine's identity.
    pub(crate) identity: EngineIdentity,
    /// The identity as a pack stores it.
    pub(crate) pack_identity: PackIdentity,
    /// The identity encoded as module objects hold it; empty if it is too large to encode,
    /// which matches nothing.
    #[cfg(feature = "object-store")]
    pub(crate) encoded: Vec<u8>,
    /// Whether the engine has a compiler; without one it loads any compiler's artifacts.
    compiles: bool,
}

impl Known {
    fn of(engine: &Engine) -> Known {
        let identity = EngineIdentity::of(engine);
        let pack_identity = identity.to_pack_identity();
        Known {
            #[cfg(feature = "object-store")]
            encoded: pack_identity.encode().unwrap_or_default(),
            pack_identity,
            identity,
            compiles: compiles(engine),
        }
    }

    /// Whether this engine can load artifacts built for `pack`: the identity's own rule
    /// ([`EngineIdentity::can_load`]), with the compiler and artifact format left out for an
    /// engine without a compiler.
    pub(crate) fn can_load(&self, pack: &PackIdentity) -> Result<(), Incompatibility> {
        if *pack == self.pack_identity {
            return Ok(());
        }
        let theirs = EngineIdentity::from_pack_identity(pack).ok_or_else(|| {
            Incompatibility::NotAnEngine {
                identity: pack.to_string(),
            }
        })?;
        if self.compiles {
            return self.identity.can_load(&theirs);
        }
        self.identity.with_compiler_of(&theirs).can_load(&theirs)
    }
}

/// What is known about `engine`, from the memo after its first use.
pub(crate) fn known(engine: &Engine) -> Arc<Known> {
    static KNOWN: OnceLock<RwLock<HashMap<EngineId, Arc<Known>>>> = OnceLock::new();
    let memo = KNOWN.get_or_init(Default::default);
    let id = engine.id();
    if let Some(known) = memo.read().unwrap_or_else(PoisonError::into_inner).get(&id) {
        return known.clone();
    }
    let known = Arc::new(Known::of(engine));
    let mut memo = memo.write().unwrap_or_else(PoisonError::into_inner);
    if memo.len() >= MAX_REMEMBERED_ENGINES {
        memo.clear();
    }
    memo.insert(id, known.clone());
    known
}

/// Whether `engine` has a compiler. Only `sys` engines serialize artifacts; any other backend
/// counts as compiling, so the full identity rule applies to it.
fn compiles(engine: &Engine) -> bool {
    !engine.is_sys() || engine.as_sys().inner().compiler().is_ok()
}

#[cfg(test)]
mod tests {
    use wasmer::sys::NativeEngineExt;

    use super::*;
    use crate::cache::test_support::{engine, engine_without_cpu_features};

    #[test]
    fn an_engine_loads_its_own_identity_and_lower_cpu_levels_only() {
        let (engine, lower) = (engine(), engine_without_cpu_features());
        let ours = known(engine);
        assert!(
            Arc::ptr_eq(&ours, &known(&engine.clone())),
            "remembered by engine id"
        );
        assert_eq!(ours.can_load(&ours.pack_identity), Ok(()));
        let theirs = known(lower);
        assert_eq!(ours.can_load(&theirs.pack_identity), Ok(()));
        if theirs.identity != ours.identity {
            let refused = theirs.can_load(&ours.pack_identity).unwrap_err();
            assert!(
                matches!(refused, Incompatibility::CpuFeatures { .. }),
                "{refused}"
            );
        }
        let not_wasmer = PackIdentity::new().with("engine", "demo");
        assert_eq!(
            ours.can_load(&not_wasmer),
            Err(Incompatibility::NotAnEngine {
                identity: not_wasmer.to_string()
            })
        );
    }

    #[test]
    fn a_headless_engine_loads_any_compiler_s_artifacts_of_its_target() {
        let compiling = known(engine());
        let headless = known(&Engine::headless());
        assert!(compiling.compiles && !headless.compiles);
        assert_ne!(
            headless.identity.deterministic_id(),
            compiling.identity.deterministic_id()
        );
        assert_eq!(headless.can_load(&compiling.pack_identity), Ok(()));
        // A compiling engine keeps the strict rule.
        let refused = compiling.can_load(&headless.pack_identity).unwrap_err();
        assert!(
            matches!(
                refused,
                Incompatibility::Engine {
                    field: "engine",
                    ..
                }
            ),
            "{refused}"
        );
    }
}

//! What an engine's compiled modules depend on, and which packs an engine may load.
//!
//! Assumptions: an artifact compiled by one engine loads into another exactly when their
//! compiler ([`Engine::deterministic_id`]), artifact format, artifact ABI version and target
//! triple match and the loading engine's target has every CPU feature the artifact was
//! compiled for. That is wasmer's own rule: `Artifact::from_parts` (wasmer-compiler 7.4)
//! refuses an artifact whose CPU features are not a subset of the engine's target features,
//! and instantiation checks them against the host again. The deterministic id alone is not
//! enough: it names the compiler and its options (for cranelift just `cranelift-opts`), not
//! the CPU the code was compiled for, nor the wasmer version that laid the artifact out.
//!
//! On Linux the C library is no part of the identity: wasmer 7.4 reads only the architecture,
//! vendor, operating system and binary format of a triple, never its environment, so an
//! engine of a glibc (`*-linux-gnu`) and one of a musl (`*-linux-musl`) build compile the same
//! bytes, which call into the runtime only through the function pointers the loading process
//! gives them. An identity spells such a target the glibc way ([`linux_target`]), so both
//! builds name, look for and open the same pack; a pack whose identity spells musl (built by
//! an earlier wasmpak with `--target *-linux-musl`) loads too.

use std::fmt;

use wasmer::Engine;
use wasmer::sys::NativeEngineExt;

use super::Incompatibility;
use super::cpu_level;
use crate::{IdentityValue, PackIdentity};

/// Everything that decides whether a module compiled by one engine can be loaded by another.
///
/// A pack records the identity of the engine that built it; its `cpu` features are the ones
/// the pack's artifacts may require. An engine loads from a pack when [`can_load`] says so:
/// same compiler, artifact format, ABI version and target, and a superset of the pack's CPU
/// features. So a pack built for `x86-64-v2` loads on every x86-64-v2 machine and above.
///
/// [`can_load`]: EngineIdentity::can_load
///
/// # Example
///
/// ```
/// use wasmer::Engine;
/// use wasmpak::EngineIdentity;
///
/// let engine = Engine::default();
/// let identity = EngineIdentity::of(&engine);
/// assert_eq!(identity.deterministic_id(), engine.deterministic_id());
/// assert_eq!(identity, EngineIdentity::of(&engine.clone()));
/// assert!(identity.can_load(&identity).is_ok());
/// assert!(identity.pack_file_name().starts_with(&engine.deterministic_id()));
/// let pack_identity = identity.to_pack_identity();
/// let fields: Vec<_> = pack_identity.fields().map(|(name, _)| name).collect();
/// assert_eq!(fields, ["engine", "format", "abi", "target", "cpu"]);
/// assert_eq!(EngineIdentity::from_pack_identity(&pack_identity), Some(identity));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineIdentity {
    deterministic_id: String,
    artifact_format: String,
    abi_version: u32,
    target_triple: String,
    cpu_features: String,
}

impl EngineIdentity {
    /// The identity of `engine`.
    pub fn of(engine: &Engine) -> EngineIdentity {
        // Only `sys` engines have a target (asking another backend panics); other backends
        // cannot serialize modules anyway, so an empty target keeps them apart from `sys`.
        let (target_triple, cpu_features) = if engine.is_sys() {
            let target = engine.target();
            let features: Vec<String> = target
                .cpu_features()
                .iter()
                .map(|feature| feature.to_string())
                .collect();
            (
                linux_target(&target.triple().to_string()),
                sorted_list(features),
            )
        } else {
            (String::new(), String::new())
        };
        EngineIdentity {
            deterministic_id: engine.deterministic_id(),
            artifact_format: engine.artifact_format(),
            abi_version: wasmer_types::MetadataHeader::CURRENT_VERSION,
            target_triple,
            cpu_features,
        }
    }

    /// The engine identity a pack stores (see [`to_pack_identity`](Self::to_pack_identity)),
    /// or `None` if `identity` does not have exactly those fields.
    pub fn from_pack_identity(identity: &PackIdentity) -> Option<EngineIdentity> {
        let fields: Vec<(&str, &IdentityValue)> = identity.fields().collect();
        let [
            ("engine", IdentityValue::Str(engine)),
            ("format", IdentityValue::Str(format)),
            ("abi", IdentityValue::Num(abi)),
            ("target", IdentityValue::Str(target)),
            ("cpu", IdentityValue::Str(cpu)),
        ] = fields.as_slice()
        else {
            return None;
        };
        Some(EngineIdentity {
            deterministic_id: engine.clone(),
            artifact_format: format.clone(),
            abi_version: u32::try_from(*abi).ok()?,
            target_triple: target.clone(),
            cpu_features: cpu.clone(),
        })
    }

    /// The compiler and its options, from [`Engine::deterministic_id`].
    pub fn deterministic_id(&self) -> &str {
        &self.deterministic_id
    }

    /// The artifact format, from [`Engine::artifact_format`].
    pub fn artifact_format(&self) -> &str {
        &self.artifact_format
    }

    /// The version of wasmer's serialized artifact layout.
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// The target triple code is compiled for, such as `x86_64-unknown-linux-gnu`. An engine
    /// of a musl build has the glibc spelling: the C library changes nothing the engine
    /// compiles.
    pub fn target_triple(&self) -> &str {
        &self.target_triple
    }

    /// The target's CPU features, sorted and comma-separated, such as `avx,avx2,sse2`: for a
    /// pack, the features its artifacts may require.
    pub fn cpu_features(&self) -> &str {
        &self.cpu_features
    }

    /// [`cpu_features`](Self::cpu_features) as a list.
    pub fn cpu_feature_list(&self) -> Vec<&str> {
        self.cpu_features
            .split(',')
            .filter(|name| !name.is_empty())
            .collect()
    }

    /// The CPU features as pack file names spell them: the highest [`CpuLevel`] they contain,
    /// then `+` and each feature beyond it: `x86-64-v3`, `x86-64-v2+avx+avx2`, `armv8-a`, or
    /// `none`.
    ///
    /// [`CpuLevel`]: crate::CpuLevel
    pub fn cpu_level(&self) -> String {
        cpu_level::tag(&self.target_triple, &self.cpu_feature_list())
    }

    /// Whether an engine of this identity can load artifacts from a pack built for `pack`:
    /// the same compiler, artifact format, artifact ABI version and target triple (a Linux
    /// triple's musl environment counting as glibc's, see [`target_triple`]), and every CPU
    /// feature `pack` requires (wasmer's own rule for deserializing an artifact).
    ///
    /// [`target_triple`]: Self::target_triple
    pub fn can_load(&self, pack: &EngineIdentity) -> Result<(), Incompatibility> {
        let fields = [
            ("engine", &pack.deterministic_id, &self.deterministic_id),
            ("format", &pack.artifact_format, &self.artifact_format),
            ("target", &pack.target_triple, &self.target_triple),
        ];
        if pack.abi_version != self.abi_version {
            return Err(Incompatibility::Engine {
                field: "abi",
                pack: pack.abi_version.to_string(),
                engine: self.abi_version.to_string(),
            });
        }
        for (field, theirs, ours) in fields {
            let same = match field {
                "target" => linux_target(theirs) == linux_target(ours),
                _ => theirs == ours,
            };
            if !same {
                return Err(Incompatibility::Engine {
                    field,
                    pack: theirs.clone(),
                    engine: ours.clone(),
                });
            }
        }
        let have = self.cpu_feature_list();
        let missing: Vec<String> = pack
            .cpu_feature_list()
            .into_iter()
            .filter(|feature| !have.contains(feature))
            .map(str::to_string)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Incompatibility::CpuFeatures { missing })
        }
    }

    /// The identity as pack fields `engine`, `format`, `abi`, `target`, `cpu`, in that order.
    pub fn to_pack_identity(&self) -> PackIdentity {
        PackIdentity::new()
            .with("engine", self.deterministic_id.as_str())
            .with("format", self.artifact_format.as_str())
            .with("abi", self.abi_version)
            .with("target", self.target_triple.as_str())
            .with("cpu", self.cpu_features.as_str())
    }

    /// A name safe in any file system that differs whenever the identity does:
    /// `{engine}-{format}-v{abi}-{target}-{cpu level}`, such as
    /// `cranelift-opts-wasmer-universal-v12-x86_64-unknown-linux-gnu-x86-64-v3`.
    pub fn file_stem(&self) -> String {
        format!("{}{}", self.family_prefix(), file_safe(&self.cpu_level()))
    }

    /// The file name a [`PackCache`](crate::PackCache) gives the pack of this identity in its
    /// directory, and looks for in directories of shipped packs: `{file_stem}.v1.wpk`.
    pub fn pack_file_name(&self) -> String {
        format!("{}{}", self.file_stem(), pack_file_suffix())
    }

    /// What the file names of packs of this engine family (every identity but the CPU
    /// features) start with: `{engine}-{format}-v{abi}-{target}-`.
    pub(crate) fn family_prefix(&self) -> String {
        file_safe(&format!(
            "{}-{}-v{}-{}-",
            self.deterministic_id, self.artifact_format, self.abi_version, self.target_triple
        ))
    }

    /// This identity with the compiler of `other`: its deterministic id and artifact format,
    /// the two fields an engine's compiler decides.
    pub(crate) fn with_compiler_of(&self, other: &EngineIdentity) -> EngineIdentity {
        EngineIdentity {
            deterministic_id: other.deterministic_id.clone(),
            artifact_format: other.artifact_format.clone(),
            ..self.clone()
        }
    }

    /// This identity with other CPU features (sorted, comma-separated).
    pub(crate) fn with_cpu_features(&self, cpu_features: &[String]) -> EngineIdentity {
        EngineIdentity {
            cpu_features: sorted_list(cpu_features.to_vec()),
            ..self.clone()
        }
    }

    /// The identity of the pack named `file_name` in this engine's family, as the name tells
    /// it; `None` if the name is not `{family prefix}{cpu level}.v1.wpk`. The family includes
    /// the musl spelling of a Linux target, which earlier versions gave packs built with
    /// `--target *-linux-musl`.
    pub(crate) fn sibling_named(&self, file_name: &str) -> Option<EngineIdentity> {
        let musl = musl_target(&self.target_triple).map(|target_triple| EngineIdentity {
            target_triple,
            ..self.clone()
        });
        std::iter::once(self).chain(&musl).find_map(|member| {
            let tag = file_name
                .strip_prefix(&member.family_prefix())?
                .strip_suffix(&pack_file_suffix())?;
            Some(member.with_cpu_features(&cpu_level::parse_tag(tag)?))
        })
    }
}

/// `triple` as an identity spells it: a Linux triple whose environment is musl's (`musl`,
/// `musleabihf`, ...) with glibc's instead (`gnu`, `gnueabihf`, ...); any other as it is.
pub(crate) fn linux_target(triple: &str) -> String {
    match triple.split('-').collect::<Vec<_>>().as_slice() {
        [arch, vendor, "linux", env] if env.starts_with("musl") => {
            format!("{arch}-{vendor}-linux-gnu{}", &env["musl".len()..])
        }
        _ => triple.to_string(),
    }
}

/// The musl spelling of a Linux triple in glibc's (the inverse of [`linux_target`]), or `None`.
fn musl_target(triple: &str) -> Option<String> {
    match triple.split('-').collect::<Vec<_>>().as_slice() {
        [arch, vendor, "linux", env] if env.starts_with("gnu") => {
            Some(format!("{arch}-{vendor}-linux-musl{}", &env["gnu".len()..]))
        }
        _ => None,
    }
}

/// What every pack file name ends with: `.v{format version}.wpk`.
fn pack_file_suffix() -> String {
    format!(".v{}.wpk", crate::format::superblock::FORMAT_VERSION)
}

fn sorted_list(mut features: Vec<String>) -> String {
    features.sort();
    features.dedup();
    features.join(",")
}

/// `name` with every character outside `[A-Za-z0-9._+-]` replaced by `_`.
pub(crate) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl fmt::Display for EngineIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_pack_identity(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::engine;

    fn sample(deterministic_id: &str, cpu_features: &str) -> EngineIdentity {
        EngineIdentity {
            deterministic_id: deterministic_id.to_string(),
            artifact_format: "wasmer-universal".to_string(),
            abi_version: 24,
            target_triple: "x86_64-unknown-linux-gnu".to_string(),
            cpu_features: cpu_features.to_string(),
        }
    }

    #[test]
    fn describes_the_engine() {
        let engine = engine();
        let identity = EngineIdentity::of(engine);
        assert_eq!(identity.deterministic_id(), engine.deterministic_id());
        assert_eq!(identity.artifact_format(), engine.artifact_format());
        assert_eq!(
            identity.abi_version(),
            wasmer_types::MetadataHeader::CURRENT_VERSION
        );
        assert_eq!(
            identity.target_triple(),
            linux_target(&engine.target().triple().to_string())
        );
        assert!(!identity.target_triple().contains("musl"));
        let features: Vec<&str> = identity.cpu_features().split(',').collect();
        let mut sorted = features.clone();
        sorted.sort();
        assert_eq!(features, sorted);
        assert_eq!(features.len(), engine.target().cpu_features().len());
    }

    #[test]
    fn pack_identity_and_display_list_every_field_in_order() {
        let identity = sample("cranelift-opts", "avx,sse2");
        let pack = identity.to_pack_identity();
        assert_eq!(pack.get("abi"), Some(&IdentityValue::Num(24)));
        assert_eq!(
            identity.to_string(),
            "engine=cranelift-opts format=wasmer-universal abi=24 \
             target=x86_64-unknown-linux-gnu cpu=avx,sse2"
        );
    }

    #[test]
    fn file_names_spell_the_cpu_level_and_parse_back() {
        let v2 = "popcnt,sse2,sse3,sse4.1,sse4.2,ssse3";
        let identity = sample("cranelift-opts", v2);
        let prefix = "cranelift-opts-wasmer-universal-v24-x86_64-unknown-linux-gnu-";
        assert_eq!(identity.file_stem(), format!("{prefix}x86-64-v2"));
        assert_eq!(
            identity.pack_file_name(),
            format!("{prefix}x86-64-v2.v1.wpk")
        );
        let more = sample("cranelift-opts", &format!("avx,{v2}"));
        assert_eq!(more.file_stem(), format!("{prefix}x86-64-v2+avx"));
        assert_eq!(
            sample("cranelift-opts", "").file_stem(),
            format!("{prefix}none")
        );

        // A sibling's name gives back its identity; other names give nothing.
        assert_eq!(
            identity.sibling_named(&more.pack_file_name()),
            Some(more.clone())
        );
        assert_eq!(
            more.sibling_named(&identity.pack_file_name()),
            Some(identity)
        );
        for other in [
            format!("{prefix}x86-64-v2.v2.wpk"),
            format!("{prefix}1a2b3c4d.v1.wpk"),
            "cranelift-opts-wasmer-universal-v25-x86_64-unknown-linux-gnu-x86-64.v1.wpk"
                .to_string(),
            "app.wpk".to_string(),
        ] {
            assert_eq!(more.sibling_named(&other), None, "{other}");
        }

        let odd = sample("llvm/O3 fast:x", "").file_stem();
        assert!(odd.starts_with("llvm_O3_fast_x-"), "{odd}");
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        );
    }

    #[test]
    fn loads_what_needs_a_subset_of_its_features() {
        let host = sample("cranelift-opts", "avx,avx2,sse2");
        assert_eq!(host.can_load(&sample("cranelift-opts", "sse2")), Ok(()));
        assert_eq!(host.can_load(&sample("cranelift-opts", "")), Ok(()));
        assert_eq!(host.can_load(&host), Ok(()));
        assert_eq!(
            host.can_load(&sample("cranelift-opts", "avx512f,avx512vl,sse2")),
            Err(Incompatibility::CpuFeatures {
                missing: vec!["avx512f".to_string(), "avx512vl".to_string()]
            })
        );
        let singlepass = sample("singlepass", "sse2");
        let refused = host.can_load(&singlepass).unwrap_err();
        assert!(matches!(
            refused,
            Incompatibility::Engine {
                field: "engine",
                ..
            }
        ));
        assert_eq!(
            refused.to_string(),
            "it was built for compiler singlepass, this engine has cranelift-opts"
        );
        let mut older = sample("cranelift-opts", "sse2");
        older.abi_version = 23;
        assert!(matches!(
            host.can_load(&older),
            Err(Incompatibility::Engine { field: "abi", .. })
        ));
        let mut arm = sample("cranelift-opts", "neon");
        arm.target_triple = "aarch64-unknown-linux-gnu".to_string();
        assert!(matches!(
            host.can_load(&arm),
            Err(Incompatibility::Engine {
                field: "target",
                ..
            })
        ));
    }

    #[test]
    fn linux_targets_are_spelled_with_glibc() {
        for (triple, spelled) in [
            ("x86_64-unknown-linux-musl", "x86_64-unknown-linux-gnu"),
            ("aarch64-unknown-linux-musl", "aarch64-unknown-linux-gnu"),
            (
                "armv7-unknown-linux-musleabihf",
                "armv7-unknown-linux-gnueabihf",
            ),
            ("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"),
            ("x86_64-apple-darwin", "x86_64-apple-darwin"),
            ("x86_64-unknown-freebsd", "x86_64-unknown-freebsd"),
            ("wasm32-unknown-unknown", "wasm32-unknown-unknown"),
        ] {
            assert_eq!(linux_target(triple), spelled);
        }
    }

    /// An engine of a musl build (its target's environment is musl) has the identity, and so
    /// the pack file name, of the glibc build's engine with the same CPU features.
    #[test]
    fn a_musl_engine_has_the_glibc_engines_identity() {
        use std::str::FromStr;
        use wasmer::sys::{CpuFeature, Cranelift, EngineBuilder, Target, Triple};

        let of = |triple: &str| {
            let mut features = CpuFeature::set();
            features.insert(CpuFeature::SSE2);
            let target = Target::new(Triple::from_str(triple).unwrap(), features);
            let builder = EngineBuilder::new(Cranelift::default()).set_target(Some(target));
            EngineIdentity::of(&Engine::from(builder))
        };
        for arch in ["x86_64", "aarch64"] {
            let gnu = of(&format!("{arch}-unknown-linux-gnu"));
            let musl = of(&format!("{arch}-unknown-linux-musl"));
            assert_eq!(musl, gnu);
            assert_eq!(musl.pack_file_name(), gnu.pack_file_name());
            assert_eq!(musl.target_triple(), format!("{arch}-unknown-linux-gnu"));
        }
    }

    /// A pack whose identity spells musl (an earlier wasmpak built it for `*-linux-musl`) loads
    /// into an engine of the same architecture, and is found by its name; another
    /// architecture's is not.
    #[test]
    fn packs_for_either_c_library_load_and_are_found() {
        let host = sample("cranelift-opts", "sse2");
        let mut musl = host.clone();
        musl.target_triple = "x86_64-unknown-linux-musl".to_string();
        assert_eq!(host.can_load(&musl), Ok(()));
        assert_eq!(musl.can_load(&host), Ok(()));
        assert_eq!(
            host.sibling_named(&musl.pack_file_name()),
            Some(musl.clone())
        );
        assert_eq!(
            host.sibling_named(&host.pack_file_name()),
            Some(host.clone())
        );
        let mut arm = musl.clone();
        arm.target_triple = "aarch64-unknown-linux-musl".to_string();
        assert!(matches!(
            host.can_load(&arm),
            Err(Incompatibility::Engine {
                field: "target",
                ..
            })
        ));
        assert_eq!(host.sibling_named(&arm.pack_file_name()), None);
        let mut mac = host.clone();
        mac.target_triple = "x86_64-apple-darwin".to_string();
        assert_eq!(mac.sibling_named(&mac.pack_file_name()), Some(mac.clone()));
        assert!(host.can_load(&mac).is_err());
    }

    #[test]
    fn pack_identities_round_trip_and_others_are_refused() {
        let identity = sample("cranelift-opts", "avx,sse2");
        let pack = identity.to_pack_identity();
        assert_eq!(EngineIdentity::from_pack_identity(&pack), Some(identity));
        let not_wasmer = PackIdentity::new().with("engine", "x");
        assert_eq!(EngineIdentity::from_pack_identity(&not_wasmer), None);
        let extra = pack.clone().with("note", "more");
        assert_eq!(EngineIdentity::from_pack_identity(&extra), None);
    }
}

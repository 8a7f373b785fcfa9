//! What an engine's compiled modules depend on.
//!
//! Assumptions: two engines produce interchangeable artifacts exactly when their compiler
//! ([`Engine::deterministic_id`]), artifact format, artifact ABI version, target triple and
//! target CPU features all match. The deterministic id alone is not enough: it names the
//! compiler and its options (for cranelift just `cranelift-opts`), not the CPU the code was
//! compiled for, nor the wasmer version that laid the artifact out.

use std::fmt;

use wasmer::Engine;
use wasmer::sys::NativeEngineExt;

use crate::PackIdentity;

/// Everything that must match for a module compiled by one engine to be loaded by another.
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
/// assert!(identity.file_stem().starts_with(&engine.deterministic_id()));
/// let pack_identity = identity.to_pack_identity();
/// let fields: Vec<_> = pack_identity.fields().map(|(name, _)| name).collect();
/// assert_eq!(fields, ["engine", "format", "abi", "target", "cpu"]);
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
            let mut features: Vec<String> = target
                .cpu_features()
                .iter()
                .map(|feature| feature.to_string())
                .collect();
            features.sort();
            (target.triple().to_string(), features.join(","))
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

    /// The target triple code is compiled for, such as `x86_64-unknown-linux-gnu`.
    pub fn target_triple(&self) -> &str {
        &self.target_triple
    }

    /// The target's CPU features, sorted and comma-separated, such as `avx,avx2,sse2`.
    pub fn cpu_features(&self) -> &str {
        &self.cpu_features
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
    /// `{engine}-{format}-v{abi}-{target}-{crc32 of cpu features, 8 hex digits}`.
    pub fn file_stem(&self) -> String {
        let stem = format!(
            "{}-{}-v{}-{}-{:08x}",
            self.deterministic_id,
            self.artifact_format,
            self.abi_version,
            self.target_triple,
            crc32fast::hash(self.cpu_features.as_bytes()),
        );
        file_safe(&stem)
    }
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
pub(crate) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
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
    use crate::IdentityValue;
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
            engine.target().triple().to_string()
        );
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
    fn file_stem_is_safe_and_tells_cpus_apart() {
        let plain = sample("cranelift-opts", "avx,sse2");
        let stem = plain.file_stem();
        let crc = format!("{:08x}", crc32fast::hash(b"avx,sse2"));
        assert_eq!(
            stem,
            format!("cranelift-opts-wasmer-universal-v24-x86_64-unknown-linux-gnu-{crc}")
        );
        assert_ne!(stem, sample("cranelift-opts", "sse2").file_stem());
        let odd = sample("llvm/O3 fast:x", "").file_stem();
        assert!(odd.starts_with("llvm_O3_fast_x-"), "{odd}");
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
    }
}

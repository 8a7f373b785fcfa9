//! Why an engine cannot load a pack's artifacts.

use std::fmt;

/// Why an engine cannot load a pack's artifacts: the answer of
/// [`EngineIdentity::can_load`](crate::EngineIdentity::can_load).
///
/// # Example
///
/// ```
/// use wasmpak::{EngineIdentity, Incompatibility, PackIdentity};
///
/// let pack = |cpu: &str| PackIdentity::new()
///     .with("engine", "cranelift-opts")
///     .with("format", "wasmer-universal")
///     .with("abi", 12u32)
///     .with("target", "x86_64-unknown-linux-gnu")
///     .with("cpu", cpu);
/// let host = EngineIdentity::from_pack_identity(&pack("avx,sse2")).unwrap();
/// let fleet = EngineIdentity::from_pack_identity(&pack("sse2")).unwrap();
/// let newer = EngineIdentity::from_pack_identity(&pack("avx,avx512f,sse2")).unwrap();
/// assert!(host.can_load(&fleet).is_ok());
/// let refused = host.can_load(&newer).unwrap_err();
/// assert_eq!(refused, Incompatibility::CpuFeatures { missing: vec!["avx512f".to_string()] });
/// assert_eq!(refused.to_string(), "it needs CPU features this engine lacks: avx512f");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// Another compiler, artifact format, artifact ABI version (wasmer version) or target.
    Engine {
        /// The identity field that differs: `engine`, `format`, `abi` or `target`.
        field: &'static str,
        /// The pack's value.
        pack: String,
        /// The loading engine's value.
        engine: String,
    },
    /// The pack's artifacts need CPU features the engine's target lacks.
    CpuFeatures {
        /// The missing features, as wasmer names them, sorted.
        missing: Vec<String>,
    },
    /// The pack's identity is not an engine identity (not the fields
    /// [`EngineIdentity::to_pack_identity`](crate::EngineIdentity::to_pack_identity) writes):
    /// a pack of something other than wasmer artifacts.
    NotAnEngine {
        /// The pack's identity, as it displays.
        identity: String,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::Engine {
                field,
                pack,
                engine,
            } => {
                let what = match *field {
                    "engine" => "compiler",
                    "format" => "artifact format",
                    "abi" => "artifact ABI version",
                    _ => "target",
                };
                write!(
                    f,
                    "it was built for {what} {pack}, this engine has {engine}"
                )
            }
            Incompatibility::CpuFeatures { missing } => write!(
                f,
                "it needs CPU features this engine lacks: {}",
                missing.join(",")
            ),
            Incompatibility::NotAnEngine { identity } => {
                write!(f, "its identity ({identity}) is not a wasmer engine's")
            }
        }
    }
}

impl std::error::Error for Incompatibility {}

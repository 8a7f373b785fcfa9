//! Named CPU feature levels, the way people name a fleet's machines: `x86-64-v2`, `x86-64-v3`,
//! `x86-64-v4`, `armv8-a`.
//!
//! Assumptions: wasmer 7.4 knows 15 x86 features and one aarch64 feature (`neon`), and it
//! accepts an artifact on an engine whose target features are a superset of the artifact's
//! (`Artifact::from_parts` in wasmer-compiler). The x86-64 levels are those of the x86-64
//! psABI (and of rustc's and gcc's `-march`), cut down to the features wasmer can tell apart:
//! `f16c`, `movbe`, `cx16` and the other features wasmer does not know are implied by the
//! level but never recorded. aarch64 has no psABI levels and wasmer distinguishes nothing
//! beyond `neon`, which every 64-bit ARM core has: `armv8-a` is the one level there.

use wasmer::sys::CpuFeature;

/// A named set of CPU features that a fleet of machines shares, such as `x86-64-v3`.
///
/// Building a pack for a level rather than for the build machine's own features lets every
/// machine at that level or above load it: a host loads a pack when its features are a
/// superset of the pack's (see [`EngineIdentity::can_load`](crate::EngineIdentity::can_load)).
///
/// | level | features (as wasmer names them) |
/// |---|---|
/// | `x86-64` | `sse2` |
/// | `x86-64-v2` | `x86-64` + `sse3`, `ssse3`, `sse4.1`, `sse4.2`, `popcnt` |
/// | `x86-64-v3` | `x86-64-v2` + `avx`, `avx2`, `bmi`, `bmi2`, `fma`, `lzcnt` |
/// | `x86-64-v4` | `x86-64-v3` + `avx512f`, `avx512dq`, `avx512vl` |
/// | `armv8-a` | `neon` |
///
/// # Example
///
/// ```
/// use wasmer::sys::{CpuFeature, Target, Triple};
/// use wasmpak::CpuLevel;
///
/// let v3 = CpuLevel::named("x86-64-v3").unwrap();
/// assert_eq!(v3.architecture(), "x86_64");
/// assert!(v3.features().contains(&CpuFeature::AVX2));
/// assert!(!v3.features().contains(&CpuFeature::AVX512F));
///
/// // The target of an engine compiling for every x86-64-v3 machine, whatever this one has.
/// let mut features = CpuFeature::set();
/// features.extend(v3.features().iter().copied());
/// let target = Target::new(Triple::host(), features);
/// assert_eq!(target.cpu_features().len(), v3.features().len());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuLevel {
    name: &'static str,
    architecture: &'static str,
    features: &'static [CpuFeature],
}

use CpuFeature::*;

const X86_64_V1: &[CpuFeature] = &[SSE2];
const X86_64_V2: &[CpuFeature] = &[SSE2, SSE3, SSSE3, SSE41, SSE42, POPCNT];
const X86_64_V3: &[CpuFeature] = &[
    SSE2, SSE3, SSSE3, SSE41, SSE42, POPCNT, AVX, AVX2, BMI1, BMI2, FMA, LZCNT,
];
const X86_64_V4: &[CpuFeature] = &[
    SSE2, SSE3, SSSE3, SSE41, SSE42, POPCNT, AVX, AVX2, BMI1, BMI2, FMA, LZCNT, AVX512F, AVX512DQ,
    AVX512VL,
];

/// Every level, lowest first within each architecture.
const LEVELS: &[CpuLevel] = &[
    CpuLevel::new("x86-64", "x86_64", X86_64_V1),
    CpuLevel::new("x86-64-v2", "x86_64", X86_64_V2),
    CpuLevel::new("x86-64-v3", "x86_64", X86_64_V3),
    CpuLevel::new("x86-64-v4", "x86_64", X86_64_V4),
    CpuLevel::new("armv8-a", "aarch64", &[NEON]),
];

impl CpuLevel {
    const fn new(
        name: &'static str,
        architecture: &'static str,
        features: &'static [CpuFeature],
    ) -> CpuLevel {
        CpuLevel {
            name,
            architecture,
            features,
        }
    }

    /// Every level wasmpak knows, lowest first within each architecture.
    pub fn all() -> &'static [CpuLevel] {
        LEVELS
    }

    /// The level called `name` (case-insensitive), such as `x86-64-v3` or `armv8-a`.
    pub fn named(name: &str) -> Option<CpuLevel> {
        LEVELS
            .iter()
            .find(|level| level.name.eq_ignore_ascii_case(name))
            .copied()
    }

    /// The level's name, such as `x86-64-v3`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The architecture of target triples the level applies to, such as `x86_64`.
    pub fn architecture(&self) -> &'static str {
        self.architecture
    }

    /// Every feature of the level, including those of the levels below it.
    pub fn features(&self) -> &'static [CpuFeature] {
        self.features
    }

    /// The levels of the architecture `triple` starts with, lowest first.
    fn for_triple(triple: &str) -> impl DoubleEndedIterator<Item = &'static CpuLevel> {
        let architecture = triple.split('-').next().unwrap_or_default().to_string();
        LEVELS
            .iter()
            .filter(move |level| level.architecture == architecture)
    }
}

/// wasmer's name of every feature it knows, in its own order (the order of `CpuFeature`).
fn feature_names() -> impl Iterator<Item = String> {
    CpuFeature::all().iter().map(|feature| feature.to_string())
}

/// The features of a sorted, comma-separated list as a pack file name spells them: the highest
/// level of `triple`'s architecture the list contains, then `+` and each feature beyond it, in
/// wasmer's order (`x86-64-v3`, `x86-64-v2+avx+avx2`, `neon`); `none` for no features.
/// A list with a feature wasmer does not know keeps that name, so the tag still differs.
pub(crate) fn tag(triple: &str, features: &[&str]) -> String {
    if features.is_empty() {
        return "none".to_string();
    }
    // Each name spelled once: a process's first load computes its engine's tag.
    let known: Vec<(CpuFeature, String)> = CpuFeature::all()
        .iter()
        .map(|feature| (feature, feature.to_string()))
        .collect();
    let mut present = CpuFeature::set();
    for (feature, name) in &known {
        if features.contains(&name.as_str()) {
            present.insert(*feature);
        }
    }
    let level = CpuLevel::for_triple(triple)
        .rev()
        .find(|level| level.features.iter().all(|f| present.contains(*f)));
    let mut parts: Vec<String> = level.map(|l| l.name.to_string()).into_iter().collect();
    for (feature, name) in &known {
        if present.contains(*feature) && !level.is_some_and(|l| l.features.contains(feature)) {
            parts.push(name.clone());
        }
    }
    for name in features {
        if !known.iter().any(|(_, known)| known == name) {
            parts.push((*name).to_string());
        }
    }
    parts.join("+")
}

/// The sorted feature names a [`tag`] stands for, or `None` if it names something unknown.
pub(crate) fn parse_tag(tag: &str) -> Option<Vec<String>> {
    if tag == "none" {
        return Some(Vec::new());
    }
    let mut features: Vec<String> = Vec::new();
    for (i, part) in tag.split('+').enumerate() {
        match CpuLevel::named(part) {
            Some(level) if i == 0 => features.extend(level.features.iter().map(|f| f.to_string())),
            Some(_) => return None,
            None if feature_names().any(|known| known == part) => features.push(part.to_string()),
            None => return None,
        }
    }
    features.sort();
    features.dedup();
    Some(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: &str = "x86_64-unknown-linux-gnu";

    fn sorted(features: &[CpuFeature]) -> Vec<String> {
        let mut names: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn levels_grow_and_name_real_features() {
        let x86: Vec<&CpuLevel> = CpuLevel::for_triple(X86).collect();
        assert_eq!(x86.len(), 4);
        for pair in x86.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            assert!(lower.features.iter().all(|f| higher.features.contains(f)));
            assert!(higher.features.len() > lower.features.len());
        }
        // The psABI's v4 is every x86 feature wasmer knows.
        let v4 = CpuLevel::named("X86-64-V4").unwrap();
        let x86_all = CpuFeature::all().iter().filter(|f| *f != CpuFeature::NEON);
        assert!(x86_all.into_iter().all(|f| v4.features.contains(&f)));
        assert_eq!(
            CpuLevel::for_triple("aarch64-apple-darwin")
                .map(|l| l.name)
                .collect::<Vec<_>>(),
            ["armv8-a"]
        );
        assert!(
            CpuLevel::for_triple("riscv64gc-unknown-linux-gnu")
                .next()
                .is_none()
        );
        assert!(CpuLevel::named("x86-64-v5").is_none());
    }

    #[test]
    fn tags_name_the_highest_level_then_the_extras() {
        let v3 = sorted(X86_64_V3);
        let v3: Vec<&str> = v3.iter().map(String::as_str).collect();
        assert_eq!(tag(X86, &v3), "x86-64-v3");
        let mut more = v3.clone();
        more.push("avx512f");
        more.sort();
        assert_eq!(tag(X86, &more), "x86-64-v3+avx512f");
        assert_eq!(tag(X86, &["avx", "sse2"]), "x86-64+avx");
        assert_eq!(tag(X86, &["avx"]), "avx");
        assert_eq!(tag(X86, &[]), "none");
        assert_eq!(tag("aarch64-unknown-linux-gnu", &["neon"]), "armv8-a");
        // Levels belong to their architecture.
        assert_eq!(tag("aarch64-unknown-linux-gnu", &["sse2"]), "sse2");
        assert_eq!(tag(X86, &["neon", "sse2"]), "x86-64+neon");
        assert_eq!(tag(X86, &["sse2", "sve9"]), "x86-64+sve9");
    }

    #[test]
    fn tags_parse_back_to_their_features() {
        for level in CpuLevel::all() {
            let names = sorted(level.features);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let triple = format!("{}-unknown-linux-gnu", level.architecture);
            let tag = tag(&triple, &names);
            assert_eq!(tag, level.name);
            assert_eq!(parse_tag(&tag).unwrap(), names);
        }
        assert_eq!(
            parse_tag("x86-64+avx+lzcnt").unwrap(),
            ["avx", "lzcnt", "sse2"]
        );
        assert_eq!(parse_tag("none").unwrap(), Vec::<String>::new());
        assert_eq!(parse_tag("sse2").unwrap(), ["sse2"]);
        for bad in [
            "",
            "x86-64-v9",
            "avx+x86-64",
            "1a2b3c4d",
            "sse2+",
            "sse2++avx",
            "sve9",
        ] {
            assert_eq!(parse_tag(bad), None, "{bad:?}");
        }
    }
}

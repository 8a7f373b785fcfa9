//! Finding, by file name, the packs in a directory that an engine might load.
//!
//! A pack's file name is its identity's [`pack_file_name`](EngineIdentity::pack_file_name):
//! `{engine}-{format}-v{abi}-{target}-{cpu level}.v1.wpk`. Everything before the CPU level is
//! the engine *family* (what must match exactly); the CPU level says which features the pack
//! requires. So a directory can hold one pack per level of a fleet, and an engine picks the
//! ones it can load from a directory listing, without opening any file. The name is only a
//! promise: a pack found this way is opened with the identity its name gives, and a file whose
//! superblock says otherwise is skipped as stale.

use std::io;
use std::path::{Path, PathBuf};

use crate::EngineIdentity;

/// The packs of `identity`'s family in `dir`, with the identity each name gives, sorted by
/// file name. A missing directory has none.
pub(super) fn siblings(
    dir: &Path,
    identity: &EngineIdentity,
) -> io::Result<Vec<(PathBuf, EngineIdentity)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(sibling) = name.to_str().and_then(|n| identity.sibling_named(n)) else {
            continue;
        };
        found.push((entry.path(), sibling));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// How specific a pack's identity is: the number of CPU features it requires. Among packs an
/// engine can load, the most specific was compiled for the most of the engine's features, so
/// its code is the fastest on this host; it is looked at first.
pub(super) fn specificity(identity: &EngineIdentity) -> usize {
    identity.cpu_feature_list().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::engine;

    #[test]
    fn lists_the_family_by_name_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let host = EngineIdentity::of(engine());
        let baseline = host.with_cpu_features(&[]);
        for name in [
            host.pack_file_name(),
            baseline.pack_file_name(),
            format!("{}.recency", host.pack_file_name()),
            format!("{}.corrupt", host.pack_file_name()),
            format!("{}garbage.v1.wpk", host.family_prefix()),
            "app.wpk".to_string(),
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = siblings(dir.path(), &host).unwrap();
        let identities: Vec<&EngineIdentity> = found.iter().map(|(_, id)| id).collect();
        assert_eq!(identities.len(), 2, "{found:?}");
        assert!(identities.contains(&&host) && identities.contains(&&baseline));
        assert!(found.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            siblings(&dir.path().join("missing"), &host)
                .unwrap()
                .is_empty()
        );
        assert!(specificity(&host) >= specificity(&baseline));
    }
}

//! `PackCache` with embedded packs as a read-only tier in front of its own directory.

use crate::common::modules::{assert_same_module, engine, pool};
use bytes::Bytes;
use wasmpak::{ModuleCache, PackCache, PackCacheBuilder, PackIdentity, aligned_bytes};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A pack of the first `count` pool modules, for this engine, as bytes in memory.
fn embedded_bytes(count: usize) -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    let cache = PackCache::new(dir.path());
    runtime().block_on(async {
        for module in &pool()[..count] {
            cache
                .save(module.key, engine(), &module.module)
                .await
                .unwrap();
        }
    });
    aligned_bytes(&std::fs::read(cache.pack_path(engine()).unwrap()).unwrap())
}

#[test]
fn loads_from_the_embedded_pack_first_and_saves_to_the_directory() {
    let embedded = embedded_bytes(4);
    let dir = tempfile::tempdir().unwrap();
    let cache = PackCacheBuilder::new()
        .embedded_pack(embedded)
        .dir(dir.path())
        .memo_entries(0)
        .build();
    let own_pack = dir.path().join(cache.pack_path(engine()).unwrap());
    runtime().block_on(async {
        for module in &pool()[..4] {
            let loaded = cache.load(module.key, engine()).await.unwrap();
            assert_same_module(&loaded, module);
        }
        // Served from memory: the directory's pack was never even created.
        assert!(!own_pack.exists());
        assert_eq!(cache.stats().hits, 4);

        // What the embedded pack lacks is compiled by the caller and saved to the directory.
        let extra = &pool()[5];
        assert!(
            cache
                .load(extra.key, engine())
                .await
                .unwrap_err()
                .is_not_found()
        );
        cache
            .save(extra.key, engine(), &extra.module)
            .await
            .unwrap();
        assert!(own_pack.exists());
        assert_eq!(cache.stats().saves, 1);
        let loaded = cache.load(extra.key, engine()).await.unwrap();
        assert_same_module(&loaded, extra);
    });
    // A module in both tiers is read from the embedded one: the own pack holds only `extra`.
    let own = wasmpak::Pack::open_any(&own_pack).unwrap();
    assert_eq!(own.len().unwrap(), 1);
}

#[test]
fn without_a_directory_saves_are_a_no_op() {
    let cache = PackCacheBuilder::new()
        .embedded_pack(embedded_bytes(1))
        .build();
    runtime().block_on(async {
        let module = &pool()[2];
        cache
            .save(module.key, engine(), &module.module)
            .await
            .unwrap();
        assert_eq!(cache.stats().saves, 0);
        let first = &pool()[0];
        assert_same_module(&cache.load(first.key, engine()).await.unwrap(), first);
    });
}

#[test]
fn an_unusable_embedded_pack_is_a_miss_and_one_warning() {
    let good = embedded_bytes(1);
    // Another engine's pack (another identity), a misaligned copy and a truncated copy.
    let dir = tempfile::tempdir().unwrap();
    let foreign_path = dir.path().join("foreign.wpk");
    wasmpak::Pack::create(&foreign_path, &PackIdentity::new().with("engine", "other")).unwrap();
    let foreign = aligned_bytes(&std::fs::read(&foreign_path).unwrap());
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&good);
    let misaligned = aligned_bytes(&shifted).slice(1..);
    let truncated = aligned_bytes(&good[..good.len() - 100]);
    let cache = PackCacheBuilder::new()
        .embedded_pack(foreign)
        .embedded_pack(misaligned)
        .embedded_pack(truncated)
        .build();
    let module = &pool()[0];
    runtime().block_on(async {
        for _ in 0..3 {
            assert!(
                cache
                    .load(module.key, engine())
                    .await
                    .unwrap_err()
                    .is_not_found()
            );
        }
    });
    let stats = cache.stats();
    assert_eq!(stats.unusable_packs, 3, "each reported once: {stats:?}");
    assert_eq!(stats.hits, 0);
}

/// `cargo test` builds the examples before it runs the tests: run `examples/embedded.rs`, which
/// asserts its own outcome. (`cargo test --test tests` builds no example: that run fails this
/// test unless `WASMPAK_TEST_SKIP=examples`.)
#[test]
fn the_embedded_example_runs() {
    let deps = std::env::current_exe().unwrap();
    let example = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/embedded");
    if !example.exists() {
        return crate::common::missing(
            "examples",
            format!(
                "{} was not built (`cargo test` builds the examples, `cargo test --test tests` \
                 does not)",
                example.display()
            ),
        );
    }
    let output = std::process::Command::new(&example).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("loaded from the cache"), "{stdout}");
    assert!(stdout.contains("is read-only"), "{stdout}");
}

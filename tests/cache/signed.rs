//! `PackCache` over shipped packs: trusted keys make unsigned or altered modules misses
//! (warned about and counted), and installed packs load on the trusted path only when
//! sealed, read-only and private.

use crate::common::modules::{PoolModule, assert_same_module, engine, pool};
use wasmpak::{ModuleCache, Pack, PackCache, SecretKey};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn trusted_keys_load_signed_modules_and_miss_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ci = SecretKey::generate().unwrap();
    let rt = runtime();
    let (signed, unsigned) = pool().split_at(3);
    // CI: save the first modules, sign, then save one more without signing.
    let writer = PackCache::new(dir.path());
    rt.block_on(async {
        for m in signed {
            writer.save(m.key, engine(), &m.module).await.unwrap();
        }
    });
    let path = writer
        .pack_path(engine())
        .expect("the cache has a directory");
    Pack::open_any(&path).unwrap().sign(&ci).unwrap();
    rt.block_on(async {
        writer
            .save(unsigned[0].key, engine(), &unsigned[0].module)
            .await
            .unwrap();
    });

    let node = PackCache::builder(dir.path())
        .trusted_keys([ci.public_key()])
        .build();
    rt.block_on(async {
        for m in signed {
            assert_same_module(&node.load(m.key, engine()).await.unwrap(), m);
        }
        let miss = node.load(unsigned[0].key, engine()).await.unwrap_err();
        assert!(miss.is_not_found(), "{miss}");
        // A save does not write an unsigned module into the shipped pack: memo only.
        node.save(unsigned[1].key, engine(), &unsigned[1].module)
            .await
            .unwrap();
        let memo = node.load(unsigned[1].key, engine()).await.unwrap();
        assert_same_module(&memo, &unsigned[1]);
    });
    let stats = node.stats();
    assert_eq!(
        (stats.hits, stats.untrusted, stats.misses),
        (3, 1, 1),
        "{stats:?}"
    );
    assert!(
        !Pack::open_any(&path)
            .unwrap()
            .contains(&wasmpak_key(&unsigned[1]))
            .unwrap()
    );

    // Another key trusts nothing here.
    let stranger = PackCache::builder(dir.path())
        .trusted_keys([SecretKey::generate().unwrap().public_key()])
        .build();
    rt.block_on(async {
        let miss = stranger.load(signed[0].key, engine()).await.unwrap_err();
        assert!(miss.is_not_found(), "{miss}");
    });
    assert_eq!(stranger.stats().untrusted, 1);
}

/// Found in review: nothing let a node refuse an older genuine pack (a rollback). With a
/// minimum release, modules only an older release's signature lists are misses.
#[test]
fn a_minimum_release_makes_older_releases_misses() {
    let dir = tempfile::tempdir().unwrap();
    let ci = SecretKey::generate().unwrap();
    let rt = runtime();
    let module = &pool()[0];
    let writer = PackCache::new(dir.path());
    rt.block_on(async {
        writer
            .save(module.key, engine(), &module.module)
            .await
            .unwrap();
    });
    let path = writer.pack_path(engine()).unwrap();
    Pack::open_any(&path).unwrap().sign_release(&ci, 7).unwrap();
    let node = |release| {
        PackCache::builder(dir.path())
            .min_release(release)
            .trusted_keys([ci.public_key()])
            .build()
    };
    let (current, newer) = (node(7), node(8));
    rt.block_on(async {
        assert_same_module(&current.load(module.key, engine()).await.unwrap(), module);
        let miss = newer.load(module.key, engine()).await.unwrap_err();
        assert!(miss.is_not_found(), "{miss}");
    });
    assert_eq!((current.stats().hits, newer.stats().untrusted), (1, 1));
}

fn wasmpak_key(m: &PoolModule) -> wasmpak::Key {
    wasmpak::Key::from_bytes(m.key.as_bytes().try_into().unwrap())
}

#[test]
fn installed_packs_load_on_the_trusted_path_only_when_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let built = dir.path().join("built");
    let installed = dir.path().join("installed");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::create_dir_all(&installed).unwrap();
    let rt = runtime();
    let writer = PackCache::new(&built);
    rt.block_on(async {
        for m in pool() {
            writer.save(m.key, engine(), &m.module).await.unwrap();
        }
    });
    Pack::open_any(
        writer
            .pack_path(engine())
            .expect("the cache has a directory"),
    )
    .unwrap()
    .install_into(&installed)
    .unwrap();

    // SAFETY: the installed pack is never modified while this test loads from it.
    let node = unsafe { PackCache::builder(&installed).trust_installed() }.build();
    rt.block_on(async {
        for m in pool() {
            assert_same_module(&node.load(m.key, engine()).await.unwrap(), m);
        }
    });
    assert_eq!(node.stats().hits, pool().len() as u64);

    // The pack it was built in is not sealed: refused for this path, a miss, never moved.
    // SAFETY: as above; nothing modifies these files.
    let unsealed = unsafe { PackCache::builder(&built).trust_installed() }.build();
    rt.block_on(async {
        let miss = unsealed.load(pool()[0].key, engine()).await.unwrap_err();
        assert!(miss.is_not_found(), "{miss}");
    });
    assert_eq!(unsealed.stats().stale, 1);
    assert!(writer.pack_path(engine()).is_some_and(|p| p.exists()));
}

use std::sync::Arc;

use ::object_store::memory::InMemory;

use super::*;
use crate::EngineIdentity;
use crate::cache::conformance::{self, CHECKS, CacheUnderTest, Overwrite};
use crate::cache::test_support::{answer, compiled, engine, key};

fn cache(store: &Arc<InMemory>) -> ObjectStoreCache {
    ObjectStoreCache::builder(store.clone(), "fleet")
        .background_saves(false)
        .build()
}

/// The fleet tier over an in-memory store under the conformance checks; damage is one bit
/// flipped in the artifact's last byte.
struct Bucket(Arc<InMemory>, ObjectStoreCache);

impl CacheUnderTest for Bucket {
    type Cache = ObjectStoreCache;

    fn cache(&self) -> &ObjectStoreCache {
        &self.1
    }

    fn reopen(&self) -> Option<ObjectStoreCache> {
        Some(cache(&self.0))
    }

    fn overwrite(&self) -> Overwrite {
        Overwrite::FirstWins
    }

    fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool {
        let path = self.1.object_path(key, engine);
        futures::executor::block_on(async {
            let mut bytes = self
                .0
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            *bytes.last_mut().unwrap() ^= 1;
            self.0.put(&path, bytes.into()).await.unwrap();
        });
        true
    }
}

#[test]
fn conforms() {
    let store = Arc::new(InMemory::new());
    let report = conformance::run(&Bucket(store.clone(), cache(&store))).unwrap();
    assert_eq!(report.ran, CHECKS);
}

#[tokio::test]
async fn round_trip_through_the_store() {
    let store = Arc::new(InMemory::new());
    let (engine, cache) = (engine(), cache(&store));
    assert!(!cache.contains(key(1), engine).await.unwrap());
    assert!(cache.load(key(1), engine).await.unwrap_err().is_not_found());
    cache.save(key(1), engine, &compiled(1)).await.unwrap();
    assert!(cache.contains(key(1), engine).await.unwrap());
    let module = cache.load(key(1), engine).await.unwrap();
    assert_eq!(answer(&module, engine), 1);
    let path = cache.object_path(key(1), engine);
    let stem = EngineIdentity::of(engine).file_stem();
    assert_eq!(path.as_ref(), format!("fleet/{stem}/{}.wpkm", key(1)));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.saves), (1, 1, 1));
    assert!(stats.bytes_downloaded > 0 && stats.bytes_downloaded == stats.bytes_uploaded);
}

#[tokio::test]
async fn second_save_of_a_key_is_already_saved() {
    let store = Arc::new(InMemory::new());
    let (engine, cache) = (engine(), cache(&store));
    cache.save(key(2), engine, &compiled(2)).await.unwrap();
    let first = store.get(&cache.object_path(key(2), engine)).await.unwrap();
    cache.save(key(2), engine, &compiled(2)).await.unwrap();
    let second = store.get(&cache.object_path(key(2), engine)).await.unwrap();
    assert_eq!(first.meta.e_tag, second.meta.e_tag, "the first write wins");
    assert_eq!((cache.stats().saves, cache.stats().already_saved), (1, 1));
}

#[tokio::test]
async fn damaged_foreign_and_misplaced_objects_are_misses_then_replaced() {
    let store = Arc::new(InMemory::new());
    let (engine, cache) = (engine(), cache(&store));
    let path = cache.object_path(key(3), engine);
    let artifact = compiled(3).serialize().unwrap();
    let identity = EngineIdentity::of(engine)
        .to_pack_identity()
        .encode()
        .unwrap();
    let good = object::encode(&identity, &key_bytes(&key(3)), &artifact);
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let foreign_identity = crate::PackIdentity::new()
        .with("engine", "other")
        .encode()
        .unwrap();
    let bad = [
        b"not a module object".to_vec(),
        good[..good.len() - 1].to_vec(),
        flipped,
        object::encode(&foreign_identity, &key_bytes(&key(3)), &artifact),
        object::encode(&identity, &key_bytes(&key(4)), &artifact),
        object::encode(
            &identity,
            &key_bytes(&key(3)),
            b"checksummed, but not an artifact",
        ),
    ];
    for (i, bytes) in bad.into_iter().enumerate() {
        store.put(&path, bytes.into()).await.unwrap();
        let error = cache.load(key(3), engine).await.unwrap_err();
        assert!(error.is_not_found(), "case {i}: {error}");
        assert_eq!(cache.stats().stale, i as u64 + 1);
        // The next save replaces the unusable object instead of deferring to it.
        cache.save(key(3), engine, &compiled(3)).await.unwrap();
        let module = cache.load(key(3), engine).await.unwrap();
        assert_eq!(answer(&module, engine), 3, "case {i}");
    }
}

#[tokio::test]
async fn background_saves_finish_by_flush() {
    let store = Arc::new(InMemory::new());
    let cache = ObjectStoreCache::new(store.clone(), "bg");
    let engine = engine();
    for n in 10..14 {
        cache.save(key(n), engine, &compiled(n)).await.unwrap();
    }
    cache.flush().await;
    assert_eq!(cache.stats().saves, 4);
    for n in 10..14 {
        assert_eq!(
            answer(&cache.load(key(n), engine).await.unwrap(), engine),
            n as i32
        );
    }
}

#[test]
fn works_outside_any_runtime() {
    let store = Arc::new(InMemory::new());
    let (engine, cache) = (engine(), cache(&store));
    futures::executor::block_on(cache.save(key(5), engine, &compiled(5))).unwrap();
    let module = futures::executor::block_on(cache.load(key(5), engine)).unwrap();
    assert_eq!(answer(&module, engine), 5);
}

#[tokio::test]
async fn uploads_beyond_the_pending_limit_are_dropped_not_queued() {
    let store = Arc::new(InMemory::new());
    let cache = ObjectStoreCache::builder(store.clone(), "full")
        .max_pending_uploads(0)
        .build();
    let engine = engine();
    cache.save(key(6), engine, &compiled(6)).await.unwrap();
    cache.flush().await;
    assert_eq!((cache.stats().saves, cache.stats().uploads_dropped), (0, 1));
    assert!(cache.load(key(6), engine).await.unwrap_err().is_not_found());
}

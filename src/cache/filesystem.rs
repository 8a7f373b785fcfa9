//! One file per module in a directory, laid out as wasix's `FileSystemCache` lays it out.
//!
//! Assumptions: several threads and processes may share the directory, and any file in it
//! may be stale (another wasmer version, another CPU) or damaged. Writers therefore only
//! ever rename a complete file into place, and readers treat any file they cannot
//! deserialize as a miss, leaving it for the next save to replace. The layout is
//! `{dir}/{deterministic_id}-{artifact_format}-v{abi}/{KEY}.bin`, `KEY` in uppercase hex, so
//! a directory filled by wasix can be reused as is.

use std::path::{Path, PathBuf};

use wasmer::{DeserializeError, Engine, Module};

use super::artifact::CheckedArtifact;
use super::blocking::run_blocking;
use super::{CacheError, CacheResult, ModuleCache, ModuleHash};
use crate::engine::identity::file_safe;

/// A cache of serialized modules on disk, one file per module.
///
/// Needs no tokio runtime: inside one, file work runs on the blocking pool; outside, inline.
/// Files carry no checksum, so a bit flip that still passes wasmer's layout validation goes
/// unnoticed; a crash may leave temporary files (`.tmp*`) behind in the directory.
///
/// # Example
///
/// ```
/// use wasmer::{Engine, Module};
/// use wasmpak::{FileSystemCache, ModuleCache, ModuleHash};
///
/// let dir = tempfile::tempdir()?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let engine = Engine::default();
///     let wasm = wasmer::wat2wasm(b"(module)")?;
///     let key = ModuleHash::new(&wasm);
///     let cache = FileSystemCache::new(dir.path());
///     cache.save(key, &engine, &Module::new(&engine, &wasm)?).await?;
///     assert!(cache.path(key, &engine).is_file());
///     cache.load(key, &engine).await?;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileSystemCache {
    dir: PathBuf,
}

impl FileSystemCache {
    /// A cache in `dir`. Nothing is touched until the first save creates the directories.
    pub fn new(dir: impl Into<PathBuf>) -> FileSystemCache {
        FileSystemCache { dir: dir.into() }
    }

    /// The directory the cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the module in `path`, a file that a file-per-module cache (this one, or wasix's,
    /// which writes files the same way) saved for an engine like `engine`: what
    /// [`load`](ModuleCache::load) does with the file it finds, for a tool given such files.
    ///
    /// wasmer validates the file's layout, ABI version and CPU features; the file has no
    /// checksum, so whoever can write it can run code in the process, as with the cache's own
    /// directory: load only files a runtime's cache wrote, from a directory only you can
    /// write. Blocks on the file system.
    ///
    /// # Errors
    ///
    /// [`CacheError::NotFound`] if there is no file, [`CacheError::FileRead`] if it cannot be
    /// read, [`CacheError::Deserialize`] if wasmer refuses it.
    ///
    /// # Example
    ///
    /// ```
    /// use wasmer::{Engine, Module};
    /// use wasmpak::{CacheErrorKind, FileSystemCache, ModuleCache, ModuleHash};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::default();
    /// let wasm = wasmer::wat2wasm(br#"(module (func (export "two") (result i32) i32.const 2))"#)?;
    /// let key = ModuleHash::new(&wasm);
    /// let cache = FileSystemCache::new(dir.path());
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(cache.save(key, &engine, &Module::new(&engine, &wasm)?))?;
    ///
    /// let module = FileSystemCache::load_file(&cache.path(key, &engine), &engine)?;
    /// assert!(module.exports().any(|export| export.name() == "two"));
    /// std::fs::write(dir.path().join("junk.bin"), b"not an artifact")?;
    /// let refused = FileSystemCache::load_file(&dir.path().join("junk.bin"), &engine).unwrap_err();
    /// assert_eq!(refused.kind(), CacheErrorKind::Deserialize);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_file(path: &Path, engine: &Engine) -> Result<Module, CacheError> {
        match CheckedArtifact::from_cache_file(path, engine).deserialize() {
            Ok(module) => Ok(module),
            Err(DeserializeError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(CacheError::NotFound)
            }
            Err(DeserializeError::Io(error)) => Err(CacheError::FileRead {
                path: path.to_path_buf(),
                error,
            }),
            Err(error) => Err(CacheError::Deserialize(error)),
        }
    }

    /// The file that holds the module saved under `key` for `engine`.
    pub fn path(&self, key: ModuleHash, engine: &Engine) -> PathBuf {
        let subdir = format!(
            "{}-{}-v{}",
            engine.deterministic_id(),
            engine.artifact_format(),
            wasmer_types::MetadataHeader::CURRENT_VERSION,
        );
        self.dir.join(file_safe(&subdir)).join(format!("{key}.bin"))
    }
}

#[async_trait::async_trait]
impl ModuleCache for FileSystemCache {
    async fn load(&self, key: ModuleHash, engine: &Engine) -> CacheResult<Module> {
        let path = self.path(key, engine);
        let engine = engine.clone();
        run_blocking(move || load_or_miss(&path, &engine)).await
    }

    async fn contains(&self, key: ModuleHash, engine: &Engine) -> CacheResult<bool> {
        let path = self.path(key, engine);
        run_blocking(move || {
            path.try_exists()
                .map_err(|error| CacheError::FileRead { path, error })
        })
        .await
    }

    async fn save(&self, key: ModuleHash, engine: &Engine, module: &Module) -> CacheResult<()> {
        let path = self.path(key, engine);
        let module = module.clone();
        run_blocking(move || save_file(&path, &module)).await
    }
}

/// The module in `path`, or a miss: a file wasmer refuses is stale or damaged, not an error
/// that would keep failing on later loads.
fn load_or_miss(path: &Path, engine: &Engine) -> Result<Module, CacheError> {
    match FileSystemCache::load_file(path, engine) {
        Err(CacheError::Deserialize(error)) => {
            // Not deleted: another process may be renaming a good file into place right now.
            tracing::warn!(
                path = %path.display(),
                error = &error as &dyn std::error::Error,
                "ignoring a cached module that cannot be deserialized",
            );
            Err(CacheError::NotFound)
        }
        other => other,
    }
}

fn save_file(path: &Path, module: &Module) -> Result<(), CacheError> {
    let bytes = module.serialize()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CacheError::FileWrite { path, error }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    // Beside the destination and renamed over it (see `crate::fs`): readers see the old file
    // or the new one, never a torn one.
    crate::fs::write_file(path, &bytes, crate::fs::FileMode::Public).map_err(write_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::conformance::{self, CHECKS, CacheUnderTest};
    use crate::cache::test_support::{
        answer, compiled, engine, engine_without_cpu_features, key, poll_ready, tear,
    };

    /// The file cache under the conformance checks; damage is a torn file.
    struct Files {
        _dir: tempfile::TempDir,
        cache: FileSystemCache,
    }

    impl CacheUnderTest for Files {
        type Cache = FileSystemCache;

        fn cache(&self) -> &FileSystemCache {
            &self.cache
        }

        fn reopen(&self) -> Option<FileSystemCache> {
            Some(FileSystemCache::new(self.cache.dir()))
        }

        fn corrupt(&self, key: ModuleHash, engine: &Engine) -> bool {
            tear(&self.cache.path(key, engine));
            true
        }
    }

    #[test]
    fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileSystemCache::new(dir.path().join("not/yet"));
        let report = conformance::run(&Files { _dir: dir, cache }).unwrap();
        assert_eq!(report.ran, CHECKS);
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn round_trip_in_the_wasix_layout() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = FileSystemCache::new(temp.path().join("not/yet"));
        assert!(!cache.contains(key(1), engine).await.unwrap());
        assert!(cache.load(key(1), engine).await.unwrap_err().is_not_found());
        cache.save(key(1), engine, &compiled(1)).await.unwrap();

        let subdir = format!(
            "{}-{}-v{}",
            engine.deterministic_id(),
            engine.artifact_format(),
            wasmer_types::MetadataHeader::CURRENT_VERSION
        );
        let expected = cache.dir().join(subdir).join(format!("{}.bin", key(1)));
        assert_eq!(cache.path(key(1), engine), expected);
        assert!(expected.is_file());
        let name = expected.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, name.to_uppercase().replace(".BIN", ".bin"));
        assert!(cache.contains(key(1), engine).await.unwrap());
        assert_eq!(
            answer(&cache.load(key(1), engine).await.unwrap(), engine),
            1
        );
        // Only the module file remains: the temporary file was renamed, not copied.
        assert_eq!(files_in(expected.parent().unwrap()), [name]);
    }

    #[test]
    fn bad_files_are_misses_until_replaced() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = FileSystemCache::new(temp.path());
        let path = cache.path(key(2), engine);
        let good = compiled(2).serialize().unwrap().to_vec();
        let mut stale = good.clone();
        let at = good.windows(8).position(|w| w == b"WASMER\0\0").unwrap() + 8;
        stale[at..at + 4].copy_from_slice(&23u32.to_ne_bytes());
        let bad = [
            Vec::new(),
            b"garbage, not an artifact".to_vec(),
            good[..good.len() / 2].to_vec(),
            stale,
        ];
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for bytes in bad {
            std::fs::write(&path, &bytes).unwrap();
            let error = poll_ready(cache.load(key(2), engine)).unwrap_err();
            assert!(error.is_not_found(), "{} bytes: {error}", bytes.len());
            assert!(path.exists(), "a bad file is left for the next save");
            poll_ready(cache.save(key(2), engine, &compiled(2))).unwrap();
            let module = poll_ready(cache.load(key(2), engine)).unwrap();
            assert_eq!(answer(&module, engine), 2);
        }
        // A file written by `Module::serialize` alone, as wasix writes it, loads too.
        std::fs::write(&path, &good).unwrap();
        let module = poll_ready(cache.load(key(2), engine)).unwrap();
        assert_eq!(answer(&module, engine), 2);
    }

    #[test]
    fn a_file_for_other_cpu_features_is_a_miss() {
        let temp = tempfile::tempdir().unwrap();
        let (engine, other) = (engine(), engine_without_cpu_features());
        let cache = FileSystemCache::new(temp.path());
        poll_ready(cache.save(key(6), engine, &compiled(6))).unwrap();
        // Same compiler and layout version, so the same file; but the code needs CPU
        // features the other engine's target lacks.
        assert_eq!(cache.path(key(6), other), cache.path(key(6), engine));
        let error = poll_ready(cache.load(key(6), other)).unwrap_err();
        assert!(error.is_not_found(), "{error}");
        let module = poll_ready(cache.load(key(6), engine)).unwrap();
        assert_eq!(answer(&module, engine), 6);
    }

    #[test]
    fn concurrent_saves_leave_a_loadable_file() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = FileSystemCache::new(temp.path());
        let module = compiled(3);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..4 {
                        poll_ready(cache.save(key(3), engine, &module)).unwrap();
                        let loaded = poll_ready(cache.load(key(3), engine)).unwrap();
                        assert_eq!(answer(&loaded, engine), 3);
                    }
                });
            }
        });
        let path = cache.path(key(3), engine);
        assert_eq!(files_in(path.parent().unwrap()).len(), 1);
        assert_eq!(
            answer(&poll_ready(cache.load(key(3), engine)).unwrap(), engine),
            3
        );
    }

    #[test]
    fn works_in_a_runtime_made_on_a_plain_thread() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = FileSystemCache::new(temp.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            cache.save(key(4), engine, &compiled(4)).await.unwrap();
            assert!(cache.contains(key(4), engine).await.unwrap());
            assert_eq!(
                answer(&cache.load(key(4), engine).await.unwrap(), engine),
                4
            );
        });
    }

    #[test]
    fn unwritable_directory_is_a_write_error_naming_the_path() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("a-file");
        std::fs::write(&file, b"in the way").unwrap();
        let cache = FileSystemCache::new(&file);
        let error = poll_ready(cache.save(key(5), engine(), &compiled(5))).unwrap_err();
        assert!(matches!(error, CacheError::FileWrite { .. }), "{error}");
        assert!(error.to_string().contains("a-file"), "{error}");
        // Not a miss: the cache cannot even look, which the caller should hear about.
        let error = poll_ready(cache.load(key(5), engine())).unwrap_err();
        assert!(matches!(error, CacheError::FileRead { .. }), "{error}");
    }
}

//! A model file system that keeps what is durable apart from what is only in the page cache.
//!
//! Replaying a recorded trace, it tracks per file the content as of its last sync and the
//! writes since (the volatile epoch), and its mode as of its last `fsync` and any change
//! since; and per directory (a trace may touch several: a pack's, an install's) the entries
//! as of that directory's last sync and the creations, links, renames and removals since. A
//! power loss keeps the durable state and any subset of the volatile one the kernel may have
//! written back: see [`super::crashes`].

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use wasmpak::storage_sim::{FileId, TraceOp};

/// One write of a file's volatile epoch.
#[derive(Debug, Clone)]
pub struct Write {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

impl Write {
    pub fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// A file (an inode): its durable content and the writes made since its last sync; its mode
/// as of its last `fsync` and one set since, if any.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub durable: Vec<u8>,
    pub pending: Vec<Write>,
    pub mode: u32,
    pub pending_mode: Option<u32>,
}

impl Object {
    /// The content in the page cache: durable content with every pending write applied.
    pub fn volatile(&self) -> Vec<u8> {
        let mut bytes = self.durable.clone();
        for write in &self.pending {
            apply(&mut bytes, write);
        }
        bytes
    }

    fn sync(&mut self) {
        self.durable = self.volatile();
        self.pending.clear();
    }
}

/// Writes `write` into `bytes`, growing them with zeros as needed.
pub fn apply(bytes: &mut Vec<u8>, write: &Write) {
    let end = write.end() as usize;
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[write.offset as usize..end].copy_from_slice(&write.bytes);
}

/// A change to a directory's entries not yet made durable.
#[derive(Debug, Clone)]
pub enum DirOp {
    /// A name now refers to an object (a creation or a hard link).
    Link { name: OsString, object: usize },
    /// A rename: `to` now refers to what `from` referred to, and `from` is gone, atomically.
    Rename {
        from: OsString,
        to: OsString,
        object: usize,
    },
    /// A name is gone.
    Unlink { name: OsString },
}

impl DirOp {
    pub fn apply(&self, entries: &mut BTreeMap<OsString, usize>) {
        match self {
            DirOp::Link { name, object } => {
                entries.insert(name.clone(), *object);
            }
            DirOp::Rename { from, to, object } => {
                entries.remove(from);
                entries.insert(to.clone(), *object);
            }
            DirOp::Unlink { name } => {
                entries.remove(name);
            }
        }
    }
}

/// A directory: its durable entries and the changes since its last sync.
#[derive(Debug, Clone, Default)]
pub struct Dir {
    pub durable: BTreeMap<OsString, usize>,
    pub pending: Vec<DirOp>,
}

impl Dir {
    pub fn volatile(&self) -> BTreeMap<OsString, usize> {
        let mut entries = self.durable.clone();
        for op in &self.pending {
            op.apply(&mut entries);
        }
        entries
    }
}

/// The model of the directories a trace touches, and their files.
#[derive(Debug, Clone, Default)]
pub struct ModelFs {
    pub objects: Vec<Object>,
    /// The object an inode currently is (inode numbers are reused after a file is gone).
    by_file: HashMap<FileId, usize>,
    pub dirs: BTreeMap<PathBuf, Dir>,
}

fn split(path: &Path) -> (PathBuf, OsString) {
    let dir = path
        .parent()
        .expect("a path with a directory")
        .to_path_buf();
    let name = path
        .file_name()
        .expect("a path with a file name")
        .to_os_string();
    (dir, name)
}

impl ModelFs {
    fn object_at(&self, dir: &Path, name: &OsString) -> usize {
        *self
            .dirs
            .get(dir)
            .and_then(|d| d.volatile().get(name).copied())
            .as_ref()
            .unwrap_or_else(|| panic!("the trace uses {name:?} in {dir:?}, which does not exist"))
    }

    fn change(&mut self, dir: PathBuf, op: DirOp) {
        self.dirs.entry(dir).or_default().pending.push(op);
    }

    /// Replays one operation.
    pub fn apply(&mut self, op: &TraceOp) {
        match op {
            TraceOp::Create { path, file, mode } => {
                let (dir, name) = split(path);
                self.objects.push(Object {
                    mode: *mode,
                    ..Object::default()
                });
                let object = self.objects.len() - 1;
                self.by_file.insert(*file, object);
                self.change(dir, DirOp::Link { name, object });
            }
            TraceOp::Write {
                file,
                offset,
                bytes,
            } => {
                let object = self.by_file[file];
                self.objects[object].pending.push(Write {
                    offset: *offset,
                    bytes: bytes.clone(),
                });
            }
            TraceOp::SyncData { file } => {
                let object = self.by_file[file];
                self.objects[object].sync();
            }
            TraceOp::SyncAll { file } => {
                let object = &mut self.objects[self.by_file[file]];
                object.sync();
                if let Some(mode) = object.pending_mode.take() {
                    object.mode = mode;
                }
            }
            TraceOp::SetMode { file, mode } => {
                let object = self.by_file[file];
                self.objects[object].pending_mode = Some(*mode);
            }
            TraceOp::Rename { from, to } => {
                let (dir, from) = split(from);
                let (to_dir, to) = split(to);
                assert_eq!(dir, to_dir, "a rename across directories");
                let object = self.object_at(&dir, &from);
                self.change(dir, DirOp::Rename { from, to, object });
            }
            TraceOp::HardLink { from, to } => {
                let (dir, from) = split(from);
                let (to_dir, to) = split(to);
                assert_eq!(dir, to_dir, "a link across directories");
                let object = self.object_at(&dir, &from);
                self.change(dir, DirOp::Link { name: to, object });
            }
            TraceOp::Remove { path } => {
                let (dir, name) = split(path);
                self.change(dir, DirOp::Unlink { name });
            }
            TraceOp::SyncDir { dir } => {
                let dir = self.dirs.entry(dir.clone()).or_default();
                dir.durable = dir.volatile();
                dir.pending.clear();
            }
        }
    }

    /// Every volatile directory change, directory by directory (the order crash states use).
    pub fn pending_dir_ops(&self) -> impl Iterator<Item = (&PathBuf, &DirOp)> {
        self.dirs
            .iter()
            .flat_map(|(path, dir)| dir.pending.iter().map(move |op| (path, op)))
    }
}

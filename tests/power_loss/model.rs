//! A model file system that keeps what is durable apart from what is only in the page cache.
//!
//! Replaying a recorded trace, it tracks per file the content as of its last sync and the
//! writes since (the volatile epoch), and per directory the entries as of its last sync and
//! the creations, links, renames and removals since. A power loss keeps the durable state and
//! any subset of the volatile one the kernel may have written back: see [`super::crashes`].

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

/// A file (an inode): its durable content and the writes made since its last sync.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub durable: Vec<u8>,
    pub pending: Vec<Write>,
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

/// The model of one directory's files (every trace the simulator replays writes in one).
#[derive(Debug, Clone, Default)]
pub struct ModelFs {
    pub objects: Vec<Object>,
    /// The object an inode currently is (inode numbers are reused after a file is gone).
    by_file: HashMap<FileId, usize>,
    pub dir: Dir,
    dir_path: Option<PathBuf>,
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
    fn check_dir(&mut self, dir: PathBuf) {
        match &self.dir_path {
            Some(known) => assert_eq!(known, &dir, "the trace touches two directories"),
            None => self.dir_path = Some(dir),
        }
    }

    fn object_at(&self, name: &OsString) -> usize {
        *self
            .dir
            .volatile()
            .get(name)
            .unwrap_or_else(|| panic!("the trace uses {name:?}, which does not exist"))
    }

    /// Replays one operation.
    pub fn apply(&mut self, op: &TraceOp) {
        match op {
            TraceOp::Create { path, file } => {
                let (dir, name) = split(path);
                self.check_dir(dir);
                self.objects.push(Object::default());
                let object = self.objects.len() - 1;
                self.by_file.insert(*file, object);
                self.dir.pending.push(DirOp::Link { name, object });
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
            TraceOp::SyncData { file } | TraceOp::SyncAll { file } => {
                let object = self.by_file[file];
                self.objects[object].sync();
            }
            TraceOp::Rename { from, to } => {
                let (dir, from) = split(from);
                self.check_dir(dir);
                let (_, to) = split(to);
                let object = self.object_at(&from);
                self.dir.pending.push(DirOp::Rename { from, to, object });
            }
            TraceOp::HardLink { from, to } => {
                let (dir, from) = split(from);
                self.check_dir(dir);
                let (_, to) = split(to);
                let object = self.object_at(&from);
                self.dir.pending.push(DirOp::Link { name: to, object });
            }
            TraceOp::Remove { path } => {
                let (dir, name) = split(path);
                self.check_dir(dir);
                self.dir.pending.push(DirOp::Unlink { name });
            }
            TraceOp::SyncDir { dir } => {
                self.check_dir(dir.clone());
                self.dir.durable = self.dir.volatile();
                self.dir.pending.clear();
            }
        }
    }
}

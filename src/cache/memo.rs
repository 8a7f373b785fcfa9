//! The in-process memo of [`PackCache`](super::PackCache): loaded modules by engine and key.
//!
//! `load` is called far more often than `save`, and wasmer 7.4 keeps the buffer of every
//! artifact it deserializes alive for the engine's lifetime. Deserializing the same key twice
//! therefore costs time *and* pins a second copy of its code: the memo is a correctness
//! matter, not only a speed-up. It is bounded by entry count and by artifact bytes and evicts
//! the least recently used module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use wasmer::{EngineId, Module};

use crate::Key;

/// Bounds on the memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoLimits {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: u64,
}

#[derive(Debug)]
struct Slot {
    module: Module,
    bytes: u64,
    last_used: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Memo {
    limits: MemoLimits,
    clock: AtomicU64,
    slots: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<(EngineId, Key), Slot>,
    bytes: u64,
}

impl Memo {
    pub(crate) fn new(limits: MemoLimits) -> Memo {
        Memo {
            limits,
            clock: AtomicU64::new(0),
            slots: RwLock::new(Table::default()),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// A memoized module: a clone of an `Arc`, under a shared lock.
    pub(crate) fn get(&self, engine: EngineId, key: &Key) -> Option<Module> {
        let table = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let slot = table.map.get(&(engine, *key))?;
        slot.last_used.store(self.tick(), Ordering::Relaxed);
        Some(slot.module.clone())
    }

    pub(crate) fn contains(&self, engine: EngineId, key: &Key) -> bool {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .contains_key(&(engine, *key))
    }

    /// Remembers a module of `bytes` artifact bytes; returns the module to hand out, which is
    /// the one already memoized if another thread got there first (so every caller shares one).
    pub(crate) fn insert(&self, engine: EngineId, key: Key, module: Module, bytes: u64) -> Module {
        self.put(engine, key, module, bytes, false)
    }

    /// Remembers a module of `bytes` artifact bytes in place of any memoized under the key:
    /// what a save does, so that the saving process loads what it saved.
    pub(crate) fn replace(&self, engine: EngineId, key: Key, module: Module, bytes: u64) {
        self.put(engine, key, module, bytes, true);
    }

    fn put(&self, engine: EngineId, key: Key, module: Module, bytes: u64, replace: bool) -> Module {
        let mut table = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if replace && let Some(replaced) = table.map.remove(&(engine, key)) {
            table.bytes -= replaced.bytes;
        }
        if self.limits.max_entries == 0 || bytes > self.limits.max_bytes {
            return module;
        }
        if let Some(existing) = table.map.get(&(engine, key)) {
            existing.last_used.store(self.tick(), Ordering::Relaxed);
            return existing.module.clone();
        }
        while !table.map.is_empty()
            && (table.map.len() >= self.limits.max_entries
                || table.bytes + bytes > self.limits.max_bytes)
        {
            let oldest = table
                .map
                .iter()
                .min_by_key(|(_, slot)| slot.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest
                && let Some(evicted) = table.map.remove(&oldest)
            {
                table.bytes -= evicted.bytes;
            }
        }
        table.bytes += bytes;
        let slot = Slot {
            module: module.clone(),
            bytes,
            last_used: AtomicU64::new(self.tick()),
        };
        table.map.insert((engine, key), slot);
        module
    }

    pub(crate) fn len(&self) -> usize {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

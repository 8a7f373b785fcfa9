//! Locks that ignore poisoning.
//!
//! A thread that panicked while holding one of our locks left the data consistent (every
//! critical section in the crate either completes its update or changes nothing a reader
//! relies on), so a poisoned lock is used as it is rather than turned into a second panic.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a shared lock on `lock`, poisoned or not.
pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the exclusive lock on `lock`, poisoned or not.
pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_used_as_it_is() {
        let mutex = Mutex::new(1);
        let rwlock = RwLock::new(2);
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _m = mutex.lock().unwrap();
                    let _w = rwlock.write().unwrap();
                    panic!("poison both");
                })
                .join()
        });
        assert!(mutex.is_poisoned() && rwlock.is_poisoned());
        *lock(&mutex) += 1;
        *write(&rwlock) += 1;
        assert_eq!((*lock(&mutex), *read(&rwlock)), (2, 3));
    }
}

//! Giving back the page-table entries of a value once it has been used.

use crate::Pack;
use crate::sync;

impl Pack {
    /// Drops this process's page-table entries for the pages that hold only `value`, a value
    /// [`Pack::get`] returned: the pages stay in the page cache, and reading `value` again
    /// maps them again, with the same bytes. A module cache calls this once wasmer has copied
    /// what it needs out of an artifact, so that a process's proportional set size counts
    /// only the pages it reads afterwards, not every page the checksum touched. Does nothing
    /// for a pack held in memory, or for bytes outside the pack's current mapping (a value
    /// read before the pack was remapped, or copied).
    #[cfg_attr(not(feature = "wasmer"), allow(dead_code))] // Only the module caches use it.
    pub(crate) fn release(&self, value: &[u8]) {
        let view = sync::read(&self.inner.view).clone();
        view.map.release(value);
    }
}

//! Publishing a commit: which commit slot to write, and the syncs around it, in the order that
//! survives power loss (docs/FORMAT.md, section 4.3).
//!
//! `Durability::Full` syncs the records, writes the slot that does not hold the live commit,
//! syncs again (the commit is durable from here), then mirrors the slot into the other one so
//! that at rest both hold it. `Durability::None` never overwrites the last slot known to be
//! durable: the first unsynced commit after a synced one syncs once (which makes the synced
//! commit's slot durable too) and writes the other slot; later unsynced commits rewrite that
//! same slot in place, with no sync at all. After a power loss, a reader finds either an
//! unsynced commit whose index checks out or, in the other slot, the durable one before it.

use crate::format::superblock::{CommitSlot, Publication, SLOT_OFFSETS};
use crate::{Durability, Error, Result};

use super::view::View;
use crate::storage::{Io, Storage};

/// Publishes `slot`, the commit that follows `base` (the live commit read under the writer
/// lock), with `durability`. An error before the slot is written means nothing was published;
/// [`Error::NotDurable`] means the commit landed but may not survive a power loss.
pub(crate) fn publish(base: &View, slot: CommitSlot, durability: Durability) -> Result<()> {
    match durability {
        Durability::Full => {
            sync(base)?;
            let target = full_target(base);
            let slot = CommitSlot {
                publication: Publication::Synced,
                ..slot
            };
            write_slot(base, target, &slot)?;
            Io::sync_data(base.file.os_file()?)
                .map_err(|e| Error::not_durable(&base.file.path, e))?;
            // At rest both slots hold the commit, so damage to either one loses nothing. The
            // commit is already durable: if this write is lost or torn, the other slot has it.
            if let Err(e) = write_slot(base, 1 - target, &slot) {
                tracing::warn!(error = %e, "could not mirror the commit slot; the commit stands");
            }
        }
        Durability::None => {
            let (target, durable_len) = match base.commit.publication {
                Publication::Unsynced { durable_len } if has_durable_partner(base) => {
                    (base.live, durable_len)
                }
                _ => {
                    // The live commit's slot may not be durable yet (or is the only durable
                    // one): sync once, after which it is, and write the other slot.
                    sync(base)?;
                    (1 - base.live, slot.committed_len)
                }
            };
            let slot = CommitSlot {
                publication: Publication::Unsynced { durable_len },
                ..slot
            };
            write_slot(base, target, &slot)?;
        }
    }
    Ok(())
}

/// Marks the file of `base` superseded (compaction renamed a new file over its path): `slot`
/// in both slots, the one not holding the live commit first, without syncing. The mark is
/// advisory: a reader that misses it still notices the new file at the path.
pub(crate) fn mark_superseded(base: &View, slot: CommitSlot) -> Result<()> {
    let target = full_target(base);
    write_slot(base, target, &slot)?;
    write_slot(base, 1 - target, &slot)
}

/// The slot a synced commit writes first: the one not holding the live commit, or slot 0 if
/// both hold it.
fn full_target(base: &View) -> usize {
    let other = 1 - base.live;
    let mirrored = base.slots[other].is_some_and(|s| s.generation == base.commit.generation);
    if mirrored { 0 } else { other }
}

/// Whether the slot that does not hold the live (unsynced) commit holds an older valid one:
/// the durable commit an unsynced commit's slot was written beside.
fn has_durable_partner(base: &View) -> bool {
    base.slots[1 - base.live].is_some_and(|s| s.generation < base.commit.generation)
}

fn sync(base: &View) -> Result<()> {
    Io::sync_data(base.file.os_file()?).map_err(|e| Error::write(&base.file.path, e))
}

fn write_slot(base: &View, index: usize, slot: &CommitSlot) -> Result<()> {
    Io::write_at(base.file.os_file()?, &slot.encode(), SLOT_OFFSETS[index])
        .map_err(|e| Error::write(&base.file.path, e))
}

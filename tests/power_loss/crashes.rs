//! The states a power loss may leave: every subset of the volatile writes and directory
//! changes, in every order the kernel may have written them back, torn at sector granularity.
//!
//! The kernel writes dirty pages back whenever it likes, so after a power loss each 512-byte
//! sector written since its file's last sync holds the page cache's content after *some*
//! prefix of the writes that touched it (possibly none: the durable content), independently of
//! every other sector. A crash state picks, for each volatile write, whether it reached the
//! disk whole, not at all, or torn (some of its sectors), and each sector then holds the
//! content after the last write that reached it there; later writes that did not, and earlier
//! ones, are what a reordering looks like. Directory changes since the directory's last sync
//! survive in any subset, each rename whole or not at all. Where the volatile units are few,
//! every subset is tried; where they are many, a seeded random sample, always including
//! nothing persisted, everything persisted, and in-order prefixes.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::model::{ModelFs, Object};
use super::rng::Rng;

/// The unit of tearing.
pub const SECTOR: u64 = 512;

/// What became of one volatile write.
#[derive(Debug, Clone)]
pub enum Fate {
    Lost,
    Whole,
    /// Only the sectors whose flag is set reached the disk.
    Torn(Vec<bool>),
}

/// How the bytes past a file's durable end that no persisted write covers read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The length grew only as far as persisted writes reach; nothing else is there.
    Persisted,
    /// The length reached everything written (its metadata was written back), and what the
    /// data did not cover reads as zeros.
    Zeros,
    /// As `Zeros`, but the uncovered bytes are stale garbage from earlier use of the blocks.
    Garbage(u64),
}

/// One power loss: a fate for every volatile write of every file, and whether each volatile
/// directory change survived.
#[derive(Debug, Clone)]
pub struct CrashState {
    pub writes: Vec<Vec<Fate>>,
    pub dir_ops: Vec<bool>,
    pub tail: Tail,
}

/// The files a crash state leaves: name to content.
pub type Image = BTreeMap<OsString, Vec<u8>>;

/// How the enumeration went at one crash point.
pub struct Enumerated {
    pub states: Vec<CrashState>,
    pub exhaustive: bool,
}

/// The crash states to try for the model as it stands: all of them when there are at most
/// `exhaustive_units` volatile writes and directory changes (plus `samples / 4` with torn
/// writes), else `samples` drawn from `rng`.
pub fn enumerate(
    fs: &ModelFs,
    rng: &mut Rng,
    exhaustive_units: usize,
    samples: usize,
) -> Enumerated {
    let counts: Vec<usize> = fs.objects.iter().map(|o| o.pending.len()).collect();
    let dir_ops = fs.dir.pending.len();
    let units = counts.iter().sum::<usize>() + dir_ops;
    let from_bits = |bits: &dyn Fn(usize) -> bool| {
        let mut unit = 0;
        let writes = counts
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| {
                        unit += 1;
                        if bits(unit - 1) {
                            Fate::Whole
                        } else {
                            Fate::Lost
                        }
                    })
                    .collect()
            })
            .collect();
        let dir = (0..dir_ops)
            .map(|_| {
                unit += 1;
                bits(unit - 1)
            })
            .collect();
        CrashState {
            writes,
            dir_ops: dir,
            tail: Tail::Persisted,
        }
    };
    let mut states = Vec::new();
    let exhaustive = units <= exhaustive_units;
    if exhaustive {
        for mask in 0..1u64 << units {
            states.push(from_bits(&|unit| mask & (1 << unit) != 0));
        }
        if units > 0 {
            for _ in 0..samples / 4 {
                states.push(random_state(fs, rng));
            }
        }
    } else {
        states.push(from_bits(&|_| false));
        states.push(from_bits(&|_| true));
        // Written back in program order, up to a point: the common case.
        for cut in 1..8 {
            let cut = units * cut / 8;
            states.push(from_bits(&|unit| unit < cut));
        }
        for _ in 0..samples {
            states.push(random_state(fs, rng));
        }
    }
    Enumerated { states, exhaustive }
}

fn random_state(fs: &ModelFs, rng: &mut Rng) -> CrashState {
    let writes = fs
        .objects
        .iter()
        .map(|object| {
            object
                .pending
                .iter()
                .map(|write| match rng.below(20) {
                    0..7 => Fate::Lost,
                    7..16 => Fate::Whole,
                    _ => {
                        let sectors = sector_span(write.offset, write.end()).count();
                        Fate::Torn((0..sectors).map(|_| rng.below(2) == 0).collect())
                    }
                })
                .collect()
        })
        .collect();
    let dir_ops = fs.dir.pending.iter().map(|_| rng.below(2) == 0).collect();
    let tail = match rng.below(10) {
        0 => Tail::Zeros,
        1 => Tail::Garbage(rng.next()),
        _ => Tail::Persisted,
    };
    CrashState {
        writes,
        dir_ops,
        tail,
    }
}

fn sector_span(start: u64, end: u64) -> std::ops::Range<u64> {
    if end <= start {
        return start / SECTOR..start / SECTOR;
    }
    start / SECTOR..(end - 1) / SECTOR + 1
}

/// The files `state` leaves: each name of the surviving directory with its object's content.
pub fn materialize(fs: &ModelFs, state: &CrashState) -> Image {
    let mut entries = fs.dir.durable.clone();
    for (op, survived) in fs.dir.pending.iter().zip(&state.dir_ops) {
        if *survived {
            op.apply(&mut entries);
        }
    }
    entries
        .into_iter()
        .map(|(name, object)| {
            let content = crashed(&fs.objects[object], &state.writes[object], state.tail);
            (name, content)
        })
        .collect()
}

/// An object's content after a power loss in which its volatile writes met `fates`.
fn crashed(object: &Object, fates: &[Fate], tail: Tail) -> Vec<u8> {
    // For each sector some write reached: the last write that reached it.
    let mut last: BTreeMap<u64, usize> = BTreeMap::new();
    let mut len = object.durable.len() as u64;
    let mut volatile_len = len;
    for (i, (write, fate)) in object.pending.iter().zip(fates).enumerate() {
        volatile_len = volatile_len.max(write.end());
        let mut reached = false;
        for (j, sector) in sector_span(write.offset, write.end()).enumerate() {
            let persisted = match fate {
                Fate::Lost => false,
                Fate::Whole => true,
                Fate::Torn(sectors) => sectors[j],
            };
            if persisted {
                last.insert(sector, i);
                reached = true;
            }
        }
        if reached {
            len = len.max(write.end());
        }
    }
    let durable_len = object.durable.len();
    let mut bytes = object.durable.clone();
    match tail {
        Tail::Persisted => bytes.resize(len as usize, 0),
        Tail::Zeros => bytes.resize(volatile_len as usize, 0),
        Tail::Garbage(seed) => {
            let mut rng = Rng::new(seed);
            bytes.extend((durable_len as u64..volatile_len).map(|_| rng.next() as u8));
        }
    }
    for (&sector, &version) in &last {
        let start = sector * SECTOR;
        let end = (start + SECTOR).min(bytes.len() as u64);
        if start >= end {
            continue;
        }
        // The sector as the page cache held it right after write `version`.
        let mut page: Vec<u8> = object
            .durable
            .get(start as usize..(end as usize).min(durable_len))
            .unwrap_or_default()
            .to_vec();
        page.resize((end - start) as usize, 0);
        for write in &object.pending[..=version] {
            if write.end() <= start || write.offset >= end {
                continue;
            }
            let from = write.offset.max(start);
            let to = write.end().min(end);
            page[(from - start) as usize..(to - start) as usize].copy_from_slice(
                &write.bytes[(from - write.offset) as usize..(to - write.offset) as usize],
            );
        }
        bytes[start as usize..end as usize].copy_from_slice(&page);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power_loss::model::Write;

    fn object() -> Object {
        Object {
            durable: vec![1; 1000],
            pending: vec![
                Write {
                    offset: 900,
                    bytes: vec![2; 300],
                },
                Write {
                    offset: 0,
                    bytes: vec![3; 10],
                },
                Write {
                    offset: 1100,
                    bytes: vec![4; 10],
                },
            ],
        }
    }

    #[test]
    fn sectors_hold_the_content_after_the_last_write_that_reached_them() {
        let o = object();
        assert_eq!(
            crashed(&o, &[Fate::Lost, Fate::Lost, Fate::Lost], Tail::Persisted),
            o.durable
        );
        assert_eq!(
            crashed(
                &o,
                &[Fate::Whole, Fate::Whole, Fate::Whole],
                Tail::Persisted
            ),
            o.volatile()
        );
        // Only the last write's sector: it holds what the page cache held then, which
        // includes the first write's bytes in that sector, but not its other sector.
        let out = crashed(&o, &[Fate::Lost, Fate::Lost, Fate::Whole], Tail::Persisted);
        assert_eq!(out.len(), 1110);
        assert_eq!(out[..1000], o.durable[..]);
        assert!(out[1024..1100].iter().all(|&b| b == 2));
        assert!(out[1100..1110].iter().all(|&b| b == 4));
        assert!(
            out[1000..1024].iter().all(|&b| b == 0),
            "sector 1 never reached the disk"
        );
        // Torn: only the second sector of the first write.
        let out = crashed(
            &o,
            &[Fate::Torn(vec![false, true]), Fate::Lost, Fate::Lost],
            Tail::Zeros,
        );
        assert_eq!(out.len(), 1200);
        assert!(out[900..1000].iter().all(|&b| b == 1));
        assert!(out[1024..1200].iter().all(|&b| b == 2));
    }
}

//! BLAKE3 of values (spread over the cores for large ones) and of a pack's identity.
//!
//! BLAKE3 is a tree hash: a value splits into a left subtree of `left_subtree_len(len)` bytes
//! and the rest, each hashed on its own thread into a chaining value, and the two merge into
//! the root hash, the same bytes `blake3::hash` gives. This is the crate's documented
//! `hazmat` tree mode; it avoids pulling in rayon for one split per load.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::Result;
use crate::pack::view::View;

/// The BLAKE3 hash of `view`'s encoded identity: what a signature's statement names the pack
/// by.
pub(super) fn identity_hash(view: &View) -> Result<[u8; 32]> {
    let encoded = view
        .file
        .identity
        .encode()
        .map_err(|detail| view.corrupt(format!("bad identity: {detail}")))?;
    Ok(*blake3::hash(&encoded).as_bytes())
}

/// Values at least this large are hashed on more than one thread.
const PARALLEL_FROM: usize = 1 << 20;
/// Subtrees are not split below this size: a thread start costs more than hashing it.
const MIN_PIECE: usize = 256 << 10;

/// The BLAKE3 hash of `value`.
pub(super) fn value_hash(value: &[u8]) -> [u8; 32] {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if value.len() < PARALLEL_FROM || threads < 2 {
        return *blake3::hash(value).as_bytes();
    }
    // Split into about one piece per core (a power of two), each at least MIN_PIECE.
    let depth = (usize::BITS - 1 - threads.leading_zeros())
        .min(usize::BITS - 1 - (value.len() / MIN_PIECE).max(1).leading_zeros());
    let left_len = left_subtree_len(value.len() as u64) as usize;
    let (left, right) = value.split_at(left_len);
    let (left_cv, right_cv) = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().spawn_scoped(scope, || {
            subtree(right, left_len as u64, depth.saturating_sub(1))
        });
        let left_cv = subtree(left, 0, depth.saturating_sub(1));
        let right_cv = match helper.ok().and_then(|h| h.join().ok()) {
            Some(cv) => cv,
            None => subtree(right, left_len as u64, 0),
        };
        (left_cv, right_cv)
    });
    *merge_subtrees_root(&left_cv, &right_cv, Mode::Hash).as_bytes()
}

/// The chaining value of the subtree `bytes` starting at `offset`, split `depth` more times.
fn subtree(bytes: &[u8], offset: u64, depth: u32) -> [u8; 32] {
    if depth == 0 || bytes.len() < 2 * MIN_PIECE {
        return blake3::Hasher::new()
            .set_input_offset(offset)
            .update(bytes)
            .finalize_non_root();
    }
    let left_len = left_subtree_len(bytes.len() as u64) as usize;
    let (left, right) = bytes.split_at(left_len);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().spawn_scoped(scope, || {
            subtree(right, offset + left_len as u64, depth - 1)
        });
        let left_cv = subtree(left, offset, depth - 1);
        let right_cv = match helper.ok().and_then(|h| h.join().ok()) {
            Some(cv) => cv,
            None => subtree(right, offset + left_len as u64, 0),
        };
        merge_subtrees_non_root(&left_cv, &right_cv, Mode::Hash)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_blake3_for_every_shape() {
        let data: Vec<u8> = (0..(9u32 << 20) + 12345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [
            0,
            1,
            1024,
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            PARALLEL_FROM + 1,
            3 * PARALLEL_FROM + 1023,
            data.len(),
        ] {
            let value = &data[..len];
            assert_eq!(value_hash(value), *blake3::hash(value).as_bytes(), "{len}");
        }
        // Deeper splits than this machine's cores would pick.
        let value = &data[..5 * PARALLEL_FROM + 7];
        let left = left_subtree_len(value.len() as u64) as usize;
        let root = merge_subtrees_root(
            &subtree(&value[..left], 0, 3),
            &subtree(&value[left..], left as u64, 3),
            Mode::Hash,
        );
        assert_eq!(root, blake3::hash(value));
    }
}

//! A delta pull: fetch only the entries a local pack of the same identity lacks.
//!
//! The remote pack is read the way a reader maps one, but through range requests: its index
//! root, then its index blocks, then the records of the missing entries, adjacent records
//! merged into one request. Every range is decoded and checked by the pure decoders of
//! `wasmpak::format::snapshot` (checksums, kinds, bounds, order) before anything in it is
//! used, and every entry is appended through the local pack's own batches: a commit per
//! group, so a pull killed midway leaves whole entries only.

use std::ops::Range;

use futures::{StreamExt, TryStreamExt};
use wasmpak::Pack;
use wasmpak::format::index::IndexEntry;
use wasmpak::format::snapshot;
use wasmpak::format::superblock::CommitSlot;

use crate::error::CliError;
use crate::remote::report::Summary;
use crate::remote::runtime;
use crate::remote::source::Source;

/// Adjacent records are fetched in one request up to this size.
const MAX_SPAN: u64 = 8 << 20;
/// Requests in flight at once.
const CONCURRENT_REQUESTS: usize = 4;
/// Fetched bytes appended per local commit.
const GROUP_BYTES: u64 = 64 << 20;

/// Records fetched by one request.
struct Span {
    range: Range<u64>,
    entries: Vec<IndexEntry>,
}

/// Adds to `local` the remote pack's live entries it lacks.
pub async fn pull(
    source: &Source<'_>,
    commit: &CommitSlot,
    local: &Pack,
    summary: &mut Summary,
) -> Result<(), CliError> {
    let url = source.remote.url();
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        CliError::failed(format!("pack {url} is corrupt: {what}: {e}"))
    };
    summary.mode = "up-to-date";
    let Some(root_range) = snapshot::root_range(commit) else {
        return Ok(()); // an empty pack
    };
    let root_bytes = source.range(root_range).await?;
    summary.bytes_downloaded += root_bytes.len() as u64;
    summary.requests += 1;
    let root = snapshot::decode_root(&root_bytes, commit).map_err(|e| corrupt("index root", &e))?;
    let blocks: Vec<Vec<IndexEntry>> = futures::stream::iter(root.blocks.iter())
        .map(|block| async move {
            let range = snapshot::block_range(block, commit).map_err(|e| corrupt("index", &e))?;
            let bytes = source.range(range).await?;
            let entries = snapshot::decode_block(&bytes, block.count)
                .map_err(|e| corrupt(&format!("index block at offset {}", block.offset), &e))?;
            Ok::<_, CliError>((bytes.len() as u64, entries))
        })
        .buffered(CONCURRENT_REQUESTS)
        .map_ok(|(len, entries)| {
            summary.bytes_downloaded += len;
            summary.requests += 1;
            entries
        })
        .try_collect()
        .await?;
    let live = snapshot::live_values(&blocks);
    summary.remote_entries = live.len() as u64;
    let mut missing = Vec::new();
    for entry in live {
        if !local
            .contains(&entry.key)
            .map_err(|e| local_error(local, e))?
        {
            missing.push(entry);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    summary.mode = "delta";
    runtime::pause_point().await;
    let spans = spans(missing, commit).map_err(|e| corrupt("index", &e))?;
    summary.requests += spans.len() as u64;
    let mut fetched = futures::stream::iter(spans)
        .map(|span| async move {
            let bytes = source.range(span.range.clone()).await?;
            Ok::<_, CliError>((span, bytes))
        })
        .buffered(CONCURRENT_REQUESTS);
    let mut group = Vec::new();
    let mut group_bytes = 0;
    while let Some(next) = fetched.next().await {
        let (span, bytes) = next?;
        summary.bytes_downloaded += bytes.len() as u64;
        group_bytes += bytes.len() as u64;
        group.push((span, bytes));
        if group_bytes >= GROUP_BYTES {
            summary.entries_added += append(source, local, &std::mem::take(&mut group))?;
            group_bytes = 0;
        }
    }
    summary.entries_added += append(source, local, &group)?;
    Ok(())
}

/// Groups the records of `entries` into requests: records that touch are fetched together.
fn spans(
    mut entries: Vec<IndexEntry>,
    commit: &CommitSlot,
) -> Result<Vec<Span>, wasmpak::format::DecodeError> {
    entries.sort_by_key(|e| e.record_offset);
    let mut spans: Vec<Span> = Vec::new();
    for entry in entries {
        let range = snapshot::entry_range(&entry, commit)?;
        match spans.last_mut() {
            Some(last)
                if last.range.end == range.start && range.end - last.range.start <= MAX_SPAN =>
            {
                last.range.end = range.end;
                last.entries.push(entry);
            }
            _ => spans.push(Span {
                range,
                entries: vec![entry],
            }),
        }
    }
    Ok(spans)
}

/// Checks every fetched record and appends the group in one local commit. Keys another
/// writer added meanwhile are skipped. Returns how many were added.
fn append(
    source: &Source<'_>,
    local: &Pack,
    group: &[(Span, bytes::Bytes)],
) -> Result<u64, CliError> {
    let url = source.remote.url();
    let mut batch = local.batch();
    let mut added = 0;
    for (span, bytes) in group {
        for entry in &span.entries {
            let start = (entry.record_offset - span.range.start) as usize;
            let (label, value) = snapshot::decode_entry(&bytes[start..], entry).map_err(|e| {
                CliError::failed(format!(
                    "pack {url} is corrupt: entry {} at offset {}: {e}",
                    entry.key, entry.record_offset
                ))
            })?;
            let label = std::str::from_utf8(label).map_err(|_| {
                CliError::failed(format!(
                    "pack {url} is corrupt: the label of entry {} is not UTF-8",
                    entry.key
                ))
            })?;
            if batch
                .contains(&entry.key)
                .map_err(|e| local_error(local, e))?
            {
                continue;
            }
            batch
                .insert_with_label(&entry.key, value, label)
                .map_err(|e| local_error(local, e))?;
            added += 1;
        }
    }
    batch.commit().map_err(|e| local_error(local, e))?;
    Ok(added)
}

/// A failure of the local pack the entries go to.
fn local_error(pack: &Pack, e: wasmpak::Error) -> CliError {
    CliError::failed(format!("cannot update pack {}: {e}", pack.path().display()))
}

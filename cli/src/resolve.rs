//! Naming an entry on the command line: by key, by label, or by a unique key prefix.
//!
//! Keys are 64 hex digits nobody types; labels (file names) are what people remember, and a
//! key prefix is what they copy from `list`, as with git commit ids.

use std::collections::HashMap;

use wasmpak::{Entry, Key, Pack};

use crate::error::CliError;

/// The shortest key prefix accepted, so that a short word is never taken for a prefix.
const MIN_PREFIX: usize = 4;

/// Finds the one entry `name` designates among `entries` (a pack's listing):
/// 1. a full key (64 hex digits, either case);
/// 2. else an exact label, which must be unique;
/// 3. else a unique key prefix of at least four hex digits (either case).
pub fn resolve<'a>(pack: &Pack, entries: &'a [Entry], name: &str) -> Result<&'a Entry, CliError> {
    find(pack, entries, name)?.ok_or_else(|| {
        let shown = pack.path().display();
        match name.parse::<Key>() {
            Ok(key) => CliError::failed(format!("pack {shown} has no entry with key {key}")),
            Err(_) => CliError::failed(format!(
                "pack {shown} has no entry with key or label {name:?}"
            )),
        }
    })
}

/// Like [`resolve`], but `Ok(None)` when nothing matches `name`; an ambiguous name, or one
/// too short to be a key prefix, is still an error.
pub fn find<'a>(
    pack: &Pack,
    entries: &'a [Entry],
    name: &str,
) -> Result<Option<&'a Entry>, CliError> {
    let shown = pack.path().display();
    if let Ok(key) = name.parse::<Key>() {
        return Ok(entries.iter().find(|e| *e.key() == key));
    }
    let labelled: Vec<&Entry> = entries.iter().filter(|e| e.label() == name).collect();
    match labelled.as_slice() {
        [one] => return Ok(Some(one)),
        [] => {}
        many => {
            return Err(CliError::failed(format!(
                "label {name:?} is ambiguous in pack {shown}: {} entries have it ({}); name one \
                 by key",
                many.len(),
                keys(many)
            )));
        }
    }
    let prefix = name.to_ascii_lowercase();
    let hex = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_hexdigit());
    if hex && prefix.len() < MIN_PREFIX {
        return Err(CliError::failed(format!(
            "{name:?} is no label in pack {shown}, and too short for a key prefix: give at \
             least {MIN_PREFIX} hex digits"
        )));
    }
    if hex {
        let matching: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.key().to_string().starts_with(&prefix))
            .collect();
        match matching.as_slice() {
            [one] => return Ok(Some(one)),
            [] => {}
            many => {
                return Err(CliError::failed(format!(
                    "key prefix {name} is ambiguous in pack {shown}: it matches {} ({}); give \
                     more digits",
                    many.len(),
                    keys(many)
                )));
            }
        }
    }
    Ok(None)
}

/// Short keys for a message: the first 12 digits of each, at most five.
fn keys(entries: &[&Entry]) -> String {
    let mut shown: Vec<String> = entries
        .iter()
        .take(5)
        .map(|e| e.key().to_string()[..12].to_string())
        .collect();
    if entries.len() > 5 {
        shown.push("...".to_string());
    }
    shown.join(", ")
}

/// The labels of a pack's entries, to name keys in reports.
#[derive(Debug, Default)]
pub struct Labels(HashMap<Key, String>);

impl Labels {
    /// The labels of `pack`'s entries; none if they cannot be listed (a damaged record header
    /// costs the labels, not the report that needs them).
    pub fn of(pack: &Pack) -> Labels {
        let labels = pack
            .iter()
            .map(|entries| entries.map(|e| (*e.key(), e.label().to_string())).collect())
            .unwrap_or_default();
        Labels(labels)
    }

    /// The label of the entry under `key`, unless it has none.
    pub fn get(&self, key: &Key) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|l| !l.is_empty())
    }
}

//! Transfers to and from object stores, for `push` and `pull`. Leaves first: `store` (the
//! object a URL names), `runtime` (how transfers run), `report` (what a pull did), `source` (an
//! object pinned at one version), `writeback` (a head start for a download's sync); then the
//! two ways a pull fetches, `download` (the whole object, streamed into a temporary file) and
//! `delta` (only the entries a local pack lacks), which share the leaves and never import each
//! other.

pub mod delta;
pub mod download;
pub mod report;
pub mod runtime;
pub mod source;
pub mod store;
pub mod writeback;

//! The store: `Pack` and its format, without wasmer.

mod api;
mod bad_input;
mod compact;
mod compact_crash;
mod crash;
mod embedded;
mod media;
mod model;
mod multiprocess;
mod permissions;
mod seals;
mod signatures;
mod writers;

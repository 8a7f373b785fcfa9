//! The bytes on disk: pure encoders and decoders, no I/O.

pub mod identity;

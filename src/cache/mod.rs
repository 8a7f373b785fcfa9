//! Caches of compiled wasmer modules.

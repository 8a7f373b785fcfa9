//! Faults from outside the store: writers killed mid-commit, full disks, files changed behind
//! an open handle, and storage operations made to fail.

mod crash;
#[cfg(target_os = "linux")]
mod disk_full;
mod files;
#[cfg(feature = "fault-injection")]
mod storage;

//! What the library's and the tool's test binaries share (`tests/common`, `cli/tests/common`
//! re-export it): child processes that play a role of the test that started them
//! ([`process`]), and the machine's prerequisites, which fail a test unless
//! `WASMPAK_TEST_SKIP` opts out ([`machine`]).

pub mod machine;
pub mod process;

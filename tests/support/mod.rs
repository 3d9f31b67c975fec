//! Helpers shared by the test binaries (included with `#[path]`).

pub mod oracle;
pub mod postgres;

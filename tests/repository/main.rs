//! Repository behaviour, written once and run against every backend that is
//! available, plus property tests of filtering and pagination.

mod backends;
mod behaviour;
mod durability;
mod idempotency;
mod keyset;
mod oracle;
mod ordering;
mod postgres;
mod properties;
mod streaming;
#[path = "../support/mod.rs"]
mod support;

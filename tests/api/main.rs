//! Black-box tests of the HTTP API against the real server.

mod archive;
mod bulk;
mod compaction;
mod durability;
mod endpoints;
mod export;
mod fidelity;
mod file_source;
mod hardening;
mod helpers;
mod ingest;
mod json_errors;
mod openapi;
mod process;
mod query;
mod stats;
mod strict;
mod validation;

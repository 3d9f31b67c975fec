//! Black-box tests of the HTTP API against the real server.

mod archive;
mod bulk;
mod chromium;
mod cli;
mod compaction;
mod connections;
mod dashboard;
mod durability;
mod endpoints;
mod export;
mod exposition;
mod fidelity;
mod file_source;
mod hardening;
mod helpers;
mod http;
mod ingest;
mod json_errors;
mod logs;
mod metrics;
mod openapi;
mod oracle;
mod process;
mod query;
mod stats;
mod storage_faults;
mod strict;
mod validation;

#[path = "../support/mod.rs"]
mod support;

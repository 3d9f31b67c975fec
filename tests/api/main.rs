//! Black-box tests of the HTTP API against the real server.

mod endpoints;
mod file_source;
mod helpers;
mod ingest;
mod process;
mod query;
mod validation;

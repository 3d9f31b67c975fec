//! pipeline-service: records and serves metadata about data-pipeline runs.

pub mod api;
pub mod config;
pub mod domain;
pub mod generate;
pub mod import;
pub mod metrics;
pub mod probe;
pub mod repository;
pub mod server;
pub mod startup;
pub mod stats;
pub mod telemetry;

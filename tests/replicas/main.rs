//! The real binary on PostgreSQL: its commands (`ddl`, `migrate`,
//! `import`) and several service processes sharing one database.

mod commands;
mod several;

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/mod.rs"]
mod support;

use crate::helpers::{start_service, ServiceProcess};

/// A service process on PostgreSQL at `url`, with `extra` settings.
pub fn replica(url: &str, extra: &[(&str, &str)]) -> ServiceProcess {
    let mut env = vec![
        ("HOST", "127.0.0.1"),
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL", url),
    ];
    env.extend_from_slice(extra);
    start_service(&env)
}

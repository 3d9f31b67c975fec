//! The real binary on PostgreSQL: its commands (`ddl`, `migrate`,
//! `import`) and several service processes sharing one database.

mod commands;
mod several;

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;

use serde_json::Value;

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

/// How many times each `date_code` is stored, read through `address`
/// (every run, in one answer).
pub async fn stored_codes(client: &reqwest::Client, address: &str) -> HashMap<String, usize> {
    let answer: Value = client
        .get(format!("{address}/get_pipeline_info?all_data=true"))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON answer");
    let mut counts = HashMap::new();
    for run in answer["results"].as_array().expect("results") {
        let code = run["date_code"].as_str().unwrap_or_default().to_owned();
        *counts.entry(code).or_insert(0) += 1;
    }
    counts
}

//! The backends the shared behaviour tests run against.

use std::sync::Arc;

use pipeline_service::domain::PipelineInfo;
use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::PipelineInfoRepository;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A fresh, empty store and whatever keeps it alive.
pub struct Fresh {
    pub repository: Arc<dyn PipelineInfoRepository>,
    _dir: TempDir,
}

pub async fn fresh_jsonl() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let repository = JsonlRepository::open(dir.path().join("runs.jsonl"))
        .await
        .unwrap();
    Fresh {
        repository: Arc::new(repository),
        _dir: dir,
    }
}

/// One fresh store per available backend.
pub async fn every_backend() -> Vec<Fresh> {
    vec![fresh_jsonl().await]
}

/// A valid record starting `minutes` after 2025-08-01T00:00Z.
pub fn record(minutes: i64, changes: Value) -> PipelineInfo {
    let start = chrono::DateTime::from_timestamp(1_754_006_400 + minutes * 60, 0).unwrap();
    let end = start + chrono::Duration::seconds(90);
    let mut body = json!({
        "start_local": start.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "end_local": end.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "start_utc": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "end_utc": end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "elapsed_seconds": 90.0,
        "elapsed_human": "1m 30s",
        "output_file": "/data/out.csv",
        "log_file": "/data/run.log",
        "rowcount": 10,
        "pid": 1,
        "date_code": format!("m{minutes}"),
        "pipeline_name": "etl",
        "script_name": "etl.py",
        "pipeline_type": "batch",
        "environment": "prod",
    });
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), changes) {
        target.extend(extra);
    }
    PipelineInfo::parse(&body, "body").unwrap()
}

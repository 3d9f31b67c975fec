//! Group commit, observed from outside the writer.

use std::sync::Arc;
use std::time::Duration;

use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::{Page, PipelineInfoRepository, RunFilter};
use serde_json::json;

use crate::backends::record;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_waiting_together_share_one_write_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let repository = Arc::new(JsonlRepository::open(&path).await.unwrap());
    // Another writer holds the lock, so every insert has to wait.
    let blocker = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    blocker.lock().unwrap();
    let mut inserts = Vec::new();
    for i in 0..64 {
        let repository = repository.clone();
        inserts.push(tokio::spawn(async move {
            repository
                .insert_pipeline_info(record(i, json!({})))
                .await
                .unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        repository.commits(),
        0,
        "nothing is acknowledged while the lock is held"
    );
    blocker.unlock().unwrap();
    for insert in inserts {
        insert.await.unwrap();
    }
    let commits = repository.commits();
    assert!(commits <= 3, "64 waiting inserts took {commits} commits");
    let stored = repository
        .get_pipeline_info(&RunFilter::default(), Page::All)
        .await
        .unwrap();
    assert_eq!(stored.len(), 64);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 64);
}

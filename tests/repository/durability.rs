//! Group commit, observed from outside the writer.

use std::sync::Arc;
use std::time::Duration;

use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::{PipelineInfoRepository, RunFilter};
use serde_json::json;

use crate::backends::{hold_lock, record, Shortcuts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_waiting_together_share_one_write_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let repository = Arc::new(JsonlRepository::open(&path).await.unwrap());
    // Another writer holds the lock, so every insert has to wait.
    let blocker = hold_lock(&path);
    let mut inserts = Vec::new();
    for i in 0..64 {
        let repository = repository.clone();
        inserts.push(tokio::spawn(async move {
            repository.store(record(i, json!({}))).await.unwrap();
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
    let stored = repository.all(&RunFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 64);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 64);
}

/// What this process appends becomes visible without re-reading the file,
/// and must be exactly what a fresh load of the file gives — also when
/// another writer appended in between or left a torn line.
#[tokio::test]
async fn the_live_index_always_equals_a_fresh_load_of_the_file() {
    use pipeline_service::domain::IdempotencyKey;
    use pipeline_service::repository::NewRun;
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let live = JsonlRepository::open(&path).await.unwrap();
    let keyed = |minutes: i64, key: &str| {
        let record = record(minutes, json!({"date_code": key}));
        NewRun {
            key: Some(IdempotencyKey::parse(key, &record).unwrap()),
            record,
        }
    };
    let foreign = |text: &str| {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    };
    // Batches large enough to be adopted without a re-read, and small ones.
    let mut big: Vec<NewRun> = (0..600)
        .map(|i| keyed(1000 + i, &format!("big{i}")))
        .collect();
    big.push(keyed(5, "k1"));
    big.push(keyed(1, "k2"));
    live.insert(big, false).await.unwrap();
    foreign(&format!(
        "{}\n",
        serde_json::to_string(&record(3, json!({"date_code": "other"}))).unwrap()
    ));
    live.store_all(vec![record(4, json!({"date_code": "a"}))])
        .await
        .unwrap();
    foreign("{\"torn\": ");
    live.insert(vec![keyed(2, "k3")], true).await.unwrap();
    live.store(record(9, json!({"date_code": "b"})))
        .await
        .unwrap();
    let many = (0..700).map(|i| record(-5000 - i, json!({"date_code": format!("many{i}")})));
    live.store_all(many.collect()).await.unwrap();
    let all = |repo: JsonlRepository| async move {
        let codes: Vec<String> = repo
            .all(&RunFilter::default())
            .await
            .unwrap()
            .iter()
            .map(|r| r.date_code().to_owned())
            .collect();
        let summaries = repo.summaries().await.unwrap();
        (codes, summaries)
    };
    let fresh = JsonlRepository::open(&path).await.unwrap();
    let (live_codes, live_summaries) = all(live.clone()).await;
    let (fresh_codes, fresh_summaries) = all(fresh.clone()).await;
    assert_eq!((live_codes.len(), fresh_codes.len()), (1306, 1306));
    assert_eq!(live_codes[600..606], ["b", "k1", "a", "other", "k3", "k2"]);
    assert_eq!(live_codes, fresh_codes);
    assert_eq!(live_summaries, fresh_summaries);
    // Keys are known to both, at the right records.
    for repo in [live, fresh] {
        for (minutes, key) in [(2, "k3"), (1300, "big300"), (1, "k2")] {
            let replay = repo.insert(vec![keyed(minutes, key)], true).await.unwrap();
            match &replay[0] {
                pipeline_service::repository::InsertOutcome::Replayed(r) => {
                    assert_eq!(r.date_code(), key)
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}

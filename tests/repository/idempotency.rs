//! Idempotency keys and batch inserts on every backend.

use std::sync::Arc;
use std::time::Duration;

use pipeline_service::domain::IdempotencyKey;
use pipeline_service::repository::jsonl::{JsonlOptions, JsonlRepository};
use pipeline_service::repository::{InsertOutcome, NewRun, PipelineInfoRepository, RunFilter};
use serde_json::json;

use crate::backends::{every_backend, hold_lock, record, Shortcuts};

fn keyed(minutes: i64, key: &str, code: &str) -> NewRun {
    let record = record(minutes, json!({"date_code": code}));
    let key = IdempotencyKey::parse(key, &record).unwrap();
    NewRun {
        record,
        key: Some(key),
    }
}

async fn count(repo: &Arc<dyn PipelineInfoRepository>) -> u64 {
    repo.count(&RunFilter::default()).await.unwrap()
}

#[tokio::test]
async fn a_key_stores_once_replays_the_same_record_and_refuses_another() {
    for store in every_backend().await {
        let repo = &store.repository;
        let name = repo.backend_name();
        let first = repo.insert(vec![keyed(1, "k1", "a")], true).await.unwrap();
        let InsertOutcome::Created(created) = &first[0] else {
            panic!("{name}: {first:?}")
        };
        let again = repo.insert(vec![keyed(1, "k1", "a")], true).await.unwrap();
        assert_eq!(again, [InsertOutcome::Replayed(created.clone())], "{name}");
        let other = repo.insert(vec![keyed(1, "k1", "b")], true).await.unwrap();
        assert_eq!(other, [InsertOutcome::KeyReused], "{name}");
        assert_eq!(count(repo).await, 1, "{name}: nothing stored twice");
    }
}

#[tokio::test]
async fn an_atomic_batch_with_one_refusal_stores_nothing() {
    for store in every_backend().await {
        let repo = &store.repository;
        let name = repo.backend_name();
        repo.insert(vec![keyed(1, "taken", "a")], true)
            .await
            .unwrap();
        let batch = vec![
            NewRun::from(record(2, json!({"date_code": "plain"}))),
            keyed(3, "fresh", "c"),
            keyed(4, "taken", "different"),
        ];
        let outcomes = repo.insert(batch.clone(), true).await.unwrap();
        assert_eq!(
            outcomes,
            [
                InsertOutcome::NotStored,
                InsertOutcome::NotStored,
                InsertOutcome::KeyReused
            ],
            "{name}"
        );
        assert_eq!(count(repo).await, 1, "{name}: rolled back");
        // The key of a run that was not stored stays free.
        let retry = repo
            .insert(vec![keyed(3, "fresh", "c")], true)
            .await
            .unwrap();
        assert!(matches!(retry[0], InsertOutcome::Created(_)), "{name}");
        // Without atomic, the valid runs are stored and the refusal reported.
        let outcomes = repo.insert(batch, false).await.unwrap();
        assert!(matches!(outcomes[0], InsertOutcome::Created(_)), "{name}");
        assert!(matches!(outcomes[1], InsertOutcome::Replayed(_)), "{name}");
        assert_eq!(outcomes[2], InsertOutcome::KeyReused, "{name}");
        assert_eq!(count(repo).await, 3, "{name}");
    }
}

#[tokio::test]
async fn concurrent_requests_with_one_key_store_one_run() {
    for store in every_backend().await {
        let repo = store.repository.clone();
        let name = repo.backend_name();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let repo = repo.clone();
                tokio::spawn(async move { repo.insert(vec![keyed(1, "race", "r")], true).await })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(outcomes) => match &outcomes[0] {
                    InsertOutcome::Created(_) => created += 1,
                    InsertOutcome::Replayed(_) | InsertOutcome::KeyInFlight => {}
                    other => panic!("{name}: {other:?}"),
                },
                Err(other) => panic!("{name}: {other}"),
            }
        }
        assert_eq!(created, 1, "{name}");
        assert_eq!(count(&repo).await, 1, "{name}");
    }
}

#[tokio::test]
async fn keys_survive_a_restart_on_every_backend() {
    for store in every_backend().await {
        let name = store.repository.backend_name();
        let first = store
            .repository
            .insert(vec![keyed(1, "across", "a")], true)
            .await
            .unwrap();
        assert!(matches!(first[0], InsertOutcome::Created(_)), "{name}");
        let restarted = store.reopen().await;
        let replay = restarted
            .insert(vec![keyed(1, "across", "a")], true)
            .await
            .unwrap();
        match &replay[0] {
            InsertOutcome::Replayed(record) => assert_eq!(record.date_code(), "a", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let changed = restarted
            .insert(vec![keyed(1, "across", "b")], true)
            .await
            .unwrap();
        assert_eq!(changed, [InsertOutcome::KeyReused], "{name}");
        assert_eq!(count(&restarted).await, 1, "{name}");
    }
}

#[tokio::test]
async fn keys_survive_a_reopen_and_expire_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let options = JsonlOptions {
        key_retention: Duration::from_secs(2),
        ..JsonlOptions::default()
    };
    let repo = JsonlRepository::open_with(&path, options).await.unwrap();
    repo.insert(vec![keyed(1, "kept", "a")], true)
        .await
        .unwrap();
    drop(repo);
    let reopened = JsonlRepository::open_with(&path, options).await.unwrap();
    let again = reopened
        .insert(vec![keyed(1, "kept", "b")], true)
        .await
        .unwrap();
    assert_eq!(again, [InsertOutcome::KeyReused], "the key was read back");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = reopened
        .insert(vec![keyed(1, "kept", "b")], true)
        .await
        .unwrap();
    assert!(matches!(later[0], InsertOutcome::Created(_)), "{later:?}");
}

/// Two stores over one file stand for two processes: neither sees the
/// other's keys in memory before writing, so the writer re-checks them
/// under the file lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_sharing_one_file_store_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.jsonl");
    let first = JsonlRepository::open(&path).await.unwrap();
    let second = JsonlRepository::open(&path).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        for repo in [first.clone(), second.clone()] {
            tasks.push(tokio::spawn(async move {
                let key = format!("job-{i}");
                let outcome = repo.insert(vec![keyed(i, &key, &key)], true).await.unwrap();
                (i, outcome.into_iter().next().unwrap())
            }));
        }
    }
    let mut created = std::collections::HashMap::new();
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        match outcome {
            InsertOutcome::Created(_) => *created.entry(i).or_insert(0) += 1,
            InsertOutcome::Replayed(record) => assert_eq!(record.date_code(), format!("job-{i}")),
            other => panic!("job-{i}: {other:?}"),
        }
    }
    assert!(created.values().all(|&n| n == 1), "{created:?}");
    assert_eq!(created.len(), 40);
    let fresh = JsonlRepository::open(&path).await.unwrap();
    let fresh: Arc<dyn PipelineInfoRepository> = Arc::new(fresh);
    assert_eq!(count(&fresh).await, 40, "each key stored once");
}

/// An insert given up by its caller (a request timeout) while the writer
/// waits for the file lock must not leave its key reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_cancelled_while_waiting_for_the_lock_frees_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let repo = JsonlRepository::open(&path).await.unwrap();
    let holder = hold_lock(&path);
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        repo.insert(vec![keyed(1, "job-1", "a")], true),
    )
    .await;
    assert!(waited.is_err(), "the insert waits for the lock");
    holder.unlock().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let outcome = loop {
        let outcome = repo
            .insert(vec![keyed(1, "job-1", "a")], true)
            .await
            .unwrap();
        if outcome[0] != InsertOutcome::KeyInFlight || std::time::Instant::now() > deadline {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        matches!(
            outcome[0],
            InsertOutcome::Created(_) | InsertOutcome::Replayed(_)
        ),
        "{outcome:?}"
    );
    let again = repo
        .insert(vec![keyed(1, "job-1", "a")], true)
        .await
        .unwrap();
    assert!(matches!(again[0], InsertOutcome::Replayed(_)), "{again:?}");
    let repo: Arc<dyn PipelineInfoRepository> = Arc::new(repo);
    assert_eq!(count(&repo).await, 1);
}

/// While the file is locked, inserts beyond the writer's queue wait to be
/// queued (where a timeout can drop them) instead of piling up; none is
/// lost once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_queue_is_bounded() {
    use pipeline_service::repository::jsonl::WRITER_QUEUE_REQUESTS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let repo = JsonlRepository::open(&path).await.unwrap();
    let holder = hold_lock(&path);
    let inserts = WRITER_QUEUE_REQUESTS + 50;
    let tasks: Vec<_> = (0..inserts)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.store(record(i as i64, json!({}))).await.unwrap();
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while repo.queued_requests() < WRITER_QUEUE_REQUESTS {
        assert!(std::time::Instant::now() < deadline, "the queue fills");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        repo.queued_requests(),
        WRITER_QUEUE_REQUESTS,
        "and no further"
    );
    holder.unlock().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let repo: Arc<dyn PipelineInfoRepository> = Arc::new(repo);
    assert_eq!(count(&repo).await, inserts as u64);
}

//! `all_data` answers read from one view of the store, a chunk at a time.

use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::{PipelineInfoRepository, RunFilter};
use serde_json::json;

use crate::backends::{record, unsynced_jsonl, Shortcuts};

async fn store_of(runs: i64) -> (JsonlRepository, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let repository = unsynced_jsonl(&dir).await;
    let records = (0..runs)
        .map(|i| record(i, json!({"pipeline_name": format!("p{}", i % 7)})))
        .collect();
    repository.store_all(records).await.unwrap();
    (repository, dir)
}

#[tokio::test]
async fn a_stream_holds_the_matches_when_it_began_in_answer_order() {
    let (repository, _dir) = store_of(3000).await;
    let filter = RunFilter {
        min_rowcount: Some(5),
        ..RunFilter::default()
    };
    let stream = repository.query_all(&filter).await.unwrap();
    assert_eq!(stream.total, 3000);
    // Runs stored meanwhile, newer and older, are not part of the answer.
    repository
        .store_all(vec![
            record(5000, json!({"date_code": "new"})),
            record(-5, json!({"date_code": "old"})),
        ])
        .await
        .unwrap();
    let chunks: Vec<_> = stream.map(Result::unwrap).collect();
    assert!(chunks.len() > 1, "read in several chunks");
    let codes: Vec<String> = chunks
        .iter()
        .flatten()
        .map(|r| r.date_code().to_owned())
        .collect();
    let wanted: Vec<String> = (0..3000).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(codes, wanted);
}

#[tokio::test]
async fn a_stream_ends_in_an_error_when_the_file_is_read_again_meanwhile() {
    let (repository, _dir) = store_of(3000).await;
    let mut stream = repository.query_all(&RunFilter::default()).await.unwrap();
    assert!(stream.next().unwrap().is_ok());
    // Another process replaces the file; the next query reads it again.
    let replacement = repository.path().with_extension("new");
    std::fs::write(
        &replacement,
        serde_json::to_string(&record(1, json!({}))).unwrap() + "\n",
    )
    .unwrap();
    std::fs::rename(&replacement, repository.path()).unwrap();
    assert_eq!(repository.count(&RunFilter::default()).await.unwrap(), 1);
    assert!(
        stream.next().unwrap().is_err(),
        "records of another file are never mixed in"
    );
}

//! Out-of-order arrivals (backfills) keep answers ordered.

use pipeline_service::repository::{PipelineInfoRepository, Position, RunFilter};
use serde_json::json;

use crate::backends::{record, unsynced_jsonl, Shortcuts};

#[tokio::test]
async fn thousands_of_backfilled_runs_arriving_one_by_one_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let repository = unsynced_jsonl(&dir).await;
    // Newest first, then older and older, with runs of equal start times.
    let mut expected = Vec::new();
    for i in 0..3000i64 {
        let minutes = 10_000 - (i / 3);
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        let code = format!("b{i}");
        repository
            .store(record(
                minutes,
                json!({"date_code": code, "environment": env}),
            ))
            .await
            .unwrap();
        expected.push((minutes, i, code));
    }
    expected.sort_by_key(|(minutes, i, _)| (std::cmp::Reverse(*minutes), *i));
    let all = repository.all(&RunFilter::default()).await.unwrap();
    let codes: Vec<&str> = all.iter().map(|r| r.date_code()).collect();
    let wanted: Vec<&str> = expected.iter().map(|(_, _, c)| c.as_str()).collect();
    assert_eq!(codes, wanted);
    let prod = RunFilter {
        environment: Some("prod".into()),
        ..RunFilter::default()
    };
    let page = repository
        .query(&prod, Position::Offset(1000), 5, true)
        .await
        .unwrap();
    let prod_codes: Vec<&str> = wanted
        .iter()
        .filter(|c| c[1..].parse::<i64>().unwrap() % 2 == 0)
        .copied()
        .collect();
    assert_eq!(page.total, Some(1500));
    let page_codes: Vec<&str> = page.records.iter().map(|r| r.date_code()).collect();
    assert_eq!(page_codes, prod_codes[1000..1005]);
}

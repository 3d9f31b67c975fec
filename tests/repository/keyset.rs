//! Keyset paging on every backend: exact while records are being inserted.

use std::collections::HashSet;

use pipeline_service::repository::RunFilter;
use serde_json::json;

use crate::backends::{every_backend, record, Shortcuts};

/// Inserts between pages never make a page repeat or miss a record that
/// existed when paging began; records inserted after the cursor's position
/// (older starts, or equal starts inserted later) are picked up, newer ones
/// are not.
#[tokio::test]
async fn pages_stay_exact_while_records_arrive() {
    for store in every_backend().await {
        let repo = &store.repository;
        let name = repo.backend_name();
        // 40 records over 20 distinct minutes: many equal start times.
        for i in 0..40 {
            repo.store(record(i / 2, json!({"date_code": format!("old{i}")})))
                .await
                .unwrap();
        }
        let filter = RunFilter {
            environment: Some("prod".into()),
            ..RunFilter::default()
        };
        let mut seen = Vec::new();
        let mut after = None;
        let mut inserted_behind = HashSet::new();
        for round in 0.. {
            let page = repo.query(&filter, after.into(), 7, false).await.unwrap();
            for r in &page.records {
                seen.push(r.date_code().to_owned());
            }
            let Some(key) = page.next else { break };
            after = Some(key);
            // Newer than everything served: must never appear.
            repo.store(record(
                100 + round,
                json!({"date_code": format!("new{round}")}),
            ))
            .await
            .unwrap();
            // Same start as the last record served, inserted later: sorts
            // right after it, so it must appear.
            let last = page.records.last().unwrap();
            let code = format!("tie{round}");
            let minutes = (last.start_utc().instant_micros() / 1_000_000 - 1_754_006_400) / 60;
            repo.store(record(minutes, json!({"date_code": code.clone()})))
                .await
                .unwrap();
            inserted_behind.insert(code);
            // Older than anything yet: must appear at the end.
            let code = format!("early{round}");
            repo.store(record(-10 - round, json!({"date_code": code.clone()})))
                .await
                .unwrap();
            inserted_behind.insert(code);
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{name}: a record was served twice: {seen:?}"
        );
        for i in 0..40 {
            assert!(seen.contains(&format!("old{i}")), "{name}: old{i} skipped");
        }
        for code in &inserted_behind {
            assert!(
                seen.contains(code),
                "{name}: {code} inserted behind the cursor was skipped"
            );
        }
        assert!(
            !seen.iter().any(|c| c.starts_with("new")),
            "{name}: {seen:?}"
        );
        // Served in answer order: the same order a full query gives now.
        let full: Vec<String> = repo
            .all(&filter)
            .await
            .unwrap()
            .iter()
            .map(|r| r.date_code().to_owned())
            .filter(|c| !c.starts_with("new"))
            .collect();
        assert_eq!(seen, full, "{name}");
    }
}

#[tokio::test]
async fn an_empty_store_has_one_empty_last_page() {
    for store in every_backend().await {
        let page = store
            .repository
            .query(&RunFilter::default(), None.into(), 10, false)
            .await
            .unwrap();
        assert!(page.records.is_empty());
        assert_eq!(page.next, None, "{}", store.repository.backend_name());
    }
}

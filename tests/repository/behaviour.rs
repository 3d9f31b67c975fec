//! What every backend must do, whatever it stores in.

use pipeline_service::domain::FlexDateTime;
use pipeline_service::repository::{Position, RunFilter};
use serde_json::json;

use crate::backends::{every_backend, record, Shortcuts};

fn codes(records: &[std::sync::Arc<pipeline_service::domain::PipelineInfo>]) -> Vec<String> {
    records.iter().map(|r| r.date_code().to_owned()).collect()
}

#[tokio::test]
async fn insert_returns_the_record_and_reads_find_it() {
    for store in every_backend().await {
        let repo = &store.repository;
        let original = record(0, json!({"start_utc": "2025-08-01T02:00:00+02:00"}));
        let stored = repo.store(original.clone()).await.unwrap();
        assert_eq!(*stored, original);
        let found = repo.all(&RunFilter::default()).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(*found[0], original, "{}: zone kept", repo.backend_name());
    }
}

#[tokio::test]
async fn order_is_start_descending_with_insertion_tiebreak() {
    for store in every_backend().await {
        let repo = &store.repository;
        for (minutes, code) in [(5, "a"), (9, "b"), (5, "c"), (1, "d"), (9, "e")] {
            repo.store(record(minutes, json!({"date_code": code})))
                .await
                .unwrap();
        }
        let all = repo.all(&RunFilter::default()).await.unwrap();
        assert_eq!(
            codes(&all),
            ["b", "e", "a", "c", "d"],
            "{}",
            repo.backend_name()
        );
        let page = repo.window(&RunFilter::default(), 2, 1).await.unwrap();
        assert_eq!(codes(&page), ["e", "a"]);
    }
}

#[tokio::test]
async fn filters_count_and_page_agree() {
    for store in every_backend().await {
        let repo = &store.repository;
        for minutes in 0..20 {
            let env = if minutes % 2 == 0 { "prod" } else { "dev" };
            repo.store(record(
                minutes,
                json!({"environment": env, "rowcount": minutes}),
            ))
            .await
            .unwrap();
        }
        let filter = RunFilter {
            environment: Some("prod".into()),
            min_rowcount: Some(4),
            max_rowcount: Some(15),
            start_utc: Some(FlexDateTime::parse("2025-08-01T00:05:00").unwrap()),
            ..RunFilter::default()
        };
        let count = repo.count(&filter).await.unwrap();
        let all = repo.all(&filter).await.unwrap();
        assert_eq!(
            codes(&all),
            ["m14", "m12", "m10", "m8", "m6"],
            "{}",
            repo.backend_name()
        );
        assert_eq!(count, 5);
        let page = repo
            .query(&filter, Position::Offset(4), 2, true)
            .await
            .unwrap();
        assert_eq!(
            (page.total, codes(&page.records)),
            (Some(5), vec!["m6".to_owned()])
        );
    }
}

#[tokio::test]
async fn summaries_average_only_positive_values() {
    for store in every_backend().await {
        let repo = &store.repository;
        let rows = [(0, 0.0, 0), (1, 30.0, 10), (2, 90.0, 0), (3, 0.0, 30)];
        for (minutes, elapsed, rowcount) in rows {
            repo.store(record(
                minutes,
                json!({"elapsed_seconds": elapsed, "rowcount": rowcount}),
            ))
            .await
            .unwrap();
        }
        repo.store(record(
            100,
            json!({"environment": null, "elapsed_seconds": 0.0, "rowcount": 0}),
        ))
        .await
        .unwrap();
        let summaries = repo.summaries().await.unwrap();
        assert_eq!(summaries.len(), 2, "{}", repo.backend_name());
        let latest = &summaries[0];
        assert_eq!(latest.environment, None);
        assert_eq!((latest.avg_duration, latest.avg_rowcount), (None, None));
        let etl = &summaries[1];
        assert_eq!(etl.total_runs, 4);
        assert_eq!(etl.avg_duration, Some(60.0));
        assert_eq!(etl.avg_rowcount, Some(20.0));
        assert_eq!(etl.last_run.unwrap().to_string(), "2025-08-01T00:03:00Z");
    }
}

#[tokio::test]
async fn many_records_are_stored_together_in_order() {
    for store in every_backend().await {
        let repo = &store.repository;
        let batch: Vec<_> = (0..250)
            .map(|i| record(i, json!({"rowcount": i})))
            .collect();
        assert_eq!(repo.store_all(batch).await.unwrap(), 250);
        assert_eq!(repo.store_all(Vec::new()).await.unwrap(), 0);
        assert_eq!(repo.count(&RunFilter::default()).await.unwrap(), 250);
        let newest = repo.window(&RunFilter::default(), 2, 0).await.unwrap();
        assert_eq!(codes(&newest), ["m249", "m248"], "{}", repo.backend_name());
    }
}

#[tokio::test]
async fn a_fresh_store_is_ready() {
    for store in every_backend().await {
        store.repository.ready().await.unwrap();
    }
}

#[tokio::test]
async fn activity_reports_each_groups_latest_run() {
    for store in every_backend().await {
        let repo = &store.repository;
        repo.store(record(5, json!({"rowcount": 50, "elapsed_seconds": 5.0})))
            .await
            .unwrap();
        repo.store(record(9, json!({"rowcount": 90, "elapsed_seconds": 9.0})))
            .await
            .unwrap();
        repo.store(record(7, json!({"rowcount": 70})))
            .await
            .unwrap();
        let activity = repo.activity().await.unwrap();
        assert_eq!(activity.len(), 1, "{}", repo.backend_name());
        let latest = &activity[0];
        assert_eq!(latest.total_runs, 3);
        assert_eq!(latest.last_rowcount, 90);
        assert_eq!(latest.last_elapsed_seconds, 9.0);
        assert_eq!(latest.last_run.to_string(), "2025-08-01T00:09:00Z");
    }
}

#[tokio::test]
async fn import_loads_a_python_file_into_every_backend() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_written.jsonl"
    );
    for store in every_backend().await {
        let repo = &store.repository;
        let mut calls = 0;
        let report = pipeline_service::import::import_file(
            repo.as_ref(),
            std::path::Path::new(fixture),
            |_| calls += 1,
        )
        .await
        .unwrap();
        assert_eq!((report.lines_read, report.imported), (12, 7));
        let skipped: Vec<u64> = report.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(skipped, [7, 8, 9, 10]);
        assert!(calls >= 1);
        let all = repo.all(&RunFilter::default()).await.unwrap();
        assert_eq!(all.len(), 7, "{}", store.name());
        // The newest run (the file's second line) as the store keeps it:
        // its naive start_utc as written, or at UTC where the table cannot
        // keep a naive UTC time.
        let second = std::fs::read_to_string(fixture).unwrap();
        let second: serde_json::Value =
            serde_json::from_str(second.lines().nth(1).unwrap()).unwrap();
        let newest = pipeline_service::domain::PipelineInfo::parse(&second, "body").unwrap();
        assert_eq!(newest.start_utc().to_string(), "2025-09-03T06:00:00.250000");
        assert_eq!(
            Some(&*all[0]),
            store.kept(&newest).as_ref(),
            "{}",
            store.name()
        );
    }
}

#[tokio::test]
async fn import_numbers_lines_across_batches_read_ahead() {
    use pipeline_service::import::{import_file, BATCH_RECORDS};
    use pipeline_service::repository::jsonl::parse_line;
    // Generated lines (some deliberately not runs) over several batches.
    let mut text = Vec::new();
    pipeline_service::generate::generate(&mut text, (BATCH_RECORDS * 2 + 777) as u64, 5).unwrap();
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let mut expected_skipped = Vec::new();
    let mut expected_runs = 0;
    for (i, line) in lines.iter().enumerate() {
        match parse_line(line) {
            Ok(Some(_)) => expected_runs += 1,
            Ok(None) => {}
            Err(_) => expected_skipped.push(i as u64 + 1),
        }
    }
    assert!(
        expected_skipped.iter().any(|&n| n > BATCH_RECORDS as u64),
        "a skipped line past the first batch"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    for store in every_backend().await {
        let mut calls = 0;
        let report = import_file(store.repository.as_ref(), file.path(), |_| calls += 1)
            .await
            .unwrap();
        assert_eq!(report.lines_read, lines.len() as u64, "{}", store.name());
        assert_eq!(report.bytes_read, text.len() as u64);
        assert_eq!(report.imported, expected_runs);
        let skipped: Vec<u64> = report.skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(skipped, expected_skipped, "{}", store.name());
        assert!(calls >= 3, "progress after every batch: {calls}");
        let stored = store
            .repository
            .query(&RunFilter::default(), Position::Offset(0), 1, true)
            .await
            .unwrap();
        assert_eq!(stored.total, Some(expected_runs), "{}", store.name());
    }
}

#[tokio::test]
async fn the_distinct_archived_files_of_a_date_code_are_listed() {
    for store in every_backend().await {
        let repo = &store.repository;
        for (minutes, code, file) in [
            (1, "d", Some("/a/1.gz")),
            (5, "d", Some("/a/5.gz")),
            (6, "d", Some("/a/1.gz")),
            (7, "d", None),
            (3, "e", Some("/a/3.gz")),
            (4, "none", None),
        ] {
            repo.store(record(
                minutes,
                json!({"date_code": code, "archived_file": file}),
            ))
            .await
            .unwrap();
        }
        let name = repo.backend_name();
        let mut both = repo.archived_files("d", 5).await.unwrap().unwrap();
        both.sort();
        assert_eq!(both, ["/a/1.gz", "/a/5.gz"], "{name}");
        assert_eq!(repo.archived_files("d", 1).await.unwrap().unwrap().len(), 1);
        assert_eq!(
            repo.archived_files("e", 2).await.unwrap(),
            Some(vec!["/a/3.gz".to_owned()]),
            "{name}"
        );
        assert_eq!(repo.archived_files("none", 2).await.unwrap(), Some(vec![]));
        assert!(repo.archived_files("zzz", 2).await.unwrap().is_none());
    }
}

/// Retention on every backend: old runs are archived, then removed; a dry
/// run only counts. (JSON Lines compaction is also tested through the
/// binary while a server writes.)
#[tokio::test]
async fn retention_archives_then_removes_old_runs() {
    for store in every_backend().await {
        let repo = &store.repository;
        let name = repo.backend_name();
        for minutes in [-100_000, -90_000, 10] {
            repo.store(record(minutes, json!({"date_code": format!("m{minutes}")})))
                .await
                .unwrap();
        }
        let cutoff = record(0, json!({})).start_utc();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("old.jsonl");
        let dry = repo.compact(cutoff, None, true).await.unwrap();
        assert_eq!((dry.kept, dry.old), (1, 2), "{name}");
        let done = repo.compact(cutoff, Some(&archive), false).await.unwrap();
        assert_eq!((done.kept, done.old), (1, 2), "{name}");
        assert_eq!(
            std::fs::read_to_string(&archive).unwrap().lines().count(),
            2,
            "{name}"
        );
        let left = repo.all(&RunFilter::default()).await.unwrap();
        assert_eq!(codes(&left), ["m10"], "{name}");
    }
}

/// Records that are hard to store as written: aware local times, naive
/// UTC times, offsets beyond ±14 hours, microseconds, `""` in required
/// and optional texts (not NULL), multi-byte texts at the API's length
/// limit, and durations at the edges of f64 (-0.0 included).
fn awkward_records() -> Vec<pipeline_service::domain::PipelineInfo> {
    let cases = [
        json!({"start_local": "2025-08-01T05:30:00+05:30", "end_local": "2025-08-01T05:31:30.000001+05:30",
               "start_utc": "2025-08-01T00:00:00", "end_utc": "2025-08-01T00:01:30"}),
        json!({"start_local": "2025-08-01T00:00:00-23:59", "end_local": "2025-08-02T00:00:00+23:59",
               "start_utc": "2025-08-01T00:00:00.250000-23:59", "end_utc": "2025-08-01T00:01:30+14:01"}),
        json!({"output_file": "", "elapsed_human": "", "log_file": "", "date_code": "",
               "pipeline_name": "", "script_name": "", "pipeline_type": "", "environment": "",
               "archived_file": "", "elapsed_seconds": -0.0}),
        json!({"pipeline_name": null, "script_name": null, "pipeline_type": null, "environment": null,
               "elapsed_seconds": 1e126, "output_file": "ü".repeat(2000)}),
        json!({"elapsed_seconds": 1.797_693_134_862_315_7e308, "log_file": "日本".repeat(666)}),
        json!({"elapsed_seconds": 5e-324, "rowcount": 0, "pid": i64::MAX}),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, changes)| record(i as i64, changes))
        .collect()
}

fn bytes(record: &pipeline_service::domain::PipelineInfo) -> String {
    serde_json::to_string(record).unwrap()
}

/// What is written is what every read gives back, byte for byte: the
/// insert's answer, a page, keyset pages, a replayed key, a reopened
/// store. On an Oracle table of the original layout (no offset columns)
/// "what is written" is what that layout keeps (local times naive, a
/// naive UTC time at UTC), and a UTC offset it cannot hold is refused at
/// its field with nothing stored.
#[tokio::test]
async fn records_read_back_exactly_as_written() {
    use pipeline_service::domain::{IdempotencyKey, LocItem, PipelineInfo};
    use pipeline_service::repository::{InsertOutcome, NewRun, RepositoryError};
    for store in every_backend().await {
        let repo = &store.repository;
        let name = store.name();
        let mut written = Vec::new();
        for record in awkward_records() {
            match store.kept(&record) {
                Some(kept) => written.push((record, kept)),
                None => match repo.insert(vec![record.clone().into()], true).await {
                    Err(RepositoryError::Invalid { run: 0, errors }) => {
                        let loc = &errors.detail[0].loc;
                        assert!(
                            [LocItem::from("start_utc"), LocItem::from("end_utc")]
                                .contains(&loc[1]),
                            "{name}: {loc:?}"
                        );
                    }
                    other => panic!("{name}: not refused at a field: {other:?}"),
                },
            }
        }
        assert_eq!(
            repo.count(&RunFilter::default()).await.unwrap(),
            0,
            "{name}"
        );
        let ((first, first_kept), rest) = written.split_first().unwrap();
        let stored = repo.store(first.clone()).await.unwrap();
        assert_eq!(bytes(&stored), bytes(first_kept), "{name}: insert answer");
        let keyed: Vec<NewRun> = rest
            .iter()
            .enumerate()
            .map(|(i, (record, _))| NewRun {
                record: record.clone(),
                key: Some(IdempotencyKey::parse(&format!("k{i}"), record).unwrap()),
            })
            .collect();
        repo.insert(keyed.clone(), false).await.unwrap();
        for ((_, kept), outcome) in rest
            .iter()
            .zip(repo.insert(keyed.clone(), false).await.unwrap())
        {
            let InsertOutcome::Replayed(replayed) = outcome else {
                panic!("{name}: {outcome:?}")
            };
            assert_eq!(bytes(&replayed), bytes(kept), "{name}: replay");
        }
        let kept: Vec<PipelineInfo> = written.iter().map(|(_, kept)| kept.clone()).collect();
        // Answer order: newest instant first, ties in insertion order.
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(kept[i].start_utc().instant_micros()));
        let expected: Vec<String> = order.iter().map(|&i| bytes(&kept[i])).collect();
        let read = |records: Vec<std::sync::Arc<PipelineInfo>>| {
            records.iter().map(|r| bytes(r)).collect::<Vec<_>>()
        };
        assert_eq!(
            read(repo.all(&RunFilter::default()).await.unwrap()),
            expected,
            "{name}"
        );
        let mut pages = Vec::new();
        let mut position = Position::Offset(0);
        loop {
            let page = repo
                .query(&RunFilter::default(), position, 2, false)
                .await
                .unwrap();
            pages.extend(page.records);
            let Some(next) = page.next else { break };
            position = Position::After(next);
        }
        assert_eq!(read(pages), expected, "{name}: keyset pages");
        let reopened = store.reopen().await;
        assert_eq!(
            read(reopened.all(&RunFilter::default()).await.unwrap()),
            expected,
            "{name}: reopened"
        );
        // "" and null are different groups, and the latest start keeps its zone.
        let summaries = repo.summaries().await.unwrap();
        let empty = summaries
            .iter()
            .find(|s| s.pipeline_name.as_deref() == Some(""));
        let none = summaries.iter().find(|s| s.pipeline_name.is_none());
        assert_eq!(
            empty.map(|s| s.total_runs),
            Some(1),
            "{name}: '' apart from null"
        );
        assert_eq!(none.map(|s| s.total_runs), Some(1), "{name}");
        let etl = summaries
            .iter()
            .find(|s| s.pipeline_name.as_deref() == Some("etl"))
            .unwrap();
        let latest_etl = kept
            .iter()
            .filter(|r| r.pipeline_name() == Some("etl"))
            .max_by_key(|r| r.start_utc().instant_micros())
            .unwrap();
        assert_eq!(
            etl.last_run.map(|t| t.to_string()),
            Some(latest_etl.start_utc().to_string()),
            "{name}: the latest start in its own zone"
        );
    }
}

//! What the PostgreSQL repository does, method by method, on a live server.

use std::sync::Arc;

use pipeline_service::domain::{FlexDateTime, IdempotencyKey, PipelineInfo};
use pipeline_service::repository::postgres::PostgresRepository;
use pipeline_service::repository::PipelineInfoRepository;
use pipeline_service::repository::Position;
use pipeline_service::repository::{InsertOutcome, NewRun, RepositoryError, RunFilter};
use serde_json::json;

use super::fresh;
use crate::backends::record;
use crate::support::postgres::connect;

fn codes(records: &[Arc<PipelineInfo>]) -> Vec<String> {
    records.iter().map(|r| r.date_code().to_owned()).collect()
}

async fn store(repo: &PostgresRepository, records: Vec<PipelineInfo>) {
    let runs = records.into_iter().map(NewRun::from).collect();
    for outcome in repo.insert(runs, true).await.unwrap() {
        assert!(matches!(outcome, InsertOutcome::Created(_)), "{outcome:?}");
    }
}

async fn everything(repo: &PostgresRepository, filter: &RunFilter) -> Vec<Arc<PipelineInfo>> {
    repo.query(filter, Position::Offset(0), 10_000, false)
        .await
        .unwrap()
        .records
}

fn keyed(record: PipelineInfo, key: &str) -> NewRun {
    let key = IdempotencyKey::parse(key, &record).unwrap();
    NewRun {
        record,
        key: Some(key),
    }
}

#[tokio::test]
async fn order_is_start_descending_with_insertion_tiebreak_and_total_agrees() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    for (minutes, code) in [(5, "a"), (9, "b"), (5, "c"), (1, "d"), (9, "e")] {
        // One at a time: insertion order is the tiebreak.
        store(&repo, vec![record(minutes, json!({"date_code": code}))]).await;
    }
    let all = everything(&repo, &RunFilter::default()).await;
    assert_eq!(codes(&all), ["b", "e", "a", "c", "d"]);
    let page = repo
        .query(&RunFilter::default(), Position::Offset(1), 2, true)
        .await
        .unwrap();
    assert_eq!(codes(&page.records), ["e", "a"]);
    assert_eq!(page.total, Some(5));
    // More follow the page, so it says where to continue ...
    let next = page.next.expect("a key to continue after");
    let rest = repo
        .query(&RunFilter::default(), Position::After(next), 10, false)
        .await
        .unwrap();
    assert_eq!(codes(&rest.records), ["c", "d"]);
    // ... and the last page says nothing follows.
    assert_eq!(rest.next, None);
    let uncounted = repo
        .query(&RunFilter::default(), Position::Offset(0), 1, false)
        .await
        .unwrap();
    assert_eq!(uncounted.total, None);
}

#[tokio::test]
async fn every_filter_selects_what_the_reference_rule_selects() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let mut stored = Vec::new();
    for i in 0..24i64 {
        let environment = ["prod", "dev", "qa"][i as usize % 3];
        let changes = json!({
            "environment": environment,
            "pipeline_type": if i % 4 == 0 { json!(null) } else { json!("batch") },
            "pipeline_name": if i % 2 == 0 { "a" } else { "b" },
            "script_name": format!("s{}.py", i % 5),
            "rowcount": i * 10,
            "start_utc": format!("2025-08-01T{:02}:00:00+02:00", i % 24),
            "end_utc": format!("2025-08-01T{:02}:30:00Z", (i * 7) % 24),
            "date_code": format!("d{i}"),
        });
        stored.push(record(i, changes));
    }
    store(&repo, stored.clone()).await;
    let at = |t: &str| Some(FlexDateTime::parse(t).unwrap());
    let filters = [
        RunFilter {
            start_utc: at("2025-08-01T08:00:00"),
            ..Default::default()
        },
        RunFilter {
            end_utc: at("2025-08-01T12:00:00+01:00"),
            ..Default::default()
        },
        RunFilter {
            min_rowcount: Some(50),
            max_rowcount: Some(150),
            ..Default::default()
        },
        RunFilter {
            pipeline_name: Some("a".into()),
            ..Default::default()
        },
        RunFilter {
            script_name: Some("s3.py".into()),
            ..Default::default()
        },
        RunFilter {
            pipeline_type: Some("batch".into()),
            ..Default::default()
        },
        RunFilter {
            environment: Some("qa".into()),
            pipeline_name: Some("b".into()),
            start_utc: at("2025-08-01T02:00:00Z"),
            ..Default::default()
        },
    ];
    for filter in filters {
        let mut expected: Vec<(i64, usize, &PipelineInfo)> = stored
            .iter()
            .enumerate()
            .filter(|(_, r)| filter.matches(r))
            .map(|(i, r)| (-r.start_utc().instant_micros(), i, r))
            .collect();
        expected.sort_by_key(|(start, i, _)| (*start, *i));
        let expected: Vec<&str> = expected.iter().map(|(_, _, r)| r.date_code()).collect();
        let page = repo
            .query(&filter, Position::Offset(0), 100, true)
            .await
            .unwrap();
        assert_eq!(codes(&page.records), expected, "{filter:?}");
        assert_eq!(page.total, Some(expected.len() as u64), "{filter:?}");
    }
}

#[tokio::test]
async fn keyset_pages_tile_the_answer_while_runs_arrive() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let minutes = [3, 7, 7, 7, 1, 9, 9, 0, 4, 4, 4, 4, 2];
    let batch = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| record(*m, json!({"date_code": format!("k{i}")})))
        .collect();
    store(&repo, batch).await;
    let all = codes(&everything(&repo, &RunFilter::default()).await);
    let mut seen = Vec::new();
    let mut key = None;
    loop {
        let page = repo
            .query(&RunFilter::default(), Position::from(key), 3, false)
            .await
            .unwrap();
        seen.extend(codes(&page.records));
        // Newer and older runs arriving meanwhile shift nothing.
        store(&repo, vec![record(100, json!({})), record(-100, json!({}))]).await;
        match page.next {
            Some(next) => key = Some(next),
            None => break,
        }
        assert!(seen.len() < 100);
    }
    let older: Vec<String> = seen
        .iter()
        .filter(|c| c.starts_with('k'))
        .cloned()
        .collect();
    assert_eq!(older, all);
}

#[tokio::test]
async fn records_read_back_byte_identical() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let originals = vec![
        record(
            0,
            json!({"start_local": "2025-08-01T05:30:00+05:30", "start_utc": "2025-08-01T00:00:00",
                   "end_local": "2025-08-01T05:31:00.000001", "end_utc": "2025-08-01T00:01:00.123456Z",
                   "output_file": "", "log_file": "", "elapsed_human": "", "date_code": "",
                   "pipeline_name": "", "archived_file": "", "environment": null,
                   "elapsed_seconds": -0.0}),
        ),
        record(
            1,
            json!({"start_utc": "2025-08-01T00:01:00-23:59", "end_utc": "2025-08-01T00:01:00+23:59",
                   "elapsed_seconds": 1.7976931348623157e308, "rowcount": i64::MIN, "pid": i64::MAX,
                   "output_file": "ünïcödé ✓ \"quoted\" \\ \n", "script_name": null}),
        ),
        record(
            2,
            json!({"elapsed_seconds": 5e-324, "start_local": "1600-01-01T00:00:00"}),
        ),
    ];
    store(&repo, originals.clone()).await;
    let back = everything(&repo, &RunFilter::default()).await;
    let mut expected = originals.clone();
    expected.sort_by_key(|r| -r.start_utc().instant_micros());
    assert_eq!(back.len(), expected.len());
    for (read, written) in back.iter().zip(&expected) {
        assert_eq!(
            serde_json::to_string(&**read).unwrap(),
            serde_json::to_string(written).unwrap()
        );
        assert_eq!(**read, *written);
    }
    assert!(back
        .iter()
        .any(|r| r.elapsed_seconds() == 0.0 && r.elapsed_seconds().is_sign_negative()));
    // COPY stores the same bytes.
    let (copied, _db2) = fresh().await.unwrap();
    assert_eq!(copied.load(originals).await.unwrap(), 3);
    let again = everything(&copied, &RunFilter::default()).await;
    assert_eq!(again, back);
}

#[tokio::test]
async fn a_nul_character_is_refused_at_its_field_and_nothing_is_stored() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let bad = record(0, json!({"log_file": "a\u{0}b"}));
    let error = repo
        .insert(
            vec![NewRun::from(record(1, json!({}))), NewRun::from(bad)],
            false,
        )
        .await
        .unwrap_err();
    let RepositoryError::Invalid { run: 1, errors } = error else {
        panic!("{error:?}")
    };
    assert!(format!("{errors:?}").contains("log_file"));
    assert!(everything(&repo, &RunFilter::default()).await.is_empty());
}

#[tokio::test]
async fn keys_replay_conflict_and_a_race_stores_once() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let first = record(0, json!({"rowcount": 1}));
    let outcome = repo
        .insert(vec![keyed(first.clone(), "k1")], false)
        .await
        .unwrap();
    assert!(matches!(&outcome[0], InsertOutcome::Created(_)));
    let replay = repo
        .insert(vec![keyed(first.clone(), "k1")], false)
        .await
        .unwrap();
    assert!(matches!(&replay[0], InsertOutcome::Replayed(r) if **r == first));
    let other = record(0, json!({"rowcount": 2}));
    let reused = repo
        .insert(vec![keyed(other.clone(), "k1")], false)
        .await
        .unwrap();
    assert_eq!(reused[0], InsertOutcome::KeyReused);
    // Atomic: a reused key stores nothing else of the batch.
    let batch = vec![NewRun::from(record(5, json!({}))), keyed(other, "k1")];
    let outcomes = repo.insert(batch, true).await.unwrap();
    assert_eq!(outcomes[0], InsertOutcome::NotStored);
    assert_eq!(everything(&repo, &RunFilter::default()).await.len(), 1);
    // 16 callers, one key, through two repositories (two replicas).
    let (settings, racer) = (repo.settings().clone(), record(9, json!({"rowcount": 9})));
    let replica = PostgresRepository::connect(&settings).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let target = if i % 2 == 0 {
            repo.clone()
        } else {
            replica.clone()
        };
        let run = keyed(racer.clone(), "race");
        tasks.push(tokio::spawn(async move {
            target.insert(vec![run], false).await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match &task.await.unwrap().unwrap()[0] {
            InsertOutcome::Created(_) => created += 1,
            InsertOutcome::Replayed(r) => assert_eq!(**r, racer),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 1);
    let filter = RunFilter {
        min_rowcount: Some(9),
        ..Default::default()
    };
    assert_eq!(everything(&repo, &filter).await.len(), 1);
}

#[tokio::test]
async fn concurrent_single_inserts_share_commits() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let client = connect(&db.settings).await;
    let commits = async || -> i64 {
        client
            .query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    let before = commits().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.insert(vec![NewRun::from(record(i, json!({})))], false)
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let used = commits().await - before;
    assert_eq!(everything(&repo, &RunFilter::default()).await.len(), 200);
    // Statistics are reported in the background; give them a moment.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let used = used.max(commits().await - before);
    assert!(used < 150, "200 inserts took {used} commits");
}

#[tokio::test]
async fn summaries_activity_and_distributions() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let runs = vec![
        record(0, json!({"elapsed_seconds": 10.0, "rowcount": 0})),
        record(1, json!({"elapsed_seconds": 0.0, "rowcount": 30})),
        record(
            2,
            json!({"elapsed_seconds": 30.0, "rowcount": 10, "start_utc": "2025-08-01T05:32:00+05:30"}),
        ),
        record(
            2,
            json!({"elapsed_seconds": 50.0, "rowcount": 10, "start_utc": "2025-08-01T00:02:00Z"}),
        ),
        record(0, json!({"pipeline_name": "other"})),
    ];
    store(&repo, runs).await;
    let summaries = repo.summaries().await.unwrap();
    assert_eq!(summaries.len(), 2);
    let etl = &summaries[0];
    assert_eq!(etl.pipeline_name.as_deref(), Some("etl"));
    assert_eq!(etl.total_runs, 4);
    assert_eq!(etl.avg_duration, Some(30.0));
    assert_eq!(etl.avg_rowcount, Some(50.0 / 3.0));
    // The first stored of the two latest, in the zone it was written with.
    assert_eq!(
        etl.last_run.unwrap().to_string(),
        "2025-08-01T05:32:00+05:30"
    );
    let activity = repo.activity().await.unwrap();
    let latest = activity
        .iter()
        .find(|a| a.key[0].as_deref() == Some("etl"))
        .unwrap();
    assert_eq!(latest.total_runs, 4);
    assert_eq!(latest.last_elapsed_seconds, 30.0);
    assert_eq!(latest.last_run.to_string(), "2025-08-01T05:32:00+05:30");
    let groups = repo.distributions(&RunFilter::default()).await.unwrap();
    let etl = groups
        .iter()
        .find(|g| g.key[0].as_deref() == Some("etl"))
        .unwrap();
    let sorted: &[f64] = &[0.0, 10.0, 30.0, 50.0];
    use pipeline_service::domain::digest::percentile;
    assert_eq!(
        etl.elapsed_seconds,
        [
            percentile(sorted, 0.5),
            percentile(sorted, 0.95),
            percentile(sorted, 0.99)
        ]
    );
    assert_eq!(etl.max_elapsed_seconds, 50.0);
    assert_eq!(
        etl.median_rowcount,
        percentile(&[0.0, 10.0, 10.0, 30.0][..], 0.5)
    );
    assert_eq!((etl.runs, etl.zero_row_runs), (4, 1));
}

#[tokio::test]
async fn archived_files_are_found_by_date_code() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    store(
        &repo,
        vec![
            record(0, json!({"date_code": "d1", "archived_file": "/a/x.gz"})),
            record(1, json!({"date_code": "d1", "archived_file": null})),
            record(2, json!({"date_code": "d1", "archived_file": "/a/y.gz"})),
            record(3, json!({"date_code": "d2", "archived_file": ""})),
        ],
    )
    .await;
    assert_eq!(
        repo.archived_files("d1", 5).await.unwrap(),
        Some(vec!["/a/x.gz".to_owned(), "/a/y.gz".to_owned()])
    );
    assert_eq!(
        repo.archived_files("d1", 1).await.unwrap().unwrap().len(),
        1
    );
    assert_eq!(repo.archived_files("d2", 5).await.unwrap(), Some(vec![]));
    assert_eq!(repo.archived_files("none", 5).await.unwrap(), None);
}

#[tokio::test]
async fn compaction_archives_exactly_the_rows_it_deletes() {
    let Some((repo, _db)) = fresh().await else {
        return;
    };
    let runs: Vec<PipelineInfo> = (0..30).map(|m| record(m, json!({}))).collect();
    store(&repo, runs.clone()).await;
    let cutoff = FlexDateTime::parse("2025-08-01T00:20:00Z").unwrap();
    let dry = repo.compact(cutoff, None, true).await.unwrap();
    assert_eq!((dry.old, dry.kept), (20, 10));
    assert_eq!(everything(&repo, &RunFilter::default()).await.len(), 30);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("old.jsonl");
    let report = repo.compact(cutoff, Some(&archive), false).await.unwrap();
    assert_eq!((report.old, report.kept), (20, 10));
    let lines: Vec<PipelineInfo> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(|l| PipelineInfo::parse_stored(&serde_json::from_str(l).unwrap()).unwrap())
        .collect();
    assert_eq!(lines, runs[..20]);
    let left = everything(&repo, &RunFilter::default()).await;
    assert_eq!(left.len(), 10);
    assert!(left
        .iter()
        .all(|r| r.start_utc().instant_micros() >= cutoff.instant_micros()));
}

#[tokio::test]
async fn readiness_and_a_statement_past_its_timeout_are_unavailable() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    repo.ready().await.unwrap();
    let short = db
        .settings
        .clone()
        .with_statement_timeout(std::time::Duration::from_millis(300));
    let slow = PostgresRepository::connect(&short).await.unwrap();
    // Another session holds the table: the read waits until cancelled.
    let blocker = lock_the_runs(&db).await;
    let started = std::time::Instant::now();
    let error = slow
        .query(&RunFilter::default(), Position::Offset(0), 10, true)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RepositoryError::Unavailable(m) if m.contains("57014")),
        "{error:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    blocker.batch_execute("ROLLBACK").await.unwrap();
    slow.ready().await.unwrap();
}

#[tokio::test]
async fn a_statement_whose_caller_gave_up_is_cancelled_on_the_server() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let waiting_for_the_lock = async |observer: &tokio_postgres::Client| -> i64 {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    let observer = connect(&db.settings).await;
    let blocker = lock_the_runs(&db).await;
    // A read that waits for the lock (far below its statement timeout)…
    let reader = repo.clone();
    let read = tokio::spawn(async move {
        reader
            .query(&RunFilter::default(), Position::Offset(0), 10, true)
            .await
    });
    let started = std::time::Instant::now();
    while waiting_for_the_lock(&observer).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the read never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let waiting_backend: i32 = observer
        .query_one(
            "SELECT pid FROM pg_stat_activity \
WHERE wait_event_type = 'Lock' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // …whose caller gives up (a request timeout or a client gone does
    // this): the server stops it at once instead of letting it wait on.
    read.abort();
    let gave_up = std::time::Instant::now();
    while waiting_for_the_lock(&observer).await > 0 {
        assert!(
            gave_up.elapsed() < std::time::Duration::from_secs(5),
            "the abandoned statement still waits for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Its connection is closed, not lent to the next caller (whose
    // statement a late cancel request would otherwise stop).
    while observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&waiting_backend],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            gave_up.elapsed() < std::time::Duration::from_secs(5),
            "the abandoned connection stays open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    blocker.batch_execute("ROLLBACK").await.unwrap();
    // The pool's connections still serve.
    repo.query(&RunFilter::default(), Position::Offset(0), 10, true)
        .await
        .unwrap();
}

/// Another session holding the runs table until it sends `ROLLBACK`.
async fn lock_the_runs(db: &crate::support::postgres::FreshDatabase) -> tokio_postgres::Client {
    let blocker = connect(&db.settings).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE pipeline_runs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    blocker
}

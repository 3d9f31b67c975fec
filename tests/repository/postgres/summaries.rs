//! The per-group table (`pipeline_summaries`, kept by triggers) always
//! says what the shared SQL layer's `summary`, `activity` and `count`
//! statements — the ones the Oracle backend runs — compute from every run:
//! after grouped, keyed, bulk and COPY inserts, retention, a change by
//! hand and a TRUNCATE.

use pipeline_service::domain::{PipelineActivity, PipelineInfo, PipelineSummary};
use pipeline_service::repository::postgres::{rows, table, PostgresRepository};
use pipeline_service::repository::sql::{self, Dialect, Statement};
use pipeline_service::repository::{NewRun, PipelineInfoRepository, Position, RunFilter};
use serde_json::json;

use super::fresh;
use crate::backends::record;
use crate::support::postgres::connect;

async fn raw(client: &tokio_postgres::Client, statement: &Statement) -> Vec<tokio_postgres::Row> {
    let values = rows::values(statement);
    client
        .query(&statement.sql, &rows::params(&values))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql))
}

fn group(row: &tokio_postgres::Row) -> [Option<String>; 4] {
    [row.get(0), row.get(1), row.get(2), row.get(3)]
}

/// Averages agree to the last few bits: the table sums exactly
/// (`numeric`), `AVG` over doubles rounds as it goes.
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        (a, b) => a == b,
    }
}

/// The repository's answers (from the per-group table) against the shared
/// statements over every run.
async fn agree(repo: &PostgresRepository, client: &tokio_postgres::Client, stage: &str) {
    let t = table();
    let summaries: Vec<PipelineSummary> = repo.summaries().await.unwrap().to_vec();
    let expected = raw(client, &sql::summary(Dialect::Postgres, &t)).await;
    assert_eq!(summaries.len(), expected.len(), "{stage}: {summaries:?}");
    for (got, row) in summaries.iter().zip(&expected) {
        let key = [
            got.pipeline_name.clone(),
            got.script_name.clone(),
            got.pipeline_type.clone(),
            got.environment.clone(),
        ];
        assert_eq!(key, group(row), "{stage}: order");
        assert_eq!(
            got.total_runs as i64,
            row.get::<_, i64>(4),
            "{stage}: {key:?}"
        );
        let latest = rows::flex_time(row.get(5), row.get(8));
        assert_eq!(got.last_run, latest, "{stage}: {key:?}");
        assert!(
            close(got.avg_duration, row.get(6)),
            "{stage}: {key:?} {got:?}"
        );
        assert!(
            close(got.avg_rowcount, row.get(7)),
            "{stage}: {key:?} {got:?}"
        );
    }

    let mut activity: Vec<PipelineActivity> = repo.activity().await.unwrap();
    let mut expected: Vec<PipelineActivity> = raw(client, &sql::activity(Dialect::Postgres, &t))
        .await
        .iter()
        .map(|row| PipelineActivity {
            key: group(row),
            total_runs: row.get::<_, i64>(4) as u64,
            last_run: rows::flex_time(row.get(5), row.get(8)).unwrap(),
            last_elapsed_seconds: row.get(6),
            last_rowcount: row.get(7),
        })
        .collect();
    activity.sort_by(|a, b| a.key.cmp(&b.key));
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(activity, expected, "{stage}");

    let filters = [
        RunFilter::default(),
        RunFilter {
            pipeline_name: Some("etl".into()),
            ..Default::default()
        },
        RunFilter {
            environment: Some("prod".into()),
            pipeline_type: Some("batch".into()),
            ..Default::default()
        },
        RunFilter {
            pipeline_name: Some("absent".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        let page = repo
            .query(&filter, Position::Offset(0), 1, true)
            .await
            .unwrap();
        let counted = raw(client, &sql::count(Dialect::Postgres, &t, &filter)).await;
        assert_eq!(
            page.total,
            Some(counted[0].get::<_, i64>(0) as u64),
            "{stage}: {filter:?}"
        );
    }
}

/// A run of group `name`/`environment` at `minutes`, with awkward values:
/// fractions no double holds exactly, zeros and negatives the averages
/// leave out.
fn run(minutes: i64, name: Option<&str>, environment: &str, n: i64) -> PipelineInfo {
    let elapsed = [0.1, 0.2, 0.0, -1.5, 1e-7, 12345.678][(n % 6) as usize];
    let rowcount = [0, 7, -3, 1_000_000_007][(n % 4) as usize];
    let kind = (n % 3 == 0).then_some("batch");
    record(
        minutes,
        json!({
            "pipeline_name": name,
            "environment": environment,
            "pipeline_type": kind,
            "elapsed_seconds": elapsed,
            "rowcount": rowcount,
        }),
    )
}

#[tokio::test]
async fn the_per_group_table_agrees_with_counting_every_run() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let client = connect(&db.settings).await;
    agree(&repo, &client, "empty").await;

    // Concurrent single inserts (shared commits), some keyed, with equal
    // starts across groups and a group with no name.
    let names = [Some("etl"), Some("load"), None];
    let mut inserts = Vec::new();
    for n in 0..60i64 {
        let repo = repo.clone();
        let record = run(
            n % 20,
            names[(n % 3) as usize],
            ["prod", "dev"][(n % 2) as usize],
            n,
        );
        inserts.push(tokio::spawn(async move {
            let key = (n % 4 == 0).then(|| {
                pipeline_service::domain::IdempotencyKey::parse(&format!("k{n}"), &record).unwrap()
            });
            repo.insert(vec![NewRun { record, key }], false)
                .await
                .unwrap();
        }));
    }
    for insert in inserts {
        insert.await.unwrap();
    }
    agree(&repo, &client, "single inserts").await;

    let bulk: Vec<NewRun> = (60..160)
        .map(|n| NewRun::from(run(n % 50, names[(n % 3) as usize], "prod", n)))
        .collect();
    repo.insert(bulk, true).await.unwrap();
    let copied: Vec<PipelineInfo> = (160..260)
        .map(|n| run(n, Some("copied"), "qa", n))
        .collect();
    repo.load(copied).await.unwrap();
    agree(&repo, &client, "bulk and COPY").await;

    // Retention: older runs go, and with them whole groups.
    let cutoff = pipeline_service::domain::FlexDateTime::parse("2025-08-01T00:30:00Z").unwrap();
    repo.compact(cutoff, None, false).await.unwrap();
    agree(&repo, &client, "after retention").await;
    // Every run of a group's latest start removed: its latest is found again.
    client
        .batch_execute("DELETE FROM pipeline_runs WHERE seq IN (SELECT seq FROM pipeline_runs WHERE pipeline_name = 'copied' ORDER BY start_utc DESC LIMIT 3)")
        .await
        .unwrap();
    agree(&repo, &client, "latest removed").await;

    client
        .batch_execute(
            "UPDATE pipeline_runs SET pipeline_name = 'renamed', rowcount = rowcount + 1 \
WHERE pipeline_name = 'load'",
        )
        .await
        .unwrap();
    agree(&repo, &client, "changed by hand").await;

    client
        .batch_execute("TRUNCATE pipeline_runs")
        .await
        .unwrap();
    agree(&repo, &client, "truncated").await;
    assert!(repo.summaries().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_end_bound_still_finds_runs_that_end_before_they_start() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let client = connect(&db.settings).await;
    let backwards = record(
        0,
        json!({"date_code": "backwards", "start_utc": "2025-08-20T00:00:00Z", "end_utc": "2025-08-02T00:00:00Z"}),
    );
    let runs: Vec<NewRun> = (0..50)
        .map(|m| NewRun::from(record(m * 1440, json!({}))))
        .chain([NewRun::from(backwards)])
        .collect();
    repo.insert(runs, true).await.unwrap();
    let filter = RunFilter {
        end_utc: Some(
            pipeline_service::domain::FlexDateTime::parse("2025-08-05T00:00:00Z").unwrap(),
        ),
        ..Default::default()
    };
    for stage in ["stored", "after the backwards run's group lost other runs"] {
        let page = repo
            .query(&filter, Position::Offset(0), 100, true)
            .await
            .unwrap();
        let codes: Vec<&str> = page.records.iter().map(|r| r.date_code()).collect();
        assert!(codes.contains(&"backwards"), "{stage}: {codes:?}");
        let counted = raw(&client, &sql::count(Dialect::Postgres, &table(), &filter)).await;
        assert_eq!(
            page.total,
            Some(counted[0].get::<_, i64>(0) as u64),
            "{stage}"
        );
        assert_eq!(page.total, Some(page.records.len() as u64), "{stage}");
        client
            .batch_execute(
                "DELETE FROM pipeline_runs WHERE date_code <> 'backwards' AND seq % 2 = 0",
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_database_at_version_1_gets_its_runs_counted_when_migrated() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let runs: Vec<NewRun> = (0..40)
        .map(|n| NewRun::from(run(n, [Some("etl"), None][(n % 2) as usize], "prod", n)))
        .collect();
    repo.insert(runs, true).await.unwrap();
    // Back to version 1, runs kept: what a database from before the
    // per-group table looks like.
    let client = connect(&db.settings).await;
    client
        .batch_execute(
            "DROP TABLE pipeline_summaries; DROP SEQUENCE pipeline_summaries_changes; \
DROP FUNCTION pipeline_summaries_add, pipeline_summaries_remove, pipeline_summaries_changed CASCADE; \
DELETE FROM pipeline_schema_migrations WHERE version >= 2",
        )
        .await
        .unwrap();
    let migrated = PostgresRepository::connect(&db.settings).await.unwrap();
    assert_eq!((migrated.migrated().from, migrated.migrated().to), (1, 5));
    assert_eq!(migrated.summaries().await.unwrap().len(), 4);
    let stats = migrated.stats(&RunFilter::default(), 1).await.unwrap();
    assert_eq!(stats.iter().map(|g| g.runs).sum::<u64>(), 40);
    agree(&migrated, &client, "migrated from version 1").await;
}

//! The intended index serves each query shape, by EXPLAIN on a seeded table
//! (generated runs loaded with COPY, then analysed).

use pipeline_service::domain::FlexDateTime;
use pipeline_service::repository::jsonl::parse_line;
use pipeline_service::repository::postgres::{rows, table, PostgresRepository, SUMMARY_TABLE};
use pipeline_service::repository::sql::{self, Dialect, Statement};
use pipeline_service::repository::PipelineInfoRepository;
use pipeline_service::repository::{Position, RunFilter, RunKey};

use super::fresh;
use crate::support::postgres::connect;

const RUNS: u64 = 100_000;

async fn seed(repo: &PostgresRepository) {
    let mut text = Vec::new();
    pipeline_service::generate::generate(&mut text, RUNS, 11).unwrap();
    let records: Vec<_> = text
        .split(|b| *b == b'\n')
        .filter_map(|line| parse_line(line).ok().flatten())
        .collect();
    for chunk in records.chunks(20_000) {
        repo.load(chunk.to_vec()).await.unwrap();
    }
}

async fn plan(client: &tokio_postgres::Client, statement: &Statement) -> String {
    let values = rows::values(statement);
    let rows = client
        .query(
            &format!("EXPLAIN (COSTS OFF) {}", statement.sql),
            &rows::params(&values),
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn uses(plan: &str, index: &str) {
    assert!(
        plan.contains(&format!("using {index}")),
        "wanted {index}:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(!plan.contains("Sort"), "the index gives the order:\n{plan}");
}

#[tokio::test]
async fn each_query_shape_uses_its_index() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    seed(&repo).await;
    let client = connect(&db.settings).await;
    client
        .batch_execute("VACUUM ANALYZE pipeline_runs")
        .await
        .unwrap();
    let t = table();
    let window = |filter: &RunFilter| {
        sql::select_runs(
            Dialect::Postgres,
            &t,
            filter,
            Position::Offset(0),
            Some(101),
        )
    };
    let by = |f: fn(&mut RunFilter)| {
        let mut filter = RunFilter::default();
        f(&mut filter);
        filter
    };
    let name = by(|f| f.pipeline_name = Some("ingest_orders".into()));
    let environment = by(|f| f.environment = Some("nowhere".into()));
    let default = RunFilter::default();

    let page = window(&default);
    uses(&plan(&client, &page).await, "pipeline_runs_start_ix");

    let named = window(&name);
    uses(&plan(&client, &named).await, "pipeline_runs_name_start_ix");

    let rare = window(&environment);
    uses(
        &plan(&client, &rare).await,
        "pipeline_runs_environment_start_ix",
    );

    let key = Position::After(RunKey {
        start_micros: FlexDateTime::parse("2025-06-01T00:00:00Z")
            .unwrap()
            .instant_micros(),
        seq: 10,
    });
    let keyset = sql::select_runs(Dialect::Postgres, &t, &default, key, Some(101));
    let keyset_plan = plan(&client, &keyset).await;
    uses(&keyset_plan, "pipeline_runs_start_ix");
    assert!(
        keyset_plan.contains("Index Cond: (start_utc <= "),
        "{keyset_plan}"
    );
    let keyset_named = sql::select_runs(Dialect::Postgres, &t, &name, key, Some(101));
    uses(
        &plan(&client, &keyset_named).await,
        "pipeline_runs_name_start_ix",
    );

    let count_named = plan(&client, &sql::count(Dialect::Postgres, &t, &name)).await;
    assert!(
        count_named.contains("Index Only Scan using pipeline_runs_name_start_ix"),
        "{count_named}"
    );
    let count_environment = plan(
        &client,
        &sql::count(
            Dialect::Postgres,
            &t,
            &by(|f| f.environment = Some("prod".into())),
        ),
    )
    .await;
    assert!(
        count_environment.contains("Index Only Scan using pipeline_runs_environment_start_ix"),
        "{count_environment}"
    );
    // A time window: the end bound also bounds the start, so the name
    // index is read from the window's end, not from the newest run.
    let week = RunFilter {
        pipeline_name: Some("ingest_orders".into()),
        start_utc: Some(FlexDateTime::parse("2025-06-01T00:00:00Z").unwrap()),
        end_utc: Some(FlexDateTime::parse("2025-06-08T00:00:00Z").unwrap()),
        ..Default::default()
    };
    for statement in [window(&week), sql::count(Dialect::Postgres, &t, &week)] {
        let week_plan = plan(&client, &statement).await;
        assert!(
            week_plan.contains("pipeline_runs_name_start_ix"),
            "{week_plan}"
        );
        assert!(week_plan.contains("(start_utc <= ("), "{week_plan}");
        if statement.sql.starts_with("SELECT COUNT") {
            // The window's total reads the index only: the end bound is
            // carried in it.
            assert!(
                week_plan.contains("Index Only Scan using pipeline_runs_name_start_ix"),
                "{week_plan}"
            );
        }
        assert!(
            !week_plan.contains("Seq Scan on pipeline_runs"),
            "{week_plan}"
        );
    }
    let count_all = plan(&client, &sql::count(Dialect::Postgres, &t, &default)).await;
    assert!(count_all.contains("Index Only Scan"), "{count_all}");
    // What a page's total really runs for a filter on group fields only
    // (or none): the per-group table, never the runs.
    for filter in [&default, &name] {
        let statement = sql::count_from_groups(Dialect::Postgres, SUMMARY_TABLE, filter).unwrap();
        let from_groups = plan(&client, &statement).await;
        assert!(from_groups.contains("pipeline_summaries"), "{from_groups}");
        assert!(!from_groups.contains("pipeline_runs"), "{from_groups}");
    }

    let files = sql::archived_files(Dialect::Postgres, &t, "20250601_000000", 5);
    let files_plan = plan(&client, &files).await;
    assert!(
        files_plan.contains("pipeline_runs_date_code_ix"),
        "{files_plan}"
    );
    let keys = client
        .query(
            "EXPLAIN (COSTS OFF) SELECT seq FROM pipeline_runs WHERE idempotency_key = ANY($1)",
            &[&vec!["a", "b"]],
        )
        .await
        .unwrap();
    let keys: Vec<String> = keys.iter().map(|r| r.get(0)).collect();
    assert!(
        keys.join("\n").contains("pipeline_runs_idempotency_ux"),
        "{keys:?}"
    );
    // The seeded runs carry no key, and only keyed runs are indexed by it.
    let entries: f32 = client
        .query_one(
            "SELECT reltuples FROM pg_class WHERE relname = 'pipeline_runs_idempotency_ux'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(entries, 0.0, "unkeyed runs have no entry in the key index");
}

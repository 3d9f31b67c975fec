//! What only a live Oracle database can show: the plans its optimizer
//! chooses, the errors its columns raise, and what its VARCHAR2 columns
//! give back. Each test runs when ORACLE_TEST_DSN, ORACLE_TEST_USER and
//! ORACLE_TEST_PASSWORD are set (as in `.github/workflows/oracle.yml`) and
//! says SKIPPED otherwise.

use pipeline_service::domain::{IdempotencyKey, LocItem, PipelineInfo};
use pipeline_service::import::{import_file, ImportError};
use pipeline_service::repository::oracle::sql::{self, Bind, Statement};
use pipeline_service::repository::{NewRun, Position, RepositoryError, RunFilter, RunKey};
use serde_json::json;

use crate::backends::{fresh_oracle, record, Shortcuts};

/// The run and field a refusal names.
fn refused_at(result: Result<impl std::fmt::Debug, RepositoryError>) -> (usize, LocItem) {
    match result {
        Err(RepositoryError::Invalid { run, errors }) => (run, errors.detail[0].loc[1].clone()),
        other => panic!("not refused at a field: {other:?}"),
    }
}

/// Texts over 4000 bytes (1001 four-byte characters are within the API's
/// 4096 characters) and instants past year 9999 are refused at their
/// field on every write path, and nothing is stored.
#[tokio::test]
async fn values_a_column_cannot_hold_are_refused_on_every_write_path() {
    let Some(store) = fresh_oracle().await else {
        return;
    };
    let repo = &store.repository;
    let too_long = record(1, json!({"output_file": "😀".repeat(1001)}));
    let too_late = record(2, json!({"end_local": "9999-12-31T23:00:00-05:00"}));
    let plain = repo.insert(vec![too_long.clone().into()], true).await;
    assert_eq!(refused_at(plain), (0, LocItem::from("output_file")));
    let key = IdempotencyKey::parse("too-long", &too_long).unwrap();
    let keyed = NewRun {
        record: too_long.clone(),
        key: Some(key),
    };
    assert_eq!(
        refused_at(repo.insert(vec![keyed], true).await),
        (0, LocItem::from("output_file"))
    );
    let bulk = vec![record(3, json!({})).into(), too_late.clone().into()];
    assert_eq!(
        refused_at(repo.insert(bulk, false).await),
        (1, LocItem::from("end_local"))
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("import.jsonl");
    let lines = [record(4, json!({})), too_long]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect::<String>();
    std::fs::write(&file, lines).unwrap();
    match import_file(repo.as_ref(), &file, |_| {}).await {
        Err(ImportError::Store { source, .. }) => {
            assert_eq!(
                refused_at(Err::<(), _>(source)),
                (1, LocItem::from("output_file"))
            )
        }
        other => panic!("import not refused: {other:?}"),
    }
    assert_eq!(repo.count(&RunFilter::default()).await.unwrap(), 0);
}

/// A column narrower than the DDL's raises ORA-12899, answered as a 422
/// at the field of the run that holds the long value.
#[tokio::test]
async fn a_narrower_column_refuses_at_the_field() {
    let Some(store) = fresh_oracle().await else {
        return;
    };
    let (oracle, table) = store.oracle().unwrap();
    oracle
        .execute_script_blocking(&format!(
            "ALTER TABLE {table} MODIFY (OUTPUT_FILE VARCHAR2(10 CHAR))"
        ))
        .unwrap();
    let runs = vec![
        record(1, json!({"output_file": "/short"})).into(),
        record(2, json!({"output_file": "/rather/long"})).into(),
    ];
    assert_eq!(
        refused_at(store.repository.insert(runs, true).await),
        (1, LocItem::from("output_file"))
    );
}

/// Texts Oracle would otherwise turn into NULL or confuse with one: `""`
/// and texts that start with U+0000 come back as written, and filters
/// find them.
#[tokio::test]
async fn empty_and_escape_texts_come_back_as_written() {
    let Some(store) = fresh_oracle().await else {
        return;
    };
    let repo = &store.repository;
    let written = [
        record(
            1,
            json!({"pipeline_name": "", "output_file": "", "archived_file": ""}),
        ),
        record(
            2,
            json!({"pipeline_name": "\u{0}", "output_file": "\u{0}x"}),
        ),
        record(3, json!({"pipeline_name": null, "archived_file": null})),
    ];
    repo.store_all(written.to_vec()).await.unwrap();
    let all = repo.all(&RunFilter::default()).await.unwrap();
    let back: Vec<&PipelineInfo> = all.iter().rev().map(|r| r.as_ref()).collect();
    assert_eq!(back, written.iter().collect::<Vec<_>>());
    let by_name = |name: &str| RunFilter {
        pipeline_name: Some(name.into()),
        ..RunFilter::default()
    };
    let nul = repo.all(&by_name("\u{0}")).await.unwrap();
    assert_eq!(nul.len(), 1);
    assert_eq!(nul[0].output_file(), "\u{0}x");
}

/// The plan of `statement`, with the statement, for messages.
fn plan(store: &crate::backends::Fresh, statement: &Statement) -> String {
    let (oracle, _) = store.oracle().unwrap();
    let lines = oracle.explain_blocking(statement).unwrap();
    format!("{}\n{}", statement.sql, lines.join("\n"))
}

/// Pages, keyset pages and a pipeline's pages are read from an index in
/// answer order, never sorted; a date code's runs and a key come from
/// their indexes. (Text binds are VARCHAR2, so an index on a VARCHAR2
/// column stays usable; EXPLAIN PLAN cannot see bind types, which the
/// unit tests of `rows` assert.)
#[tokio::test]
async fn each_query_shape_is_served_by_its_index() {
    let Some(store) = fresh_oracle().await else {
        return;
    };
    let repo = &store.repository;
    let records: Vec<PipelineInfo> = (0..3000)
        .map(|i| {
            let name = format!("p{}", i % 50);
            record(i, json!({"pipeline_name": name}))
        })
        .collect();
    repo.store_all(records).await.unwrap();
    let (oracle, table) = store.oracle().unwrap();
    let layout = oracle.layout_blocking().unwrap();
    let schema = &*layout;
    let key = RunKey {
        start_micros: 1_754_006_400_000_000 + 1500 * 60_000_000,
        seq: 1500,
    };
    let by_name = RunFilter {
        pipeline_name: Some("p7".into()),
        ..RunFilter::default()
    };
    let unsorted = [
        (
            sql::select_runs(schema, &RunFilter::default(), Position::Offset(0), Some(51)),
            format!("{table}_START_IX"),
        ),
        (
            sql::select_runs(
                schema,
                &RunFilter::default(),
                Position::After(key),
                Some(51),
            ),
            format!("{table}_START_IX"),
        ),
        (
            sql::select_runs(schema, &by_name, Position::After(key), Some(51)),
            format!("{table}_NAME_START_IX"),
        ),
    ];
    for (statement, index) in &unsorted {
        let text = plan(&store, statement);
        assert!(text.contains(index.as_str()), "{index} not used:\n{text}");
        assert!(
            !text.contains("SORT ORDER BY") && !text.contains("WINDOW SORT"),
            "sorted:\n{text}"
        );
    }
    let files = sql::archived_files(schema, "m7", 10);
    let text = plan(&store, &files);
    assert!(text.contains(&format!("{table}_DATE_CODE_IX")), "{text}");
    let lookup = Statement {
        sql: sql::key_lookup(schema),
        binds: vec![("key".into(), Bind::Text(Some("k".into())))],
    };
    let text = plan(&store, &lookup);
    assert!(text.contains(&format!("{table}_IDEMPOTENCY_UX")), "{text}");
}

/// A table without a column the service needs (here, an offset column, as
/// in a table made for an earlier layout) is not ready, so the replica is
/// kept out of service; the complete table is.
#[tokio::test]
async fn a_table_missing_a_column_is_not_ready() {
    let Some(store) = fresh_oracle().await else {
        return;
    };
    store
        .repository
        .ready()
        .await
        .expect("the complete table is ready");
    let (oracle, table) = store.oracle().unwrap();
    oracle
        .execute_script_blocking(&format!("ALTER TABLE {table} DROP COLUMN END_UTC_OFFSET"))
        .unwrap();
    assert!(store.repository.ready().await.is_err());
}

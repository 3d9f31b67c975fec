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

use crate::backends::{fresh_oracle, fresh_oracle_original, record, Shortcuts};

/// The run and field a refusal names.
fn refused_at(result: Result<impl std::fmt::Debug, RepositoryError>) -> (usize, LocItem) {
    match result {
        Err(RepositoryError::Invalid { run, errors }) => (run, errors.detail[0].loc[1].clone()),
        other => panic!("not refused at a field: {other:?}"),
    }
}

/// Texts over 4000 bytes (1001 four-byte characters are within the API's
/// 4096 characters) and instants past year 9999 are refused at their
/// field on every write path, and nothing is stored, on a table of either
/// layout; on the original layout so is a UTC offset outside
/// -12:00..+14:00.
#[tokio::test]
async fn values_a_column_cannot_hold_are_refused_on_every_write_path() {
    for store in [fresh_oracle().await, fresh_oracle_original().await] {
        let Some(store) = store else {
            return;
        };
        let repo = &store.repository;
        let too_long = record(1, json!({"output_file": "😀".repeat(1001)}));
        let too_late = record(2, json!({"end_utc": "9999-12-31T23:00:00-05:00"}));
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
            (1, LocItem::from("end_utc"))
        );
        let far_offset = record(5, json!({"start_utc": "2025-08-01T00:05:00+14:01"}));
        let far = repo.insert(vec![far_offset.into()], true).await;
        if store.name() == "oracle (original layout)" {
            assert_eq!(refused_at(far), (0, LocItem::from("start_utc")));
        } else {
            far.expect("a table with offset columns keeps any offset");
        }
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
        let stored = if store.name() == "oracle (original layout)" {
            0
        } else {
            1
        };
        assert_eq!(repo.count(&RunFilter::default()).await.unwrap(), stored);
    }
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
            sql::select_runs(
                &layout,
                &RunFilter::default(),
                Position::Offset(0),
                Some(51),
            ),
            format!("{table}_START_IX"),
        ),
        (
            sql::select_runs(
                &layout,
                &RunFilter::default(),
                Position::After(key),
                Some(51),
            ),
            format!("{table}_START_IX"),
        ),
        (
            sql::select_runs(&layout, &by_name, Position::After(key), Some(51)),
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
    let files = sql::archived_files(&layout, "m7", 10);
    let text = plan(&store, &files);
    assert!(text.contains(&format!("{table}_DATE_CODE_IX")), "{text}");
    let lookup = Statement {
        sql: sql::key_lookup(&layout),
        binds: vec![("key".into(), Bind::Text(Some("k".into())))],
    };
    let text = plan(&store, &lookup);
    assert!(text.contains(&format!("{table}_IDEMPOTENCY_UX")), "{text}");
}

/// A table without a column the service needs is not ready, so the
/// replica is kept out of service: one that loses a column after its
/// layout was found, and one with only some of the offset columns. A
/// table of the original layout is ready.
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
    let reopened = store.reopen().await;
    let why = reopened.ready().await.unwrap_err().to_string();
    assert!(why.contains("but not END_UTC_OFFSET"), "{why}");
    let Some(original) = fresh_oracle_original().await else {
        return;
    };
    original
        .repository
        .ready()
        .await
        .expect("a table of the original layout is ready");
}

/// Reads the runs of `table` as its other readers see them: each local
/// column's wall-clock reading, each UTC column's value with its zone and
/// its UTC instant (in that order, START then END), by identity.
fn as_other_readers_see(store: &crate::backends::Fresh) -> Vec<Vec<String>> {
    let (oracle, table) = store.oracle().unwrap();
    let clock = "'YYYY-MM-DD\"T\"HH24:MI:SS.FF6'";
    let zoned = "'YYYY-MM-DD\"T\"HH24:MI:SS.FF6TZH:TZM'";
    let query = format!(
        "SELECT TO_CHAR(START_LOCAL, {clock}), TO_CHAR(END_LOCAL, {clock}), \
TO_CHAR(START_UTC, {zoned}), TO_CHAR(SYS_EXTRACT_UTC(START_UTC), {clock}), \
TO_CHAR(END_UTC, {zoned}), TO_CHAR(SYS_EXTRACT_UTC(END_UTC), {clock}) FROM {table} ORDER BY ID"
    );
    oracle
        .texts_blocking(&query)
        .unwrap()
        .into_iter()
        .map(|row| row.into_iter().map(Option::unwrap_or_default).collect())
        .collect()
}

/// Inserts a run the way the Python service does: its own columns only,
/// datetimes bound without a zone (local wall clock, UTC reading).
fn insert_as_the_python_service(store: &crate::backends::Fresh, code: &str) {
    let (oracle, table) = store.oracle().unwrap();
    oracle
        .execute_script_blocking(&format!(
            "INSERT INTO {table} (START_LOCAL, END_LOCAL, START_UTC, END_UTC, ELAPSED_SECONDS, \
ELAPSED_HUMAN, OUTPUT_FILE, ROWCOUNT, LOG_FILE, PID, DATE_CODE, PIPELINE_NAME) VALUES (\
TIMESTAMP '2025-07-01 07:00:00', TIMESTAMP '2025-07-01 07:01:00', \
TIMESTAMP '2025-07-01 05:00:00 +00:00', TIMESTAMP '2025-07-01 05:01:00 +00:00', \
60, '1m', '/o.csv', 5, '/r.log', 7, '{code}', 'etl')"
        ))
        .unwrap();
}

/// What the service reads from the Python service's row.
fn python_row(code: &str) -> serde_json::Value {
    json!({
        "start_local": "2025-07-01T07:00:00", "end_local": "2025-07-01T07:01:00",
        "start_utc": "2025-07-01T05:00:00Z", "end_utc": "2025-07-01T05:01:00Z",
        "elapsed_seconds": 60.0, "elapsed_human": "1m", "output_file": "/o.csv", "rowcount": 5,
        "log_file": "/r.log", "pid": 7, "date_code": code, "pipeline_name": "etl",
        "script_name": null, "pipeline_type": null, "environment": null, "archived_file": null
    })
}

/// A row this service writes into a table of the original layout means
/// to the table's other readers (the Python service, reports) what their
/// rows mean: the local columns hold the local wall clock as written, the
/// UTC columns the UTC instant (at the offset written, a naive one at
/// +00:00). A row the Python service writes reads back as that layout
/// holds it, and filters and pages treat both alike.
#[tokio::test]
async fn the_original_layout_means_to_other_readers_what_it_always_meant() {
    let Some(store) = fresh_oracle_original().await else {
        return;
    };
    let repo = &store.repository;
    insert_as_the_python_service(&store, "py");
    let written = record(
        0,
        json!({"start_local": "2025-08-01T05:30:00+05:30", "end_local": "2025-08-01T05:31:30.000001",
               "start_utc": "2025-08-01T05:30:00+05:30", "end_utc": "2025-08-01T00:01:30.000001"}),
    );
    let stored = repo.store(written).await.unwrap();
    assert_eq!(
        serde_json::to_value(&*stored).unwrap()["start_local"],
        "2025-08-01T05:30:00",
        "answered as kept"
    );
    assert_eq!(
        as_other_readers_see(&store),
        [
            [
                "2025-07-01T07:00:00.000000",
                "2025-07-01T07:01:00.000000",
                "2025-07-01T05:00:00.000000+00:00",
                "2025-07-01T05:00:00.000000",
                "2025-07-01T05:01:00.000000+00:00",
                "2025-07-01T05:01:00.000000",
            ],
            [
                "2025-08-01T05:30:00.000000",
                "2025-08-01T05:31:30.000001",
                "2025-08-01T05:30:00.000000+05:30",
                "2025-08-01T00:00:00.000000",
                "2025-08-01T00:01:30.000001+00:00",
                "2025-08-01T00:01:30.000001",
            ],
        ]
    );
    let all = repo.all(&RunFilter::default()).await.unwrap();
    assert_eq!(serde_json::to_value(&*all[1]).unwrap(), python_row("py"));
    assert_eq!(all[0], stored);
    let after = |text: &str| RunFilter {
        start_utc: Some(pipeline_service::domain::FlexDateTime::parse(text).unwrap()),
        ..RunFilter::default()
    };
    assert_eq!(repo.count(&after("2025-07-01T05:00:00Z")).await.unwrap(), 2);
    assert_eq!(
        repo.count(&after("2025-07-01T07:00:01+02:00"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        repo.count(&after("2025-08-01T00:00:00.000001"))
            .await
            .unwrap(),
        0
    );
}

/// `ddl --add-offsets` upgrades a table of the original layout in place:
/// the rows it held (the Python service's and this service's) read back
/// exactly as before, so do rows the Python service writes afterwards,
/// and from then on every record is kept exactly as written, while the
/// columns keep meaning what they meant to other readers.
#[tokio::test]
async fn an_original_table_upgraded_with_add_offsets_keeps_its_rows() {
    let Some(store) = fresh_oracle_original().await else {
        return;
    };
    insert_as_the_python_service(&store, "py-before");
    let before = record(
        1,
        json!({"start_local": "2025-08-01T05:30:00+05:30", "start_utc": "2025-08-01T00:01:00"}),
    );
    store.repository.store(before).await.unwrap();
    let read_before = store.repository.all(&RunFilter::default()).await.unwrap();
    let (oracle, _) = store.oracle().unwrap();
    oracle
        .execute_script_blocking(&sql::add_offset_columns(oracle.schema()))
        .unwrap();
    let upgraded = store.reopen().await;
    upgraded.ready().await.expect("the upgraded table is ready");
    assert_eq!(
        upgraded.all(&RunFilter::default()).await.unwrap(),
        read_before
    );
    let exact = record(
        2,
        json!({"start_local": "2025-08-01T00:02:00-23:59", "end_local": "2025-08-01T05:33:30+05:30",
               "start_utc": "2025-08-01T00:02:00", "end_utc": "2025-08-01T00:03:30+14:01"}),
    );
    let stored = upgraded.store(exact.clone()).await.unwrap();
    assert_eq!(*stored, exact);
    insert_as_the_python_service(&store, "py-after");
    let all = upgraded.all(&RunFilter::default()).await.unwrap();
    assert_eq!(*all[0], exact, "kept exactly as written");
    assert_eq!(&all[1..3], &read_before[..]);
    assert_eq!(
        serde_json::to_value(&*all[3]).unwrap(),
        python_row("py-after")
    );
    let seen = as_other_readers_see(&store);
    assert_eq!(
        seen[2],
        [
            "2025-08-01T00:02:00.000000",
            "2025-08-01T05:33:30.000000",
            "2025-08-01T00:02:00.000000+00:00",
            "2025-08-01T00:02:00.000000",
            "2025-07-31T10:02:30.000000+00:00",
            "2025-07-31T10:02:30.000000",
        ],
        "local wall clocks as written; UTC instants (an offset Oracle cannot hold at UTC)"
    );
}

/// On a table of the original layout, its own indexes stay usable: a
/// range of `start_utc` (bound WITH TIME ZONE, as the column is), a
/// pipeline's runs and a date code (bound as VARCHAR2) and a key are read
/// through them.
#[tokio::test]
async fn the_original_layouts_indexes_serve_its_filters() {
    let Some(store) = fresh_oracle_original().await else {
        return;
    };
    let records: Vec<PipelineInfo> = (0..3000)
        .map(|i| record(i, json!({"pipeline_name": format!("p{}", i % 50)})))
        .collect();
    store.repository.store_all(records).await.unwrap();
    let (oracle, table) = store.oracle().unwrap();
    let layout = oracle.layout_blocking().unwrap();
    let parse = |t: &str| pipeline_service::domain::FlexDateTime::parse(t).unwrap();
    // The last ten of 3000 runs a minute apart from 2025-08-01T00:00Z.
    let window = RunFilter {
        start_utc: Some(parse("2025-08-03T03:50:00+02:00")),
        ..RunFilter::default()
    };
    let by_name = RunFilter {
        pipeline_name: Some("p7".into()),
        ..RunFilter::default()
    };
    let lookup = Statement {
        sql: sql::key_lookup(&layout),
        binds: vec![("key".into(), Bind::Text(Some("k".into())))],
    };
    for (statement, index) in [
        (sql::count(&layout, &window), "_START_IX"),
        (sql::count(&layout, &by_name), "_NAME_START_IX"),
        (sql::archived_files(&layout, "m7", 10), "_DATE_CODE_IX"),
        (lookup, "_IDEMPOTENCY_UX"),
    ] {
        let text = plan(&store, &statement);
        assert!(
            text.contains(&format!("{table}{index}")),
            "{index}:\n{text}"
        );
    }
}

/// The Python service's table often names its columns otherwise: through
/// `ORACLE_COLUMN_MAP` the service finds that table's layout under those
/// names, and stores, filters, pages and summarises there as on the
/// original layout.
#[tokio::test]
async fn an_original_table_with_other_names_is_served_through_the_column_map() {
    use pipeline_service::config::Settings;
    use pipeline_service::repository::oracle::sql::TimeColumn;
    use pipeline_service::repository::oracle::OraclePipelineRepository;
    use pipeline_service::repository::PipelineInfoRepository;
    let table = crate::support::oracle::table_name("PS_MAP");
    let Some(mut raw) = crate::support::oracle::settings(&table) else {
        return;
    };
    raw.oracle_column_map = Some(
        r#"{"start_utc": "STARTED_AT", "end_utc": "ENDED_AT", "pipeline_name": "PIPE", "id": "RUN_ID"}"#
            .into(),
    );
    let settings = Settings::from_raw(raw).unwrap().oracle.unwrap();
    let repo = OraclePipelineRepository::connect(&settings).await.unwrap();
    let create = crate::support::oracle::original_table_ddl(&table)
        .replace("START_UTC", "STARTED_AT")
        .replace("END_UTC", "ENDED_AT")
        .replace("PIPELINE_NAME", "PIPE")
        .replace("    ID NUMBER", "    RUN_ID NUMBER")
        .replace("(ID)", "(RUN_ID)")
        .replace(", ID)", ", RUN_ID)");
    repo.execute_script_blocking(&create).unwrap();
    let served = repo.clone();
    // Run apart, so that the table is dropped whatever the outcome.
    let outcome = async move {
        let repo = served;
        let layout = repo.layout_blocking().unwrap();
        assert!(!layout.offsets());
        assert_eq!(layout.time_column("start_utc"), TimeColumn::Zoned);
        repo.ready().await.unwrap();
        let written = record(
            3,
            json!({"start_local": "2025-08-01T05:33:00+05:30", "start_utc": "2025-08-01T00:03:00"}),
        );
        let stored = repo.store(written).await.unwrap();
        assert_eq!(stored.start_utc().to_string(), "2025-08-01T00:03:00Z");
        repo.store(record(1, json!({"pipeline_name": "other"})))
            .await
            .unwrap();
        let etl = RunFilter {
            pipeline_name: Some("etl".into()),
            start_utc: pipeline_service::domain::FlexDateTime::parse("2025-08-01T00:02:00Z").ok(),
            ..RunFilter::default()
        };
        assert_eq!(repo.all(&etl).await.unwrap(), [stored]);
        let summaries = repo.summaries().await.unwrap();
        assert_eq!(summaries.len(), 2);
    };
    let result = tokio::spawn(outcome).await;
    repo.execute_script_blocking(&format!("DROP TABLE {table} PURGE"))
        .unwrap();
    result.unwrap();
}

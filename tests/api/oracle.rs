//! The HTTP API served from Oracle: what a client sees when a value does
//! not fit a column, and that a record comes back as it was posted. Runs
//! when ORACLE_TEST_DSN, ORACLE_TEST_USER and ORACLE_TEST_PASSWORD are set
//! (as in `.github/workflows/oracle.yml`); says SKIPPED otherwise.

use pipeline_service::config::{RawSettings, Settings};
use pipeline_service::repository::oracle::sql::ddl;
use pipeline_service::repository::oracle::OraclePipelineRepository;
use serde_json::{json, Value};

use crate::bulk::post_bulk;
use crate::helpers::{run, spawn_app_with, TestApp};
use crate::support::oracle as oracle_test;

/// A fresh table, dropped when this is.
struct Table {
    repository: OraclePipelineRepository,
    raw: RawSettings,
}

impl Table {
    /// A table as `pipeline-service ddl` creates it.
    async fn create() -> Option<Self> {
        Self::create_with(false).await
    }

    /// A table of the original layout (the Python service's).
    async fn create_original() -> Option<Self> {
        Self::create_with(true).await
    }

    async fn create_with(original_layout: bool) -> Option<Self> {
        let table = oracle_test::table_name("PS_API");
        let raw = oracle_test::settings(&table)?;
        let settings = Settings::from_raw(raw.clone()).expect("valid Oracle test settings");
        let repository = OraclePipelineRepository::connect(&settings.oracle.unwrap())
            .await
            .expect("the Oracle test database is reachable");
        let create = match original_layout {
            true => oracle_test::original_table_ddl(&table),
            false => ddl(repository.schema()),
        };
        repository
            .execute_script_blocking(&create)
            .expect("test table created");
        Some(Self { repository, raw })
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let table = self.repository.schema().table().to_owned();
        if let Err(error) = self
            .repository
            .execute_script_blocking(&format!("DROP TABLE {table} PURGE"))
        {
            eprintln!("could not drop Oracle test table {table}: {error}");
        }
    }
}

async fn count(app: &TestApp) -> Value {
    app.get_json("/get_pipeline_info?limit=1").await["total"].clone()
}

/// 1001 four-byte characters: within the API's 4096 characters, over the
/// 4000 bytes a VARCHAR2 holds. Every way of writing it answers 422 at the
/// field, and nothing is stored.
#[tokio::test]
async fn a_value_no_column_can_hold_is_a_422_at_its_field_on_every_path() {
    let Some(table) = Table::create().await else {
        return;
    };
    let app = spawn_app_with(None, table.raw.clone()).await;
    let long = run(json!({"output_file": "😀".repeat(1001)}));
    let plain = app.post_run(&long).await;
    assert_eq!(plain.status(), 422);
    let answer: Value = plain.json().await.unwrap();
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "output_file"]));
    assert_eq!(answer["detail"][0]["type"], "string_too_long");
    let keyed = app
        .client
        .post(format!("{}/pipelines", app.address))
        .header("idempotency-key", "long-1")
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 422);
    let items = json!([run(json!({"date_code": "ok"})), long]);
    let (status, answer) =
        post_bulk(&app, "?atomic=false", items.to_string(), "application/json").await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["detail"][0]["loc"],
        json!(["body", 1, "output_file"])
    );
    assert_eq!(count(&app).await, 0);
}

/// Aware local times, a naive UTC time, an offset beyond Oracle's own
/// range, `""` and -0.0 come back through HTTP exactly as posted.
#[tokio::test]
async fn a_posted_record_reads_back_as_posted() {
    let Some(table) = Table::create().await else {
        return;
    };
    let app = spawn_app_with(None, table.raw.clone()).await;
    let body = run(json!({
        "start_local": "2025-08-01T05:30:00+05:30", "end_local": "2025-08-01T05:31:00.000001+05:30",
        "start_utc": "2025-08-01T00:00:00", "end_utc": "2025-08-01T00:01:00-23:59",
        "elapsed_seconds": -0.0, "output_file": "", "pipeline_name": "", "archived_file": ""
    }));
    let stored = app.store(&body).await;
    let read = app.get_json("/get_pipeline_info").await;
    assert_eq!(read["results"][0], stored);
    for field in [
        "start_local",
        "end_local",
        "start_utc",
        "end_utc",
        "output_file",
        "pipeline_name",
    ] {
        assert_eq!(read["results"][0][field], body[field], "{field}");
    }
    assert_eq!(read["results"][0]["elapsed_seconds"].to_string(), "-0.0");
}

/// The service serves a table of the original layout unchanged: ready, a
/// posted record answered and read back as that layout keeps it (local
/// times naive, a naive UTC time at UTC), and a UTC offset it cannot hold
/// refused with a 422 at the field that says why, on a plain and a bulk
/// POST, with nothing stored.
#[tokio::test]
async fn a_table_of_the_original_layout_is_served_unchanged() {
    let Some(table) = Table::create_original().await else {
        return;
    };
    let app = spawn_app_with(None, table.raw.clone()).await;
    assert_eq!(app.get("/ready").await.status(), 200);
    let body = run(json!({
        "start_local": "2025-08-01T05:30:00+05:30", "end_local": "2025-08-01T05:31:00.000001",
        "start_utc": "2025-08-01T00:00:00", "end_utc": "2025-08-01T00:01:00.000001+00:00",
        "output_file": "", "pipeline_name": ""
    }));
    let stored = app.store(&body).await;
    let kept = [
        ("start_local", "2025-08-01T05:30:00"),
        ("end_local", "2025-08-01T05:31:00.000001"),
        ("start_utc", "2025-08-01T00:00:00Z"),
        ("end_utc", "2025-08-01T00:01:00.000001Z"),
        ("output_file", ""),
        ("pipeline_name", ""),
    ];
    for (field, value) in kept {
        assert_eq!(stored[field], value, "{field}");
    }
    // The repository suite's model of the layout agrees (given the body
    // as the service normalises it: `+00:00` is written `Z`).
    let mut normalised = body.clone();
    normalised["end_utc"] = "2025-08-01T00:01:00.000001Z".into();
    let modelled = oracle_test::kept_by_the_original_layout(&normalised).unwrap();
    for (field, value) in kept {
        assert_eq!(modelled[field], value, "{field}");
    }
    let read = app.get_json("/get_pipeline_info").await;
    assert_eq!(read["results"][0], stored, "read as answered");
    let far = run(json!({"start_utc": "2025-08-01T00:00:00+14:01"}));
    let refused = app.post_run(&far).await;
    assert_eq!(refused.status(), 422);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "start_utc"]));
    assert_eq!(answer["detail"][0]["type"], "value_error");
    let msg = answer["detail"][0]["msg"].as_str().unwrap();
    assert!(msg.contains("-12:00 to +14:00"), "{msg}");
    let items = json!([run(json!({"date_code": "ok"})), far]);
    let (status, answer) =
        post_bulk(&app, "?atomic=false", items.to_string(), "application/json").await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["detail"][0]["loc"], json!(["body", 1, "start_utc"]));
    assert_eq!(count(&app).await, 1);
}

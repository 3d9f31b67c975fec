use serde_json::{json, Value};

use crate::helpers::{every_store, run, spawn_app};

#[tokio::test]
async fn posting_the_sample_record_stores_it_and_queries_return_it() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let sample: Value = serde_json::from_str(include_str!("../../sample_record.json")).unwrap();
        let stored = app.store(&sample).await;
        assert_eq!(stored, sample, "the sample is already normalised");
        let answer = app.get_json("/get_pipeline_info").await;
        assert_eq!(answer["total"], 1);
        assert_eq!(answer["count"], 1);
        assert_eq!(answer["results"][0], sample);
        assert_eq!(answer["pipelines"], json!(["sales_daily"]));
    }
}

#[tokio::test]
async fn lenient_values_are_normalised_in_the_answer_and_the_file() {
    let app = spawn_app().await;
    let stored = app
        .store(&run(json!({
            "start_local": "2025-08-08 05:07:01",
            "end_local": "2025-08-08_05:29",
            "start_utc": "2025-08-08T12:07:01+00:00",
            "end_utc": 1754655546,
            "elapsed_seconds": "1325",
            "rowcount": "8_543",
            "pid": 48213.0,
            "extra_field": "ignored"
        })))
        .await;
    assert_eq!(stored["start_local"], "2025-08-08T05:07:01");
    assert_eq!(stored["end_local"], "2025-08-08T05:29:00");
    assert_eq!(stored["start_utc"], "2025-08-08T12:07:01Z");
    assert_eq!(stored["end_utc"], "2025-08-08T12:19:06Z");
    assert_eq!(stored["elapsed_seconds"], json!(1325.0));
    assert_eq!(stored["rowcount"], json!(8543));
    assert_eq!(stored["pid"], json!(48213));
    assert!(stored.get("extra_field").is_none());
    let line: Value = serde_json::from_str(&app.file_lines()[0]).unwrap();
    assert_eq!(line, stored, "the file holds what the answer shows");
}

#[tokio::test]
async fn datetimes_keep_the_zone_they_were_given() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let cases = [
            ("2025-08-14T22:49:07", "2025-08-14T22:49:07"),
            ("2025-08-14T22:49:07Z", "2025-08-14T22:49:07Z"),
            ("2025-08-14T22:49:07+00:00", "2025-08-14T22:49:07Z"),
            ("2025-08-14T22:49:07+0530", "2025-08-14T22:49:07+05:30"),
            ("2025-08-14T22:49:07-03:00", "2025-08-14T22:49:07-03:00"),
            ("2025-08-14T22:49:07.5Z", "2025-08-14T22:49:07.500000Z"),
            ("2025-08-14T22:49:07.1234567", "2025-08-14T22:49:07.123456"),
            ("2025-08-14", "2025-08-14T00:00:00"),
            ("2025-08-14t22:49", "2025-08-14T22:49:00"),
            ("1755211747", "2025-08-14T22:49:07Z"),
            ("1755211747000", "2025-08-14T22:49:07Z"),
        ];
        for (given, shown) in cases {
            let stored = app.store(&run(json!({"start_local": given}))).await;
            assert_eq!(stored["start_local"], shown, "{given}");
        }
    }
}

#[tokio::test]
async fn each_insert_appends_exactly_one_complete_line_creating_folders() {
    let app = spawn_app().await;
    assert!(
        !app.data_path.parent().unwrap().exists(),
        "folder starts missing"
    );
    for i in 0..3 {
        app.store(&run(json!({"pid": i}))).await;
        assert_eq!(app.file_lines().len(), i as usize + 1);
    }
    let text = std::fs::read_to_string(&app.data_path).unwrap();
    assert!(text.ends_with('\n'));
    for line in app.file_lines() {
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value.as_object().unwrap().len(),
            16,
            "every field, nulls included"
        );
    }
}

#[tokio::test]
async fn a_rejected_body_stores_nothing() {
    let app = spawn_app().await;
    app.store(&run(json!({}))).await;
    let before = std::fs::read(&app.data_path).unwrap();
    let response = app.post_run(&run(json!({"rowcount": "many"}))).await;
    assert_eq!(response.status(), 422);
    let response = app.post_raw("{broken", Some("application/json")).await;
    assert_eq!(response.status(), 422);
    assert_eq!(std::fs::read(&app.data_path).unwrap(), before);
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
}

/// The fields a record may leave out.
const OPTIONAL_FIELDS: [&str; 5] = [
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
    "archived_file",
];

#[tokio::test]
async fn optional_fields_default_to_null() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let mut body = run(json!({}));
        for field in OPTIONAL_FIELDS {
            body.as_object_mut().unwrap().remove(field);
        }
        let stored = app.store(&body).await;
        for field in OPTIONAL_FIELDS {
            assert_eq!(stored[field], Value::Null, "{field}");
        }
        // Not inferred: only legacy file lines without the key are.
        let answer = app.get_json("/get_pipeline_info").await;
        assert_eq!(answer["results"][0]["pipeline_name"], Value::Null);
        assert_eq!(answer["pipelines"], json!([]));
    }
}

//! The data file is the source of truth: Python-written files load, other
//! writers' appends show up, replaced and truncated files are re-read.

use std::io::Write;

use serde_json::{json, Value};

use crate::helpers::{column, run, run_on, spawn_app, spawn_app_with_file};

const PYTHON_FILE: &str = include_str!("../fixtures/python_written.jsonl");

#[tokio::test]
async fn a_file_written_by_the_python_service_loads_skipping_bad_lines() {
    let app = spawn_app_with_file(PYTHON_FILE).await;
    let answer = app.get_json("/get_pipeline_info?all_data=true").await;
    assert_eq!(
        answer["total"], 7,
        "five good lines, two more after the bad ones"
    );
    assert_eq!(
        column(&answer, "date_code"),
        [
            json!("20250902_230000"),
            json!("20250902_050702"),
            json!("20250830_180000"),
            json!("20250829_180000"),
            json!("20250828_180000"),
            json!("20250827_180000"),
            json!("20250826_180000"),
        ]
    );
    let names = column(&answer, "pipeline_name");
    assert_eq!(
        names,
        [
            json!("orders"),
            json!("orders"),
            json!("billing"),
            json!("inventory_sync"),
            json!("unknown"),
            Value::Null,
            json!("orders"),
        ],
        "legacy lines get inferred names; a present null stays null"
    );
    let first = &answer["results"][0];
    assert_eq!(
        first["start_utc"], "2025-09-03T06:00:00.250000",
        "naive stays naive"
    );
    assert_eq!(first["archived_file"], "/archive/orders-20250903.csv.gz");
    assert_eq!(answer["results"][1]["start_utc"], "2025-09-02T12:07:02Z");
    assert!(answer["results"][6].get("host").is_none());
}

#[tokio::test]
async fn python_file_summaries_match_the_contract() {
    let app = spawn_app_with_file(PYTHON_FILE).await;
    let summaries = app.get_json("/pipelines").await["pipelines"].clone();
    let list = summaries.as_array().unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(list[0]["environment"], "dev");
    assert_eq!(
        list[0]["avg_rowcount"],
        Value::Null,
        "only a zero row count"
    );
    assert_eq!(list[0]["avg_duration"], 30.5);
    let prod = list
        .iter()
        .find(|s| s["pipeline_name"] == "orders" && s["environment"] == "prod")
        .unwrap();
    assert_eq!(prod["total_runs"], 2);
    assert_eq!(prod["avg_rowcount"], 4273.0);
    assert_eq!(prod["avg_duration"], 693.0);
    assert_eq!(prod["last_run"], "2025-09-02T12:07:02Z");
}

#[tokio::test]
async fn naive_query_bounds_work_against_aware_records() {
    // The Python service answered 500 here.
    let app = spawn_app_with_file(PYTHON_FILE).await;
    let answer = app
        .get_json("/get_pipeline_info?start_utc=2025-09-02")
        .await;
    assert_eq!(answer["total"], 2);
}

#[tokio::test]
async fn another_writers_appends_show_up_without_restart() {
    let app = spawn_app().await;
    app.store(&run_on(1, 0, json!({"date_code": "ours"}))).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&app.data_path)
        .unwrap();
    writeln!(file, "{}", run_on(2, 0, json!({"date_code": "theirs"}))).unwrap();
    drop(file);
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("theirs"), json!("ours")]
    );
    let summary = app.get_json("/pipelines").await;
    assert_eq!(summary["pipelines"][0]["total_runs"], 2);
}

#[tokio::test]
async fn an_unfinished_line_is_invisible_until_completed() {
    let app = spawn_app().await;
    app.store(&run_on(1, 0, json!({"date_code": "first"})))
        .await;
    let line = run_on(2, 0, json!({"date_code": "second"})).to_string();
    let (head, tail) = line.split_at(line.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&app.data_path)
        .unwrap();
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
    file.write_all(tail.as_bytes()).unwrap();
    file.write_all(b"\n").unwrap();
    drop(file);
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("second"), json!("first")]
    );
}

#[tokio::test]
async fn a_torn_last_line_is_skipped_and_the_next_insert_starts_a_fresh_line() {
    let good = run_on(1, 0, json!({"date_code": "good"})).to_string();
    let torn = &run_on(2, 0, json!({"date_code": "torn"})).to_string()[..40];
    let app = spawn_app_with_file(&format!("{good}\n{torn}")).await;
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
    app.store(&run_on(3, 0, json!({"date_code": "after"})))
        .await;
    let lines = app.file_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], torn, "the torn text stays on its own line");
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("after"), json!("good")]
    );
}

#[tokio::test]
async fn a_complete_last_record_without_newline_is_read() {
    let only = run_on(1, 0, json!({"date_code": "no-newline"})).to_string();
    let app = spawn_app_with_file(&only).await;
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
    app.store(&run_on(2, 0, json!({"date_code": "next"}))).await;
    assert_eq!(app.file_lines().len(), 2);
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("next"), json!("no-newline")]
    );
}

#[tokio::test]
async fn a_truncated_file_is_read_again() {
    let app = spawn_app().await;
    for day in 1..=3 {
        app.store(&run_on(day, 0, json!({}))).await;
    }
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 3);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&app.data_path)
        .unwrap();
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(answer["total"], 0);
    assert_eq!(app.get_json("/pipelines").await["pipelines"], json!([]));
    app.store(&run_on(9, 0, json!({"date_code": "fresh"})))
        .await;
    assert_eq!(
        column(&app.get_json("/get_pipeline_info").await, "date_code"),
        [json!("fresh")]
    );
}

#[tokio::test]
async fn a_replaced_file_is_read_again() {
    let app = spawn_app().await;
    app.store(&run_on(1, 0, json!({"date_code": "old"}))).await;
    let replacement = app.data_path.with_extension("new");
    let lines = format!(
        "{}\n{}\n",
        run_on(5, 0, json!({"date_code": "new-1"})),
        run_on(6, 0, json!({"date_code": "new-2"}))
    );
    std::fs::write(&replacement, lines).unwrap();
    std::fs::rename(&replacement, &app.data_path).unwrap();
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("new-2"), json!("new-1")]
    );
}

#[tokio::test]
async fn a_deleted_file_serves_nothing_and_is_recreated_by_the_next_insert() {
    let app = spawn_app().await;
    app.store(&run(json!({}))).await;
    std::fs::remove_file(&app.data_path).unwrap();
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 0);
    app.store(&run(json!({"date_code": "again"}))).await;
    assert_eq!(app.file_lines().len(), 1);
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
}

#[tokio::test]
async fn records_survive_a_restart_exactly_as_answered() {
    let app = spawn_app().await;
    let stored = app
        .store(&run(
            json!({"pipeline_name": null, "start_utc": "2025-08-08T12:07:01.5+02:00"}),
        ))
        .await;
    let contents = std::fs::read_to_string(&app.data_path).unwrap();
    let restarted = spawn_app_with_file(&contents).await;
    let answer = restarted.get_json("/get_pipeline_info").await;
    assert_eq!(answer["results"][0], stored);
    assert_eq!(
        answer["results"][0]["pipeline_name"],
        Value::Null,
        "not inferred"
    );
}

#[tokio::test]
async fn stored_lines_with_very_long_strings_are_still_served() {
    // The 4096-character limit guards the API; runs already on file stay visible.
    let long = run_on(1, 0, json!({"output_file": "p".repeat(5000)})).to_string();
    let app = spawn_app_with_file(&format!("{long}\n")).await;
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(answer["total"], 1);
    assert_eq!(
        answer["results"][0]["output_file"].as_str().unwrap().len(),
        5000
    );
}

#[tokio::test]
async fn a_file_rewritten_in_place_and_grown_is_read_again() {
    let app = spawn_app().await;
    app.store(&run_on(1, 0, json!({"date_code": "before"})))
        .await;
    assert_eq!(app.get_json("/get_pipeline_info").await["total"], 1);
    // Same inode, longer than before: not an append, a different file.
    let lines = format!(
        "{}\n{}\n",
        run_on(7, 0, json!({"date_code": "rewritten-1"})),
        run_on(8, 0, json!({"date_code": "rewritten-2"}))
    );
    std::fs::write(&app.data_path, lines).unwrap();
    let answer = app.get_json("/get_pipeline_info").await;
    assert_eq!(
        column(&answer, "date_code"),
        [json!("rewritten-2"), json!("rewritten-1")]
    );
}

//! `GET /download/pipeline_info`: CSV and JSON Lines files of the matches.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{
    csv_column, every_store, run_on, service, spawn_app, start_service, succeeded, RECORD_FIELDS,
};

const FIELDS: [&str; 16] = RECORD_FIELDS;

#[tokio::test]
async fn csv_has_a_header_rfc4180_quoting_and_the_json_values() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let awkward = "a \"quoted\", comma\nand a newline";
        app.store(&run_on(
            2,
            0,
            json!({"date_code": "d2", "output_file": awkward, "archived_file": "/a/b.gz"}),
        ))
        .await;
        app.store(&run_on(
        1,
        0,
        json!({"date_code": "d1", "start_utc": "2025-08-01T02:00:00+02:00", "pipeline_name": null}),
    ))
    .await;
        let response = app.get("/download/pipeline_info?format=csv").await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"pipeline_info_2")
                && disposition.ends_with("Z.csv\""),
            "{disposition}"
        );
        let text = response.text().await.unwrap();
        assert!(
            text.contains("\"a \"\"quoted\"\", comma\nand a newline\""),
            "{text}"
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), FIELDS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        // The same values, in the same order, as the JSON answer.
        let answer = app.get_json("/get_pipeline_info").await;
        let results = answer["results"].as_array().unwrap();
        assert_eq!(rows.len(), results.len());
        for (row, record) in rows.iter().zip(results) {
            for (field, cell) in FIELDS.iter().zip(row.iter()) {
                let expected = match &record[*field] {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                assert_eq!(cell, expected, "{field}");
            }
        }
        assert_eq!(&rows[1][2], "2025-08-01T02:00:00+02:00");
        assert_eq!(&rows[0][4], "1325.0");
    }
}

#[tokio::test]
async fn jsonl_lines_are_the_records_and_filters_apply() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        for (day, env) in [(1, "prod"), (2, "dev"), (3, "prod")] {
            app.store(&run_on(
                day,
                0,
                json!({"date_code": format!("d{day}"), "environment": env}),
            ))
            .await;
        }
        let response = app
            .get("/download/pipeline_info?format=jsonl&environment=prod")
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let text = response.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let expected = app.get_json("/get_pipeline_info?environment=prod").await;
        assert_eq!(Value::Array(lines), expected["results"]);
        assert!(text.ends_with('\n'));
        // No match: an empty file (CSV keeps its header).
        let empty = app
            .get("/download/pipeline_info?environment=none")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(empty, format!("{}\n", FIELDS.join(",")));
    }
}

#[tokio::test]
async fn a_bad_format_or_filter_is_a_422() {
    let app = spawn_app().await;
    let response = app
        .get("/download/pipeline_info?format=xml&min_rowcount=x")
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let kinds: Vec<&str> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["int_parsing", "enum"]);
    assert_eq!(body["detail"][1]["loc"], json!(["query", "format"]));
    assert_eq!(body["detail"][1]["msg"], "Input should be 'csv' or 'jsonl'");
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A million-row export is streamed: the server's resident memory while
/// sending it stays within a few megabytes of what it was before.
#[tokio::test]
async fn a_million_row_csv_export_streams_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    succeeded(
        service(&[])
            .args(["gen", "--records", "1000000", "--seed", "7", "--out"])
            .arg(&path),
    );
    let path_text = path.to_str().unwrap();
    let service = start_service(&[("PIPELINE_JSONL_PATH", path_text)]);
    let client = reqwest::Client::new();
    let url = format!("{}/download/pipeline_info?format=csv", service.address);
    let pid = service.child.id();
    // Warm up (threads, buffers), then take the baseline.
    let probe = client.get(format!("{}/get_pipeline_info?limit=1", service.address));
    let total = probe.send().await.unwrap().json::<Value>().await.unwrap()["total"]
        .as_u64()
        .unwrap();
    assert!(total > 990_000, "{total}");
    let before = resident_kib(pid);
    let mut body = client.get(&url).send().await.unwrap().bytes_stream();
    let (mut rows, mut peak, mut chunks) = (0u64, before, 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        chunks += 1;
        if chunks % 64 == 0 {
            peak = peak.max(resident_kib(pid));
        }
    }
    peak = peak.max(resident_kib(pid));
    // Generated values hold no newlines: one line per row plus the header.
    assert_eq!(rows, total + 1);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 32,
        "resident memory grew by {growth_mib} MiB while exporting (before {before} KiB, peak {peak} KiB)"
    );
}

/// The single row of a CSV export, by column name.
async fn only_row(app: &crate::helpers::TestApp) -> std::collections::HashMap<String, String> {
    let text = app
        .get("/download/pipeline_info?format=csv")
        .await
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{text}");
    header
        .iter()
        .zip(rows[0].iter())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn formula_run() -> Value {
    run_on(
        1,
        0,
        json!({
            "pipeline_name": "=HYPERLINK(\"http://evil.example\",\"open\")",
            "output_file": "+cmd|' /C calc'!A0",
            "log_file": "@SUM(1+1)",
            "elapsed_human": "-2+3",
            "script_name": "\tindent",
            "environment": "\rreturn",
            "pipeline_type": "batch=nightly",
            "rowcount": -5,
            "elapsed_seconds": -1.5,
            "pid": -1,
        }),
    )
}

#[tokio::test]
async fn csv_cells_that_would_run_as_formulas_are_neutralised_but_numbers_are_not() {
    let app = spawn_app().await;
    app.store(&formula_run()).await;
    let row = only_row(&app).await;
    for (field, expected) in [
        (
            "pipeline_name",
            "'=HYPERLINK(\"http://evil.example\",\"open\")",
        ),
        ("output_file", "'+cmd|' /C calc'!A0"),
        ("log_file", "'@SUM(1+1)"),
        ("elapsed_human", "'-2+3"),
        ("script_name", "'\tindent"),
        ("environment", "'\rreturn"),
        ("pipeline_type", "batch=nightly"),
        ("rowcount", "-5"),
        ("elapsed_seconds", "-1.5"),
        ("pid", "-1"),
        ("start_utc", "2025-08-01T00:00:00Z"),
    ] {
        assert_eq!(row[field], expected, "{field}");
    }
    let jsonl = app
        .get("/download/pipeline_info?format=jsonl")
        .await
        .text()
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(stored["log_file"], "@SUM(1+1)", "JSON Lines keeps the data");
}

#[tokio::test]
async fn the_csv_formula_rule_can_be_turned_off() {
    let raw = pipeline_service::config::RawSettings {
        csv_neutralise_formulas: Some("false".into()),
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(None, raw).await;
    app.store(&formula_run()).await;
    let row = only_row(&app).await;
    assert_eq!(row["log_file"], "@SUM(1+1)");
    assert_eq!(row["elapsed_human"], "-2+3");
    assert_eq!(row["rowcount"], "-5");
}

#[tokio::test]
async fn a_cursor_and_a_limit_export_exactly_one_page() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        for hour in 0..7 {
            app.store(&run_on(
                1,
                hour,
                json!({"date_code": format!("h{hour}"), "environment": "prod"}),
            ))
            .await;
        }
        app.store(&run_on(
            1,
            9,
            json!({"date_code": "other", "environment": "dev"}),
        ))
        .await;
        let filters = "environment=prod";
        let first = app
            .get_json(&format!("/get_pipeline_info?{filters}&cursor=&limit=3"))
            .await;
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let second = app
            .get_json(&format!(
                "/get_pipeline_info?{filters}&cursor={cursor}&limit=3"
            ))
            .await;
        let export = |query: String| {
            let app = &app;
            async move {
                let response = app.get(&format!("/download/pipeline_info?{query}")).await;
                assert_eq!(response.status(), 200, "{query}");
                csv_column(&response.text().await.unwrap(), "date_code")
            }
        };
        let codes = |page: &Value| -> Vec<String> {
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["date_code"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            export(format!("{filters}&cursor=&limit=3")).await,
            codes(&first)
        );
        assert_eq!(
            export(format!("{filters}&cursor={cursor}&limit=3")).await,
            codes(&second)
        );
        assert_eq!(codes(&second), ["h3", "h2", "h1"]);
        // A cursor alone: everything after it; a limit alone: the newest runs.
        assert_eq!(
            export(format!("{filters}&cursor={cursor}")).await,
            ["h3", "h2", "h1", "h0"]
        );
        assert_eq!(export("limit=2".into()).await, ["other", "h6"]);
        // A cursor issued for other filters, or a bad limit, is refused.
        for query in [format!("cursor={cursor}"), format!("{filters}&limit=0")] {
            let response = app.get(&format!("/download/pipeline_info?{query}")).await;
            assert_eq!(response.status(), 422, "{query}");
        }
    }
}

#[tokio::test]
async fn a_limit_longer_than_one_read_step_is_kept_exactly() {
    // More runs than the export reads per step (2000), so the limit is
    // counted across steps.
    let lines: String = (0..4500u32)
        .map(|i| {
            let mut record = run_on(1 + i % 28, i % 24, json!({}));
            record["date_code"] = json!(format!("r{i}"));
            format!("{record}\n")
        })
        .collect();
    let app = crate::helpers::spawn_app_with_file(&lines).await;
    for limit in [1999, 2000, 2001, 4100, 5000] {
        let response = app
            .get(&format!("/download/pipeline_info?limit={limit}"))
            .await;
        let codes = csv_column(&response.text().await.unwrap(), "date_code");
        assert_eq!(codes.len(), limit.min(4500) as usize, "limit={limit}");
    }
}

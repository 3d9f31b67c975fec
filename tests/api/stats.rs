//! `GET /pipelines/stats` over crafted histories: every statistic and flag.

use serde_json::{json, Value};

use pipeline_service::config::RawSettings;

use crate::helpers::{every_store, run_on, spawn_app_with};

fn approx(value: &Value, expected: f64) {
    let got = value.as_f64().unwrap_or(f64::NAN);
    assert!((got - expected).abs() < 1e-6, "{got} != {expected}");
}

#[tokio::test]
async fn percentiles_staleness_and_anomalies_of_crafted_histories() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        // Hourly runs of ~100 s and 500 rows; the latest takes 300 s and loads nothing.
        let durations = [100, 102, 98, 101, 99, 100, 103, 97, 100, 300];
        for (hour, seconds) in durations.iter().enumerate() {
            let rows = if hour == 9 { 0 } else { 500 };
            app.store(&run_on(
                1,
                hour as u32,
                json!({"pipeline_name": "steady", "elapsed_seconds": seconds, "rowcount": rows}),
            ))
            .await;
        }
        // Too few runs to judge.
        for day in [2, 3, 4] {
            app.store(&run_on(
                day,
                0,
                json!({"pipeline_name": "young", "rowcount": day}),
            ))
            .await;
        }
        let answer = app.get_json("/pipelines/stats").await;
        let groups = answer["pipelines"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        let young = &groups[0];
        assert_eq!(young["pipeline_name"], "young", "latest run first");
        assert_eq!(young["runs"], 3);
        assert_eq!(young["stale"], false, "fewer than 5 runs");
        assert_eq!(young["duration_anomaly"], false);
        assert_eq!(young["duration_z"], Value::Null, "baseline too short");
        approx(&young["typical_interval_seconds"], 86_400.0);
        let steady = &groups[1];
        assert_eq!(steady["runs"], 10);
        assert_eq!(steady["last_run"], "2025-08-01T09:00:00Z");
        approx(&steady["p50_elapsed_seconds"], 100.0);
        approx(&steady["p95_elapsed_seconds"], 211.35);
        approx(&steady["p99_elapsed_seconds"], 282.27);
        approx(&steady["max_elapsed_seconds"], 300.0);
        approx(&steady["median_rowcount"], 500.0);
        assert_eq!(steady["zero_row_runs"], 1);
        approx(&steady["typical_interval_seconds"], 3600.0);
        // Last run in 2025, hourly cadence: long overdue.
        assert_eq!(steady["stale"], true);
        assert!(steady["seconds_since_last_run"].as_f64().unwrap() > 7200.0);
        // Baseline: median 100, MAD 1 → z = 0.6745 × 200.
        approx(&steady["duration_z"], 134.9);
        assert_eq!(steady["duration_anomaly"], true);
        // Constant 500 rows, then 0: no spread, any departure is an anomaly.
        assert_eq!(steady["rowcount_z"], Value::Null);
        assert_eq!(steady["rowcount_anomaly"], true);
        // The same flags as gauges.
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let value = |name: &str, pipeline: &str| {
            metrics
                .lines()
                .find(|l| {
                    l.starts_with(&format!("{name}{{"))
                        && l.contains(&format!("pipeline_name=\"{pipeline}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(value("pipeline_stale", "steady").as_deref(), Some("1"));
        assert_eq!(
            value("pipeline_duration_anomaly", "steady").as_deref(),
            Some("1")
        );
        assert_eq!(
            value("pipeline_rowcount_anomaly", "steady").as_deref(),
            Some("1")
        );
        assert_eq!(value("pipeline_stale", "young").as_deref(), Some("0"));
    }
}

#[tokio::test]
async fn filters_narrow_the_runs_and_bad_ones_are_422() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        for hour in 0..6 {
            app.store(&run_on(
                1,
                hour,
                json!({"pipeline_name": "a", "environment": "prod"}),
            ))
            .await;
            app.store(&run_on(
                1,
                hour,
                json!({"pipeline_name": "b", "environment": "dev"}),
            ))
            .await;
        }
        let prod = app.get_json("/pipelines/stats?environment=prod").await;
        assert_eq!(prod["pipelines"].as_array().unwrap().len(), 1);
        assert_eq!(prod["pipelines"][0]["pipeline_name"], "a");
        let window = app
            .get_json("/pipelines/stats?pipeline_name=b&start_utc=2025-08-01T03:00:00Z")
            .await;
        assert_eq!(window["pipelines"][0]["runs"], 3);
        // Two runs before the latest: too short a baseline to judge.
        assert_eq!(window["pipelines"][0]["duration_anomaly"], false);
        let empty = app.get_json("/pipelines/stats?pipeline_name=none").await;
        assert_eq!(empty, json!({"pipelines": []}));
        let response = app.get("/pipelines/stats?start_utc=yesterday").await;
        assert_eq!(response.status(), 422);
    }
}

#[tokio::test]
async fn recent_lists_the_latest_runs_with_their_marks_only_when_asked() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        // Hourly runs of 100 s and 500 rows; the latest takes 300 s and loads nothing.
        for hour in 0..8u32 {
            let (seconds, rows) = if hour == 7 { (300, 0) } else { (100, 500) };
            app.store(&run_on(
                1,
                hour,
                json!({"pipeline_name": "steady", "elapsed_seconds": seconds, "rowcount": rows}),
            ))
            .await;
        }
        let plain = app.get_json("/pipelines/stats").await;
        assert!(plain["pipelines"][0].get("recent").is_none());
        let none = app.get_json("/pipelines/stats?recent=0").await;
        assert!(none["pipelines"][0].get("recent").is_none());
        let answer = app.get_json("/pipelines/stats?recent=3").await;
        let group = &answer["pipelines"][0];
        assert_eq!(
            group["recent"],
            json!([
                {"start_utc": "2025-08-01T05:00:00Z", "elapsed_seconds": 100.0, "rowcount": 500,
                 "duration_anomaly": false, "rowcount_anomaly": false},
                {"start_utc": "2025-08-01T06:00:00Z", "elapsed_seconds": 100.0, "rowcount": 500,
                 "duration_anomaly": false, "rowcount_anomaly": false},
                {"start_utc": "2025-08-01T07:00:00Z", "elapsed_seconds": 300.0, "rowcount": 0,
                 "duration_anomaly": true, "rowcount_anomaly": true},
            ])
        );
        assert_eq!(group["duration_anomaly"], true);
        // More than the group has: all of them.
        let all = app.get_json("/pipelines/stats?recent=100").await;
        assert_eq!(all["pipelines"][0]["recent"].as_array().unwrap().len(), 8);
        for bad in ["101", "-1", "x"] {
            let response = app.get(&format!("/pipelines/stats?recent={bad}")).await;
            assert_eq!(response.status(), 422, "recent={bad}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["detail"][0]["loc"], json!(["query", "recent"]));
        }
    }
}

#[tokio::test]
async fn each_recent_run_is_judged_against_a_full_baseline_before_it() {
    // A baseline of five runs: the earliest of three recent runs needs the
    // five before it, seven more than the latest run alone needs.
    let app = spawn_app_with(
        None,
        RawSettings {
            baseline_runs: Some("5".into()),
            ..Default::default()
        },
    )
    .await;
    for hour in 0..10u32 {
        let seconds = if hour == 7 { 300 } else { 100 };
        app.store(&run_on(
            1,
            hour,
            json!({"pipeline_name": "steady", "elapsed_seconds": seconds}),
        ))
        .await;
    }
    let answer = app.get_json("/pipelines/stats?recent=3").await;
    let marks: Vec<&Value> = answer["pipelines"][0]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| &run["duration_anomaly"])
        .collect();
    assert_eq!(
        marks,
        [&json!(true), &json!(false), &json!(false)],
        "run 7 against runs 2-6, run 8 against 3-7, run 9 against 4-8"
    );
}

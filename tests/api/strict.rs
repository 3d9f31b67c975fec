//! Opt-in strict validation and allowed values, through HTTP.

use pipeline_service::config::RawSettings;
use serde_json::{json, Value};

use crate::helpers::{run, spawn_app, spawn_app_with};

fn kinds(body: &Value) -> Vec<(Value, String)> {
    body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["loc"].clone(), e["type"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn strict_mode_refuses_reversed_times_negatives_and_unknown_fields() {
    let raw = RawSettings {
        strict_validation: Some("true".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    let bad = run(json!({
        "end_utc": "2000-01-01T00:00:00Z",
        "rowcount": -5,
        "colour": "blue",
    }));
    let response = app.post_run(&bad).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        kinds(&body),
        [
            (json!(["body", "end_utc"]), "value_error".to_owned()),
            (json!(["body", "rowcount"]), "greater_than_equal".to_owned()),
            (json!(["body", "colour"]), "extra_forbidden".to_owned()),
        ]
    );
    assert_eq!(body["detail"][2]["msg"], "Extra inputs are not permitted");
    assert_eq!(body["detail"][2]["input"], "blue");
    assert!(app.file_lines().is_empty());
    // A valid record still goes in; bulk items keep their key member.
    app.store(&run(json!({}))).await;
    let mut item = run(json!({"date_code": "x"}));
    item["_idempotency_key"] = json!("k");
    let items = json!([item, bad]);
    let response = app
        .client
        .post(format!("{}/pipelines/bulk", app.address))
        .json(&items)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["results"][0]["status"], 201, "{answer}");
    assert_eq!(answer["results"][1]["status"], 422);
    assert_eq!(
        answer["results"][1]["errors"][2]["loc"],
        json!(["body", 1, "colour"])
    );
}

#[tokio::test]
async fn the_default_stays_lenient() {
    let app = spawn_app().await;
    app.store(&run(
        json!({"end_utc": "2000-01-01T00:00:00Z", "rowcount": -5, "colour": "blue"}),
    ))
    .await;
}

#[tokio::test]
async fn allowed_values_are_enforced_and_documented_as_enums() {
    let raw = RawSettings {
        allowed_environments: Some("prod, dev".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    let response = app.post_run(&run(json!({"environment": "staging"}))).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["type"], "enum");
    assert_eq!(body["detail"][0]["msg"], "Input should be 'prod' or 'dev'");
    assert_eq!(body["detail"][0]["ctx"]["expected"], "'prod' or 'dev'");
    app.store(&run(json!({"environment": "dev"}))).await;
    app.store(&run(json!({"environment": null}))).await;
    // Bulk items take the same rule (fast path included).
    let items = json!([
        run(json!({"environment": "prod"})),
        run(json!({"environment": "qa"}))
    ]);
    let answer: Value = app
        .client
        .post(format!("{}/pipelines/bulk", app.address))
        .json(&items)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["results"][0]["status"], 201);
    assert_eq!(answer["results"][1]["errors"][0]["type"], "enum");
    let doc = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for request in ["PipelineInfoInput", "BulkItem"] {
        let property = &schemas[request]["properties"]["environment"];
        assert_eq!(property["enum"], json!(["prod", "dev", null]), "{request}");
        let untouched = &schemas[request]["properties"]["pipeline_type"];
        assert!(untouched.get("enum").is_none(), "{request}");
    }
    // Answers may hold values stored before the setting: not restricted.
    let answered = &schemas["PipelineInfo"]["properties"]["environment"];
    assert!(answered.get("enum").is_none());
}

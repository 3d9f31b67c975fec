//! Every 422 shape of the contract, with its exact type, loc and msg.

use serde_json::{json, Value};

use crate::helpers::{run, spawn_app, TestApp, RECORD_FIELDS};

async fn detail_of_post(app: &TestApp, body: &Value) -> Vec<Value> {
    let response = app.post_run(body).await;
    assert_eq!(response.status(), 422, "{body}");
    let answer: Value = response.json().await.unwrap();
    answer["detail"].as_array().unwrap().clone()
}

async fn detail_of_query(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/get_pipeline_info?{query}")).await;
    assert_eq!(response.status(), 422, "{query}");
    let answer: Value = response.json().await.unwrap();
    answer["detail"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_empty_object_lists_every_missing_required_field_in_order() {
    let app = spawn_app().await;
    let detail = detail_of_post(&app, &json!({})).await;
    let fields: Vec<&str> = detail
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    // The eleven required fields, in field order.
    assert_eq!(fields, RECORD_FIELDS[..11]);
    for entry in &detail {
        assert_eq!(entry["type"], "missing");
        assert_eq!(entry["msg"], "Field required");
        assert_eq!(entry["input"], json!({}));
        assert_eq!(entry["loc"][0], "body");
    }
}

#[tokio::test]
async fn each_field_error_has_pydantic_type_and_message() {
    let app = spawn_app().await;
    let cases = [
        ("rowcount", json!("abc"), "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        ("rowcount", json!(8543.5), "int_from_float", "Input should be a valid integer, got a number with a fractional part"),
        ("pid", json!([1]), "int_type", "Input should be a valid integer"),
        ("pid", json!(null), "int_type", "Input should be a valid integer"),
        ("elapsed_seconds", json!("fast"), "float_parsing", "Input should be a valid number, unable to parse string as a number"),
        ("elapsed_seconds", json!({}), "float_type", "Input should be a valid number"),
        ("elapsed_seconds", json!("nan"), "finite_number", "Input should be a finite number"),
        ("elapsed_seconds", json!("-inf"), "finite_number", "Input should be a finite number"),
        ("elapsed_human", json!(5), "string_type", "Input should be a valid string"),
        ("date_code", json!(20250808), "string_type", "Input should be a valid string"),
        ("pipeline_name", json!(true), "string_type", "Input should be a valid string"),
        ("start_utc", json!("2025/08/14"), "datetime_from_date_parsing", "Input should be a valid datetime or date, invalid date separator, expected `-`"),
        ("start_utc", json!("2025-8-14"), "datetime_from_date_parsing", "Input should be a valid datetime or date, input is too short"),
        ("start_utc", json!(" 2025-08-14"), "datetime_from_date_parsing", "Input should be a valid datetime or date, invalid character in year"),
        ("start_utc", json!("2025-08-14T25:00:00"), "datetime_from_date_parsing", "Input should be a valid datetime or date, unexpected extra characters at the end of the input"),
        ("start_utc", json!("2025-08-14T10:00:00+05"), "datetime_from_date_parsing", "Input should be a valid datetime or date, unexpected extra characters at the end of the input"),
        ("end_local", json!(false), "datetime_type", "Input should be a valid datetime"),
    ];
    for (field, value, kind, msg) in cases {
        let detail = detail_of_post(&app, &run(json!({ field: value.clone() }))).await;
        assert_eq!(detail.len(), 1, "{field}={value}");
        assert_eq!(detail[0]["type"], kind, "{field}={value}");
        assert_eq!(detail[0]["msg"], msg, "{field}={value}");
        assert_eq!(detail[0]["loc"], json!(["body", field]));
        assert_eq!(detail[0]["input"], value);
    }
    let detail = detail_of_post(&app, &run(json!({"start_utc": "nope"}))).await;
    assert_eq!(detail[0]["ctx"], json!({"error": "input is too short"}));
}

#[tokio::test]
async fn several_problems_come_back_together_in_field_order() {
    let app = spawn_app().await;
    let mut body = run(json!({"rowcount": "x", "start_local": "bad", "environment": 3}));
    body.as_object_mut().unwrap().remove("log_file");
    let detail = detail_of_post(&app, &body).await;
    let summary: Vec<(String, String)> = detail
        .iter()
        .map(|e| {
            (
                e["loc"][1].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "start_local".to_owned(),
                "datetime_from_date_parsing".to_owned()
            ),
            ("rowcount".to_owned(), "int_parsing".to_owned()),
            ("log_file".to_owned(), "missing".to_owned()),
            ("environment".to_owned(), "string_type".to_owned()),
        ]
    );
    assert_eq!(
        detail[2]["input"], body,
        "a missing field reports the whole body"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_objects() {
    let app = spawn_app().await;
    let response = app.post_raw("{\"a\": }", Some("application/json")).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": [{"type": "json_invalid", "loc": ["body", 6], "msg": "JSON decode error",
                           "input": {}, "ctx": {"error": "Expecting value"}}]})
    );
    let response = app.post_raw("[1, 2]", Some("application/json")).await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": [{"type": "model_attributes_type", "loc": ["body"],
                           "msg": "Input should be a valid dictionary or object to extract fields from",
                           "input": [1, 2]}]})
    );
    let response = app.post_raw("", Some("application/json")).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]})
    );
    let response = app.post_raw("null", None).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"][0]["type"],
        "missing"
    );
    // A JSON text sent as text/plain is not parsed, as in FastAPI.
    let sample = include_str!("../../sample_record.json");
    let response = app.post_raw(sample, Some("text/plain")).await;
    assert_eq!(response.status(), 422);
    let detail = response.json::<Value>().await.unwrap();
    assert_eq!(detail["detail"][0]["type"], "model_attributes_type");
    // Without a content type the body is read as JSON.
    assert_eq!(app.post_raw(sample, None).await.status(), 201);
}

#[tokio::test]
async fn query_parameter_errors() {
    let app = spawn_app().await;
    let cases = [
        ("limit=0", "limit", "greater_than_equal", "Input should be greater than or equal to 1", Some(json!({"ge": 1}))),
        ("limit=10001", "limit", "less_than_equal", "Input should be less than or equal to 10000", Some(json!({"le": 10000}))),
        ("offset=-1", "offset", "greater_than_equal", "Input should be greater than or equal to 0", Some(json!({"ge": 0}))),
        ("limit=ten", "limit", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", None),
        ("limit=", "limit", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", None),
        ("min_rowcount=1.5", "min_rowcount", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", None),
        ("max_rowcount=x", "max_rowcount", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", None),
        ("all_data=maybe", "all_data", "bool_parsing", "Input should be a valid boolean, unable to interpret input", None),
        ("start_utc=yesterday", "start_utc", "datetime_from_date_parsing", "Input should be a valid datetime or date, input is too short", Some(json!({"error": "input is too short"}))),
        ("end_utc=2025-08-14T25:00", "end_utc", "datetime_from_date_parsing", "Input should be a valid datetime or date, unexpected extra characters at the end of the input", Some(json!({"error": "unexpected extra characters at the end of the input"}))),
    ];
    for (query, name, kind, msg, ctx) in cases {
        let detail = detail_of_query(&app, query).await;
        assert_eq!(detail.len(), 1, "{query}");
        let entry = &detail[0];
        assert_eq!(entry["type"], kind, "{query}");
        assert_eq!(entry["msg"], msg, "{query}");
        assert_eq!(entry["loc"], json!(["query", name]), "{query}");
        let raw = query.split_once('=').unwrap().1;
        assert_eq!(entry["input"], raw, "{query}");
        match ctx {
            Some(ctx) => assert_eq!(entry["ctx"], ctx, "{query}"),
            None => assert!(entry.get("ctx").is_none(), "{query}"),
        }
    }
}

#[tokio::test]
async fn all_query_problems_are_reported_at_once_in_parameter_order() {
    let app = spawn_app().await;
    let detail = detail_of_query(
        &app,
        "all_data=x&offset=-5&limit=0&end_utc=x&start_utc=x&min_rowcount=a",
    )
    .await;
    let names: Vec<&str> = detail
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "start_utc",
            "end_utc",
            "min_rowcount",
            "limit",
            "offset",
            "all_data"
        ]
    );
}

#[tokio::test]
async fn limit_and_offset_are_checked_even_with_all_data() {
    let app = spawn_app().await;
    let detail = detail_of_query(&app, "all_data=true&limit=0").await;
    assert_eq!(detail[0]["loc"], json!(["query", "limit"]));
}

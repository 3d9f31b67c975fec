//! Records are written byte for byte in the model's member order, wherever
//! they appear: answers, stored lines, exports and the OpenAPI document.

use std::collections::HashMap;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::helpers::{run, spawn_app, spawn_app_with_file, TestApp, RECORD_FIELDS};

/// `sample_record.json` as the service writes it.
const STORED: &str = concat!(
    r#"{"start_local":"2025-08-08T05:07:01","end_local":"2025-08-08T05:29:06","#,
    r#""start_utc":"2025-08-08T12:07:01Z","end_utc":"2025-08-08T12:29:06Z","#,
    r#""elapsed_seconds":1325.0,"elapsed_human":"22m 5s","#,
    r#""output_file":"/data/pipeline/sales_daily/output-20250808.csv","rowcount":8543,"#,
    r#""log_file":"/data/logs/sales_daily-20250808_050701.log","pid":48213,"#,
    r#""date_code":"20250808_050701","pipeline_name":"sales_daily","#,
    r#""script_name":"sales_daily.py","pipeline_type":"batch","environment":"prod","#,
    r#""archived_file":null}"#
);

/// The member names of a JSON object, in the order the text has them
/// (read without building a map, so no map type can reorder them).
fn member_names(text: &str) -> Vec<String> {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                names.push(name);
            }
            Ok(names)
        }
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.deserialize_map(Names).expect("a JSON object")
}

/// The raw text of the member at `path` inside the JSON object `text`.
fn raw_member(text: &str, path: &[&str]) -> String {
    let mut current = text.to_owned();
    for name in path {
        let members: HashMap<String, Box<RawValue>> =
            serde_json::from_str(&current).expect("a JSON object");
        current = members
            .get(*name)
            .unwrap_or_else(|| panic!("no member {name}"))
            .get()
            .to_owned();
    }
    current
}

#[test]
fn the_expected_text_itself_follows_the_contract_table() {
    assert_eq!(member_names(STORED), RECORD_FIELDS);
}

#[tokio::test]
async fn a_posted_record_is_answered_stored_and_served_in_model_order() {
    let app = spawn_app().await;
    let response = app
        .post_raw(include_str!("../../sample_record.json"), None)
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), STORED, "the POST answer");
    assert_eq!(app.file_lines(), [STORED], "the stored line");
    let page = app.get("/get_pipeline_info").await.text().await.unwrap();
    assert_eq!(
        page,
        format!(r#"{{"total":1,"count":1,"results":[{STORED}],"pipelines":["sales_daily"]}}"#),
        "the GET page"
    );
    let export = app.get("/download/pipeline_info?format=jsonl").await;
    assert_eq!(export.text().await.unwrap(), format!("{STORED}\n"));
    let export = app.get("/download/pipeline_info?format=csv").await;
    let csv = export.text().await.unwrap();
    assert_eq!(
        csv.lines().next(),
        Some(RECORD_FIELDS.join(",").as_str()),
        "the CSV header"
    );
}

#[tokio::test]
async fn bulk_items_are_stored_in_model_order() {
    let app = spawn_app().await;
    let sample = include_str!("../../sample_record.json");
    let compact = run(json!({})).to_string();
    for (body, content_type) in [
        (format!("[{sample}]"), "application/json"),
        (format!("{compact}\n"), "application/x-ndjson"),
    ] {
        let (status, _) = app.post_bytes("/pipelines/bulk", body, content_type).await;
        assert_eq!(status, 200);
    }
    assert_eq!(app.file_lines(), [STORED, STORED]);
}

#[tokio::test]
async fn lines_in_another_member_order_are_read_and_served_in_model_order() {
    // Written before records followed the model's order, or by hand.
    let mut shuffled: Vec<(String, Value)> = serde_json::from_str::<HashMap<String, Value>>(STORED)
        .unwrap()
        .into_iter()
        .collect();
    shuffled.sort_by(|a, b| b.0.cmp(&a.0));
    let line = format!(
        "{{{}}}\n",
        shuffled
            .iter()
            .map(|(k, v)| format!("{}: {v}", Value::from(k.as_str())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_ne!(member_names(&line), RECORD_FIELDS);
    let app = spawn_app_with_file(&line).await;
    let page = app.get("/get_pipeline_info").await.text().await.unwrap();
    assert_eq!(raw_member(&page, &["results"]), format!("[{STORED}]"));
}

#[tokio::test]
async fn missing_fields_are_listed_in_model_order_with_the_body_as_sent() {
    let app: TestApp = spawn_app().await;
    // pydantic echoes the body as it arrived, members in the order sent.
    let response = app
        .post_raw(r#"{"zeta": 1, "output_file": "/o", "alpha": 2}"#, None)
        .await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    let detail: Vec<Value> = serde_json::from_str(&raw_member(&text, &["detail"])).unwrap();
    let missing: Vec<&str> = detail
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    let required: Vec<&str> = RECORD_FIELDS[..11]
        .iter()
        .copied()
        .filter(|f| *f != "output_file")
        .collect();
    assert_eq!(missing, required);
    let first = raw_member(&text, &["detail"]);
    let first: Vec<Box<RawValue>> = serde_json::from_str(&first).unwrap();
    assert_eq!(
        raw_member(first[0].get(), &["input"]),
        r#"{"zeta":1,"output_file":"/o","alpha":2}"#
    );
}

#[tokio::test]
async fn the_openapi_document_lists_record_properties_in_model_order() {
    let app = spawn_app().await;
    let document = app.get("/openapi.json").await.text().await.unwrap();
    let schema = raw_member(&document, &["components", "schemas", "PipelineInfo"]);
    assert_eq!(
        member_names(&raw_member(&schema, &["properties"])),
        RECORD_FIELDS
    );
    assert_eq!(
        member_names(&raw_member(&schema, &["example"])),
        RECORD_FIELDS
    );
    let required: Vec<String> = serde_json::from_str(&raw_member(&schema, &["required"])).unwrap();
    assert_eq!(required, RECORD_FIELDS[..11]);
}

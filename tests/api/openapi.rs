//! The OpenAPI document says what the service does: its datetime and
//! parameter schemas, its examples and the Swagger UI it configures.

use pipeline_service::config::RawSettings;
use serde_json::{json, Value};

use crate::helpers::{run, spawn_app, spawn_app_with, spawn_app_with_file, TestApp};

const PYTHON_FILE: &str = include_str!("../fixtures/python_written.jsonl");

/// The schema `schema` refers to, or itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            found.push((format!("{} {path}", method.to_uppercase()), operation));
        }
    }
    found
}

fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

fn example(doc: &Value, path: &str, method: &str, status: &str) -> Value {
    let response = &doc["paths"][path][method]["responses"][status];
    response["content"]["application/json"]["example"].clone()
}

#[tokio::test]
async fn datetimes_are_documented_as_they_are_answered_not_as_rfc3339() {
    let app = spawn_app_with_file(PYTHON_FILE).await;
    app.store(&run(json!({"start_utc": "2025-08-08T12:07:01.5+05:30"})))
        .await;
    let doc = app.get_json("/openapi.json").await;
    assert!(
        !doc.to_string().contains(r#""format":"date-time""#),
        "naive values are not RFC 3339 date-times"
    );
    let schemas = &doc["components"]["schemas"];
    let answered = regex::Regex::new(schemas["DateTime"]["pattern"].as_str().unwrap()).unwrap();
    let record = &schemas["PipelineInfo"]["properties"];
    let page = app.get_json("/get_pipeline_info?all_data=true").await;
    let mut seen = 0;
    for run in page["results"].as_array().unwrap() {
        for field in ["start_local", "end_local", "start_utc", "end_utc"] {
            assert_eq!(record[field]["$ref"], "#/components/schemas/DateTime");
            let value = run[field].as_str().unwrap();
            assert!(answered.is_match(value), "{field}: {value}");
            seen += 1;
        }
    }
    assert!(seen > 20);
    // Input: a text in the documented forms, or a number.
    let input = &schemas["PipelineInfoInput"]["properties"]["start_local"];
    assert_eq!(input["$ref"], "#/components/schemas/DateTimeInput");
    let choices = schemas["DateTimeInput"]["anyOf"].as_array().unwrap();
    assert_eq!(choices[0]["$ref"], "#/components/schemas/DateTimeText");
    assert!(choices[1..].iter().all(|c| c["type"] == "number"));
    let text = regex::Regex::new(schemas["DateTimeText"]["pattern"].as_str().unwrap()).unwrap();
    for accepted in [
        "2025-08-14",
        "2025-08-14 22:49:07.5+0530",
        "1748736000",
        "2024-02-29",
        "0001-01-01T00:00:00,5\u{2212}03:00",
        "-0.5e-1",
    ] {
        assert!(text.is_match(accepted), "{accepted}");
        let response = app.post_run(&run(json!({"start_local": accepted}))).await;
        assert_eq!(response.status(), 201, "{accepted}");
    }
    for refused in [
        "2025-02-29",
        "2025/08/14",
        "2025-08-14T10:00:00+05",
        " 2025-08-14",
        "0000-01-01",
        "1e5",
    ] {
        assert!(!text.is_match(refused), "{refused}");
        let response = app.post_run(&run(json!({"start_local": refused}))).await;
        assert_eq!(response.status(), 422, "{refused}");
    }
}

#[tokio::test]
async fn query_parameters_prefill_nothing_in_swagger_ui() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    for (name, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let schema = resolve(&doc, &parameter["schema"]);
            let label = format!("{name} {}", parameter["name"]);
            if parameter["in"] != "query" {
                continue; // a path value is needed anyway; an example helps
            }
            assert!(parameter.get("example").is_none(), "{label}");
            if schema.get("default").is_none() {
                assert!(schema.get("example").is_none(), "{label}");
                assert!(schema.get("examples").is_none(), "{label}");
            }
        }
    }
}

#[tokio::test]
async fn parameters_are_the_ones_read_and_typed_as_sent() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let filters = [
        "start_utc",
        "end_utc",
        "min_rowcount",
        "max_rowcount",
        "pipeline_name",
        "script_name",
        "pipeline_type",
        "environment",
    ];
    for path in [
        "/get_pipeline_info",
        "/download/pipeline_info",
        "/pipelines/stats",
    ] {
        let operation = &doc["paths"][path]["get"];
        for filter in filters {
            parameter(operation, filter);
        }
    }
    // A header is a string or absent, never null.
    let key = parameter(&doc["paths"]["/pipelines"]["post"], "Idempotency-Key");
    assert_eq!(key["schema"]["type"], "string");
    assert_eq!(key["required"], false);
    // The cursor's documented shape is what the service issues.
    let cursor = parameter(&doc["paths"]["/get_pipeline_info"]["get"], "cursor");
    let shape = resolve(&doc, &cursor["schema"])["pattern"]
        .as_str()
        .unwrap();
    let shape = regex::Regex::new(shape).unwrap();
    for _ in 0..3 {
        app.store(&run(json!({}))).await;
    }
    let page = app.get_json("/get_pipeline_info?limit=1&cursor=").await;
    let issued = page["next_cursor"].as_str().unwrap();
    assert!(shape.is_match(issued) && shape.is_match(""), "{issued}");
    assert!(!shape.is_match("bm90IGEgY3Vyc29y"));
}

/// The bounds the document gives each bounded query parameter are the
/// ones the service checks, taken from the same constants: the documented
/// extremes are accepted, one step beyond is refused naming that bound,
/// and an absent parameter means its documented default.
#[tokio::test]
async fn documented_query_bounds_are_the_ones_checked() {
    use pipeline_service::api::runs::{DEFAULT_LIMIT, MAX_LIMIT};
    use pipeline_service::domain::record::MAX_STRING_CHARS;
    use pipeline_service::stats::MAX_RECENT_RUNS;

    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let schema =
        |path: &str, name: &str| parameter(&doc["paths"][path]["get"], name)["schema"].clone();
    let limit = schema("/get_pipeline_info", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&json!(1), &json!(MAX_LIMIT), &json!(DEFAULT_LIMIT))
    );
    assert_eq!(
        schema("/pipelines/stats", "recent")["maximum"],
        json!(MAX_RECENT_RUNS)
    );
    let refusal = |answer: Value| answer["detail"][0]["ctx"].clone();
    for (path, name) in [
        ("/get_pipeline_info", "limit"),
        ("/get_pipeline_info", "offset"),
        ("/pipelines/stats", "recent"),
        ("/download/pipeline_info", "limit"),
    ] {
        let bounds = schema(path, name);
        let at = |value: i64| format!("{path}?{name}={value}");
        let min = bounds["minimum"].as_i64().unwrap();
        assert_eq!(app.get(&at(min)).await.status(), 200, "{path} {name}={min}");
        let below = app.get(&at(min - 1)).await;
        assert_eq!(below.status(), 422, "{path} {name}={}", min - 1);
        assert_eq!(refusal(below.json().await.unwrap()), json!({"ge": min}));
        let Some(max) = bounds["maximum"].as_i64().filter(|&m| m < i64::MAX) else {
            continue;
        };
        assert_eq!(app.get(&at(max)).await.status(), 200, "{path} {name}={max}");
        let above = app.get(&at(max + 1)).await;
        assert_eq!(above.status(), 422, "{path} {name}={}", max + 1);
        assert_eq!(refusal(above.json().await.unwrap()), json!({"le": max}));
    }
    let runs: Vec<Value> = (0..=DEFAULT_LIMIT).map(|_| run(json!({}))).collect();
    let body = serde_json::to_vec(&runs).unwrap();
    let (status, _) = app
        .post_bytes("/pipelines/bulk", body, "application/json")
        .await;
    assert_eq!(status, 200);
    let page = app.get_json("/get_pipeline_info").await;
    assert_eq!(page["count"], limit["default"], "the default page size");
    for path in [
        "/get_pipeline_info",
        "/download/pipeline_info",
        "/pipelines/stats",
    ] {
        for name in [
            "pipeline_name",
            "script_name",
            "pipeline_type",
            "environment",
        ] {
            let longest = schema(path, name)["maxLength"].as_u64().unwrap();
            assert_eq!(longest, MAX_STRING_CHARS as u64, "{path} {name}");
            let text = |chars: u64| "é".repeat(chars as usize);
            let fits = app.get(&format!("{path}?{name}={}", text(longest))).await;
            assert_eq!(fits.status(), 200, "{path} {name}");
            let long = app
                .get(&format!("{path}?{name}={}", text(longest + 1)))
                .await;
            assert_eq!(long.status(), 422, "{path} {name}");
            let ctx = refusal(long.json().await.unwrap());
            assert_eq!(ctx, json!({"max_length": longest}), "{path} {name}");
        }
    }
}

#[tokio::test]
async fn operation_ids_are_distinct_names() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let ids: Vec<String> = operations(&doc)
        .iter()
        .map(|(_, operation)| operation["operationId"].as_str().unwrap().to_owned())
        .collect();
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
            assert!(
                !long.starts_with(short.as_str()) || long.len() > short.len() + 1,
                "{a} and {b} differ by a letter"
            );
        }
    }
}

#[tokio::test]
async fn each_error_example_is_what_the_service_answers() {
    let keyed = spawn_app_with(
        None,
        RawSettings {
            api_keys: Some("key-one".into()),
            ..Default::default()
        },
    )
    .await;
    let doc = keyed.get_json("/openapi.json").await;
    let post = |app: &TestApp, body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let mut request = app
            .client
            .post(format!("{}/pipelines", app.address))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let answer = |response: reqwest::Response| async move {
        (
            response.status().as_u16().to_string(),
            response.json::<Value>().await.unwrap(),
        )
    };
    let sample = run(json!({})).to_string().into_bytes();
    let mut answers = vec![
        answer(post(&keyed, sample.clone(), vec![]).await.unwrap()).await,
        answer(
            post(&keyed, sample.clone(), vec![("x-api-key", "wrong")])
                .await
                .unwrap(),
        )
        .await,
    ];
    let app = spawn_app().await;
    let key = vec![("idempotency-key", "run-1")];
    post(&app, sample.clone(), key.clone()).await.unwrap();
    let other = run(json!({"rowcount": 1})).to_string().into_bytes();
    answers.push(answer(post(&app, other, key).await.unwrap()).await);
    answers.push(answer(post(&app, vec![b' '; 2 << 20], vec![]).await.unwrap()).await);
    answers.push(
        answer(
            post(&app, b"{\"a\": \"\xFF\"}".to_vec(), vec![])
                .await
                .unwrap(),
        )
        .await,
    );
    let missing_rowcount = example(&doc, "/pipelines", "post", "422")["detail"][0]["input"].clone();
    let body = missing_rowcount.to_string().into_bytes();
    answers.push(answer(post(&app, body, vec![]).await.unwrap()).await);
    let statuses: Vec<&str> = answers.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["401", "403", "409", "413", "400", "422"]);
    for (status, body) in &answers {
        assert_eq!(
            &example(&doc, "/pipelines", "post", status),
            body,
            "{status}"
        );
    }
    let query = app.get("/get_pipeline_info?limit=0").await;
    assert_eq!(
        example(&doc, "/get_pipeline_info", "get", "422"),
        query.json::<Value>().await.unwrap()
    );
    let json = "application/json";
    let broken = app.post_bytes("/pipelines/bulk", r#"[{"a": 1} {"b": 2}]"#, json);
    assert_eq!(
        broken.await.1,
        example(&doc, "/pipelines/bulk", "post", "422")
    );
    let items = json!([run(json!({})), run(json!({"rowcount": "many"}))]).to_string();
    let atomic = app
        .post_bytes("/pipelines/bulk?atomic=true", items, json)
        .await;
    assert_eq!(
        atomic,
        (409, example(&doc, "/pipelines/bulk", "post", "409"))
    );
    // Every other documented error carries its own text; only a 500 says
    // "Internal server error".
    for (name, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let Some(content) = response["content"]["application/json"].as_object() else {
                continue;
            };
            if !status.starts_with(['4', '5']) {
                continue;
            }
            let example = content.get("example").unwrap_or(&Value::Null);
            assert!(!example.is_null(), "{name} {status} has no example");
            let internal = example["detail"] == "Internal server error";
            assert_eq!(internal, status == "500", "{name} {status}");
        }
    }
}

#[tokio::test]
async fn the_record_and_stats_examples_are_real() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    // The record's example is accepted as input and answered unchanged.
    let record = schemas["PipelineInfo"]["example"].clone();
    let stored = app.store(&record).await;
    assert_eq!(stored, record);
    let stats = &schemas["PipelineStats"];
    let example: Vec<&String> = stats["example"].as_object().unwrap().keys().collect();
    let properties: Vec<&String> = stats["properties"].as_object().unwrap().keys().collect();
    assert_eq!(example, properties);
    assert_eq!(stats["example"]["environment"], "prod");
    assert!(stats["example"]["runs"].as_u64().unwrap() < 1_000_000);
}

#[tokio::test]
async fn swagger_ui_has_no_explore_bar_and_keeps_the_key() {
    let app = spawn_app().await;
    let config = app.get("/docs/swagger-initializer.js").await;
    let text = config.text().await.unwrap();
    for setting in [
        r#""layout": "BaseLayout""#,
        r#""persistAuthorization": true"#,
        r#""displayRequestDuration": true"#,
        r#""filter": true"#,
    ] {
        assert!(text.contains(setting), "{setting} in {text}");
    }
}

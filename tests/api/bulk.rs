//! `POST /pipelines/bulk` and `Idempotency-Key` through HTTP.

use std::time::{Duration, Instant};

use pipeline_service::config::RawSettings;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::helpers::{
    connect, every_store, read_answer, run, spawn_app, spawn_app_with, spawn_app_with_file,
    still_open, TestApp,
};

pub async fn post_bulk(
    app: &TestApp,
    query: &str,
    body: String,
    content_type: &str,
) -> (u16, Value) {
    app.post_bytes(&format!("/pipelines/bulk{query}"), body, content_type)
        .await
}

fn statuses(answer: &Value) -> Vec<u64> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn each_item_is_validated_and_the_valid_ones_stored_together() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let items = json!([
            run(json!({"date_code": "a"})),
            run(json!({"date_code": "b", "rowcount": "many"})),
            run(json!({"date_code": "c"})),
        ]);
        let (status, answer) = post_bulk(&app, "", items.to_string(), "application/json").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), [201, 422, 201]);
        assert_eq!(
            (answer["stored"].as_u64(), answer["failed"].as_u64()),
            (Some(2), Some(1))
        );
        let error = &answer["results"][1]["errors"][0];
        assert_eq!(error["loc"], json!(["body", 1, "rowcount"]));
        assert_eq!(error["type"], "int_parsing");
        assert_eq!(app.stored().await, 2);
        let stored = app.get_json("/get_pipeline_info").await;
        assert_eq!(stored["total"], 2);
    }
}

#[tokio::test]
async fn ndjson_lines_are_items_and_a_broken_line_fails_alone() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let body = format!(
            "{}\n\n{{\"date_code\": \n{}\n",
            run(json!({"date_code": "a"})),
            run(json!({"date_code": "c"}))
        );
        let (status, answer) = post_bulk(&app, "", body, "application/x-ndjson").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), [201, 422, 201]);
        let error = &answer["results"][1]["errors"][0];
        assert_eq!(error["type"], "json_invalid");
        assert_eq!(error["loc"][1], 1);
        assert_eq!(app.stored().await, 2);
    }
}

#[tokio::test]
async fn atomic_requests_store_all_or_nothing() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let items = json!([run(json!({"date_code": "a"})), run(json!({"pid": null}))]);
        let (status, answer) =
            post_bulk(&app, "?atomic=true", items.to_string(), "application/json").await;
        // Refused as a unit (409), with each item's outcome.
        assert_eq!(status, 409, "{answer}");
        assert_eq!(statuses(&answer), [424, 422]);
        assert_eq!(answer["stored"], 0);
        assert!(app.stored().await == 0, "nothing stored");
        let good = json!([
            run(json!({"date_code": "a"})),
            run(json!({"date_code": "b"}))
        ]);
        let (status, answer) =
            post_bulk(&app, "?atomic=1", good.to_string(), "application/json").await;
        assert_eq!((status, statuses(&answer)), (200, vec![201, 201]));
        assert_eq!(app.stored().await, 2);
    }
}

#[tokio::test]
async fn bodies_that_are_not_lists_or_too_long_are_refused() {
    let raw = RawSettings {
        max_bulk: Some("2".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    let three = json!([run(json!({})), run(json!({})), run(json!({}))]);
    let (status, answer) = post_bulk(&app, "", three.to_string(), "application/json").await;
    assert_eq!(status, 413);
    assert_eq!(
        answer["detail"],
        "Too many records: the limit is 2 per request"
    );
    let (status, answer) =
        post_bulk(&app, "", run(json!({})).to_string(), "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["type"], "list_type");
    let (status, answer) = post_bulk(&app, "", "[1,".into(), "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["type"], "json_invalid");
    let (status, answer) = post_bulk(&app, "?atomic=maybe", "[]".into(), "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["query", "atomic"]));
    assert!(app.file_lines().is_empty());
}

async fn post_keyed(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/pipelines", app.address))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_post_with_its_key_stores_nothing_even_after_a_restart() {
    let app = spawn_app().await;
    let body = run(json!({"date_code": "once"}));
    let first = post_keyed(&app, "job-42/attempt", &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let original: Value = first.json().await.unwrap();
    let again = post_keyed(&app, "job-42/attempt", &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), original);
    let lines = app.file_lines();
    assert_eq!(lines.len(), 1);
    // The key rides in a reserved member; the record's own fields are untouched.
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["_idempotency"]["key"], "job-42/attempt");
    let mut fields = line.as_object().unwrap().clone();
    fields.remove("_idempotency");
    assert_eq!(Value::Object(fields), original);
    // A different record under the same key is refused.
    let other = post_keyed(&app, "job-42/attempt", &run(json!({"date_code": "twice"}))).await;
    assert_eq!(other.status(), 409);
    let detail: Value = other.json().await.unwrap();
    assert!(detail["detail"]
        .as_str()
        .unwrap()
        .contains("different record"));
    // A new process over the same file remembers the key.
    let restarted = spawn_app_with_file(&(lines.join("\n") + "\n")).await;
    let replay = post_keyed(&restarted, "job-42/attempt", &body).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(restarted.file_lines().len(), 1);
    // Readers see the record without the reserved member.
    let listed = restarted.get_json("/get_pipeline_info").await;
    assert_eq!(listed["results"][0], original);
}

#[tokio::test]
async fn bad_keys_are_422_and_bulk_items_carry_their_own_keys() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let response = post_keyed(&app, "has space", &run(json!({}))).await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["header", "idempotency-key"])
        );
        assert!(app.stored().await == 0);
        let mut a = run(json!({"date_code": "a"}));
        a["_idempotency_key"] = json!("item-a");
        let mut changed = run(json!({"date_code": "changed"}));
        changed["_idempotency_key"] = json!("item-a");
        let mut bad = run(json!({"date_code": "bad"}));
        bad["_idempotency_key"] = json!(7);
        let items = json!([a, a, changed, bad]);
        let (status, answer) = post_bulk(&app, "", items.to_string(), "application/json").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), [201, 201, 409, 422]);
        assert_eq!(answer["results"][1]["replayed"], true);
        assert_eq!(
            answer["results"][3]["errors"][0]["loc"],
            json!(["body", 3, "_idempotency_key"])
        );
        assert_eq!(
            (answer["stored"].as_u64(), answer["replayed"].as_u64()),
            (Some(1), Some(1))
        );
        // The single-insert endpoint sees the bulk item's key too.
        let mut single = run(json!({"date_code": "a"}));
        single.as_object_mut().unwrap().remove("_idempotency_key");
        let replay = post_keyed(&app, "item-a", &single).await;
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(app.stored().await, 1);
    }
}

#[tokio::test]
async fn a_body_over_the_bulk_byte_limit_is_413() {
    let raw = RawSettings {
        max_bulk_bytes: Some("700".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    let two = json!([run(json!({})), run(json!({}))]);
    assert!(two.to_string().len() > 700 && two.to_string().len() < 1400);
    let (status, answer) = post_bulk(&app, "", two.to_string(), "application/json").await;
    assert_eq!(status, 413);
    assert_eq!(
        answer["detail"],
        "Request body too large: the limit is 700 bytes"
    );
    let one = json!([run(json!({}))]);
    let (status, _) = post_bulk(&app, "", one.to_string(), "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(app.file_lines().len(), 1);
}

/// A bulk request whose head is sent with only `body` of its body.
async fn bulk_head(app: &TestApp, extra_headers: &str, body: &[u8]) -> tokio::net::TcpStream {
    let mut stream = connect(&app.address).await;
    let head = format!(
        "POST /pipelines/bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra_headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream
}

#[tokio::test]
async fn bulk_bodies_beyond_the_shared_memory_budget_are_refused_before_they_are_read() {
    let raw = RawSettings {
        max_bulk_bytes: Some("40000".into()),
        bulk_memory_bytes: Some("50000".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    // A slow upload holds 40 000 of the 50 000 bytes.
    let mut holder = bulk_head(&app, "Content-Length: 40000\r\n", b"[").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        // Only the head is sent: an answer proves the body was not awaited.
        let mut second = bulk_head(&app, "Content-Length: 20000\r\n", b"").await;
        let answer = read_answer(&mut second, Duration::from_secs(10))
            .await
            .expect("answered without its body");
        if answer.starts_with("HTTP/1.1 503") {
            break answer;
        }
        assert!(Instant::now() < deadline, "never refused: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.contains("Server busy, retry shortly"), "{refused}");
    // A body of unknown length is refused as soon as it outgrows the rest.
    let mut chunked = bulk_head(&app, "Transfer-Encoding: chunked\r\n", b"").await;
    let chunk = format!("4e20\r\n{}\r\n", " ".repeat(20000));
    let _ = chunked.write_all(chunk.as_bytes()).await;
    let answer = read_answer(&mut chunked, Duration::from_secs(10)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 503")),
        "{answer:?}"
    );
    // Declared over the per-request limit: 413 without reading either.
    let mut huge = bulk_head(&app, "Content-Length: 40001\r\n", b"").await;
    let answer = read_answer(&mut huge, Duration::from_secs(10)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 413")),
        "{answer:?}"
    );
    assert!(
        still_open(&mut holder).await,
        "the holder is still uploading"
    );
    drop(holder);
    // Its budget comes back once its request ends.
    let one = json!([run(json!({}))]).to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post_bulk(&app, "", one.clone(), "application/json").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the budget was not returned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.file_lines().len(), 1);
}

#[tokio::test]
async fn validation_errors_are_capped_per_item_and_per_answer_and_counted() {
    let app = spawn_app().await;
    let empties = format!("[{}]", vec!["{}"; 10_000].join(","));
    let response = app
        .client
        .post(format!("{}/pipelines/bulk", app.address))
        .header("content-type", "application/json")
        .body(empties)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // Every item still has its entry, but the errors listed are capped:
    // under 1 MB where the uncapped answer was 9.8 MB.
    assert!(text.len() < 1_000_000, "{} bytes", text.len());
    let answer: Value = serde_json::from_str(&text).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        (answer["failed"].as_u64(), results.len()),
        (Some(10_000), 10_000)
    );
    let listed: usize = results
        .iter()
        .map(|r| r["errors"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, 1000);
    let per_item = results[0]["errors"].as_array().unwrap().len();
    assert_eq!(per_item, 11, "an empty item misses 11 fields");
    assert!(results[0].get("errors_omitted").is_none());
    assert_eq!(results[9_999]["errors"], json!([]));
    assert_eq!(results[9_999]["errors_omitted"], 11);
    assert_eq!(answer["errors_omitted"], 10_000 * 11 - 1000);
}

#[tokio::test]
async fn one_item_lists_at_most_twenty_errors() {
    let raw = RawSettings {
        strict_validation: Some("true".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(None, raw).await;
    let unknown: serde_json::Map<String, Value> =
        (0..30).map(|i| (format!("extra_{i}"), json!(i))).collect();
    let body = json!([run(json!({})), Value::Object(unknown)]);
    let (status, answer) = post_bulk(&app, "", body.to_string(), "application/json").await;
    assert_eq!(status, 200);
    let item = &answer["results"][1];
    assert_eq!(item["errors"].as_array().unwrap().len(), 20);
    assert_eq!(item["errors_omitted"], 11 + 30 - 20);
    assert_eq!(answer["errors_omitted"], 21);
    assert!(answer["results"][0].get("errors").is_none(), "stored");
}

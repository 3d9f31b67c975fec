//! Authentication, limits, request ids, metrics and hostile input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pipeline_service::config::RawSettings;
use serde_json::{json, Value};

use crate::exposition::Exposition;
use crate::helpers::{column, run, run_on, spawn_app, spawn_app_with, TestApp};

async fn with_keys(for_reads: bool) -> TestApp {
    spawn_app_with(
        None,
        RawSettings {
            api_keys: Some("key-one,key-two".into()),
            api_keys_for_reads: Some(for_reads.to_string()),
            ..Default::default()
        },
    )
    .await
}

async fn post_with_key(app: &TestApp, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/pipelines", app.address))
        .json(&run(json!({})));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    request.send().await.unwrap()
}

async fn get_with_key(app: &TestApp, path: &str, key: Option<&str>) -> u16 {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn without_configured_keys_everything_is_open() {
    let app = spawn_app().await;
    assert_eq!(post_with_key(&app, None).await.status(), 201);
    assert_eq!(post_with_key(&app, Some("anything")).await.status(), 201);
}

#[tokio::test]
async fn writes_need_a_valid_key_and_reads_stay_open() {
    let app = with_keys(false).await;
    let missing = post_with_key(&app, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "APIKey");
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"detail": "Not authenticated"})
    );
    let wrong = post_with_key(&app, Some("key-three")).await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid API key"})
    );
    assert_eq!(
        post_with_key(&app, Some("key-one-")).await.status(),
        403,
        "no prefix match"
    );
    assert_eq!(post_with_key(&app, Some("key-on")).await.status(), 403);
    assert_eq!(post_with_key(&app, Some("key-one")).await.status(), 201);
    assert_eq!(post_with_key(&app, Some("key-two")).await.status(), 201);
    assert_eq!(app.file_lines().len(), 2, "refused writes stored nothing");
    for path in [
        "/get_pipeline_info",
        "/pipelines",
        "/health",
        "/metrics",
        "/openapi.json",
    ] {
        assert_eq!(get_with_key(&app, path, None).await, 200, "{path}");
    }
}

#[tokio::test]
async fn keys_of_any_length_are_compared_whole() {
    let app = with_keys(false).await;
    let long = "key-one".repeat(500);
    for wrong in ["", "k", "key-one.", "key-onf", long.as_str()] {
        assert_eq!(
            post_with_key(&app, Some(wrong)).await.status(),
            403,
            "{wrong:.20}"
        );
    }
    assert_eq!(post_with_key(&app, Some("key-two")).await.status(), 201);
    assert_eq!(app.file_lines().len(), 1);
}

#[tokio::test]
async fn reads_can_be_protected_too_but_probes_and_docs_stay_open() {
    let app = with_keys(true).await;
    for path in ["/get_pipeline_info", "/pipelines"] {
        assert_eq!(get_with_key(&app, path, None).await, 401, "{path}");
        assert_eq!(get_with_key(&app, path, Some("bad")).await, 403, "{path}");
        assert_eq!(
            get_with_key(&app, path, Some("key-two")).await,
            200,
            "{path}"
        );
    }
    for path in ["/", "/health", "/metrics", "/openapi.json"] {
        assert_eq!(get_with_key(&app, path, None).await, 200, "{path}");
    }
}

#[tokio::test]
async fn the_openapi_document_declares_the_api_key_scheme() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-API-Key");
    assert_eq!(
        doc["paths"]["/pipelines"]["post"]["security"][0],
        json!({"api_key": []})
    );
    for status in ["401", "403", "413", "503"] {
        assert!(
            doc["paths"]["/pipelines"]["post"]["responses"][status].is_object(),
            "{status}"
        );
    }
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413_and_store_nothing() {
    let app = spawn_app_with(
        None,
        RawSettings {
            max_body_bytes: Some("2048".into()),
            ..Default::default()
        },
    )
    .await;
    let big = run(json!({"output_file": "x".repeat(3000)}));
    let response = app.post_run(&big).await;
    assert_eq!(response.status(), 413);
    let detail = response.json::<Value>().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("2048"),
        "{detail}"
    );
    assert!(app.file_lines().is_empty());
    assert_eq!(app.post_run(&run(json!({}))).await.status(), 201);
}

#[tokio::test]
async fn strings_over_4096_characters_are_refused() {
    let app = spawn_app().await;
    let at_limit = "é".repeat(4096);
    let stored = app.store(&run(json!({"log_file": at_limit}))).await;
    assert_eq!(stored["log_file"].as_str().unwrap().chars().count(), 4096);
    let over = "a".repeat(4097);
    let response = app.post_run(&run(json!({"pipeline_name": over}))).await;
    assert_eq!(response.status(), 422);
    let detail = response.json::<Value>().await.unwrap()["detail"][0].clone();
    assert_eq!(detail["type"], "string_too_long");
    assert_eq!(detail["msg"], "String should have at most 4096 characters");
    assert_eq!(detail["ctx"], json!({"max_length": 4096}));
    assert_eq!(detail["loc"], json!(["body", "pipeline_name"]));
    let query = format!("/get_pipeline_info?environment={}", "e".repeat(4097));
    assert_eq!(app.get(&query).await.status(), 422);
}

/// A request whose body never finishes: it holds its place until dropped.
fn stalled_post(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /pipelines HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"start"
    )
    .unwrap();
    stream.flush().unwrap();
    stream
}

#[tokio::test]
async fn excess_concurrent_requests_are_shed_with_retry_after() {
    let app = spawn_app_with(
        None,
        RawSettings {
            max_concurrency: Some("1".into()),
            ..Default::default()
        },
    )
    .await;
    let stalled = stalled_post(&app.address);
    // Wait until the stalled request holds the only slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let response = app.get("/get_pipeline_info").await;
        if response.status() == 503 {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "the second request was never shed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(
        shed.json::<Value>().await.unwrap(),
        json!({"detail": "Server busy, retry shortly"})
    );
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "probes are never shed"
    );
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/get_pipeline_info").await.status() != 200 {
        assert!(Instant::now() < deadline, "the slot was not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_request_that_takes_too_long_answers_503() {
    let app = spawn_app_with(
        None,
        RawSettings {
            request_timeout_s: Some("1".into()),
            ..Default::default()
        },
    )
    .await;
    let mut stalled = stalled_post(&app.address);
    let answer = tokio::task::spawn_blocking(move || {
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        let mut buffer = [0u8; 4096];
        let read = stalled.read(&mut buffer).unwrap();
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        text
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Request timed out"), "{answer}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let echoed = app
        .client
        .get(format!("{}/health", app.address))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    let generated = app.get("/get_pipeline_info?limit=0").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let other = app.get("/nowhere").await;
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
}

#[tokio::test]
async fn request_ids_that_are_long_or_odd_are_replaced() {
    let app = spawn_app().await;
    let echoed = |given: String| {
        let request = app
            .client
            .get(format!("{}/health", app.address))
            .header("x-request-id", given);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let longest = "a".repeat(128);
    assert_eq!(echoed(longest.clone()).await, longest);
    assert_eq!(echoed("Trace_1.2-3".into()).await, "Trace_1.2-3");
    for odd in [
        "a".repeat(129),
        "x".repeat(60_000),
        "bad id<script>".into(),
        "line\u{2028}break".into(),
        "".into(),
    ] {
        let answer = echoed(odd.clone()).await;
        assert_eq!(answer.len(), 36, "a fresh UUID for {odd:.40}: {answer}");
        assert!(answer.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }
    let twice = app
        .client
        .get(format!("{}/health", app.address))
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.headers()["x-request-id"].len(), 36);
}

fn scrape(text: &str) -> Exposition {
    crate::exposition::parse(text).expect("valid Prometheus text")
}

fn sample_value(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.value(name, labels)
}

async fn metrics(app: &TestApp) -> Exposition {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    scrape(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_their_counters_move() {
    let app = spawn_app().await;
    let before = metrics(&app).await;
    let route = [
        ("method", "POST"),
        ("route", "/pipelines"),
        ("status", "201"),
    ];
    let posted_before = sample_value(&before, "http_requests_total", &route).unwrap_or(0.0);
    let inserts_before = sample_value(&before, "pipeline_inserts_total", &[]).unwrap();
    app.store(&run_on(
        3,
        0,
        json!({"pipeline_name": "meter", "rowcount": 77, "elapsed_seconds": 12.5}),
    ))
    .await;
    app.store(&run_on(
        2,
        0,
        json!({"pipeline_name": "meter", "rowcount": 5}),
    ))
    .await;
    // One rendering answers every scrape of its reuse period.
    tokio::time::sleep(pipeline_service::api::scrape::REUSE_FOR).await;
    let after = metrics(&app).await;
    assert!(sample_value(&after, "http_requests_total", &route).unwrap() >= posted_before + 2.0);
    assert!(sample_value(&after, "pipeline_inserts_total", &[]).unwrap() >= inserts_before + 2.0);
    assert!(sample_value(&after, "http_requests_in_flight", &[]).is_some());
    for family in [
        "http_request_duration_seconds",
        "jsonl_sync_duration_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(after.family(family).is_some(), "{family}");
    }
    let meter = [("pipeline_name", "meter"), ("environment", "prod")];
    assert_eq!(
        sample_value(&after, "pipeline_last_rowcount", &meter),
        Some(77.0)
    );
    assert_eq!(
        sample_value(&after, "pipeline_last_duration_seconds", &meter),
        Some(12.5)
    );
    assert_eq!(sample_value(&after, "pipeline_runs", &meter), Some(2.0));
    assert_eq!(
        sample_value(&after, "pipeline_last_run_timestamp_seconds", &meter),
        Some(1_754_179_200.0),
        "2025-08-03T00:00:00Z"
    );
}

#[tokio::test]
async fn per_pipeline_series_are_capped() {
    let app = spawn_app_with(
        None,
        RawSettings {
            metrics_max_series: Some("2".into()),
            ..Default::default()
        },
    )
    .await;
    for (day, name) in [(1, "old"), (2, "middle"), (3, "new")] {
        app.store(&run_on(day, 0, json!({"pipeline_name": name})))
            .await;
    }
    let scrape = metrics(&app).await;
    let names: Vec<&str> = scrape
        .samples()
        .filter(|s| s.name == "pipeline_runs")
        .filter_map(|s| s.labels.get("pipeline_name").map(String::as_str))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        !names.contains(&"old"),
        "the least recent pipeline is dropped"
    );
    assert_eq!(
        sample_value(&scrape, "pipeline_metrics_series_dropped", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn long_labels_are_cut_so_a_scrape_stays_small() {
    let app = spawn_app().await;
    let labels = [
        "pipeline_name",
        "script_name",
        "pipeline_type",
        "environment",
    ];
    let items = (0..200)
        .map(|i| {
            let mut changes = serde_json::Map::new();
            for label in labels {
                let long = format!("{i:03}-{label}-{}", "x".repeat(4096));
                changes.insert(label.into(), long[..4096].into());
            }
            run(Value::Object(changes))
        })
        .collect();
    let body = Value::Array(items).to_string();
    let (_, stored) = crate::bulk::post_bulk(&app, "", body, "application/json").await;
    assert_eq!(stored["stored"], 200);
    let text = app.get("/metrics").await.text().await.unwrap();
    // 7 per-pipeline gauges × 200 pipelines × 4 labels of at most 128
    // characters, plus names and the other metrics: well under 1.5 MB
    // (23 MB when labels were not cut).
    assert!(text.len() < 1_500_000, "{} bytes", text.len());
    let parsed = scrape(&text);
    let series: Vec<_> = parsed
        .samples()
        .filter(|s| s.name == "pipeline_runs")
        .collect();
    assert_eq!(series.len(), 200, "pipelines stay distinct");
    for sample in series {
        for label in labels {
            let value = sample.labels.get(label).unwrap();
            assert_eq!(value.chars().count(), 128, "{value}");
        }
    }
}

#[tokio::test]
async fn large_pages_are_streamed_and_equal_the_paged_answer() {
    let lines: String = (0..2500)
        .map(|i| {
            run_on(1 + i % 28, i % 24, json!({"date_code": format!("c{i}")})).to_string() + "\n"
        })
        .collect();
    let app = crate::helpers::spawn_app_with_file(&lines).await;
    let all = app.get_json("/get_pipeline_info?all_data=true").await;
    assert_eq!(
        (all["total"].as_u64(), all["count"].as_u64()),
        (Some(2500), Some(2500))
    );
    assert_eq!(all["pipelines"], json!(["sales_daily"]));
    let mut paged = Vec::new();
    for offset in (0..2500).step_by(700) {
        let page = app
            .get_json(&format!("/get_pipeline_info?limit=700&offset={offset}"))
            .await;
        paged.extend(column(&page, "date_code"));
    }
    assert_eq!(column(&all, "date_code"), paged);
}

/// A tiny deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 1),
            2 => json!(self.next() as i64),
            3 => json!(f64::from_bits(self.next()).clamp(-1e300, 1e300)),
            4 => {
                let len = self.below(12) as usize;
                json!(String::from_utf8_lossy(&self.bytes(len)))
            }
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => {
                let fields = [
                    "start_utc",
                    "rowcount",
                    "pid",
                    "elapsed_seconds",
                    "pipeline_name",
                    "x",
                ];
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(6) {
                    let key = fields[self.below(fields.len() as u64) as usize];
                    map.insert(key.to_owned(), self.json(depth + 1));
                }
                Value::Object(map)
            }
        }
    }
}

#[tokio::test]
async fn random_bytes_json_and_queries_never_cause_5xx_or_change_the_store() {
    let app = spawn_app().await;
    app.store(&run(json!({}))).await;
    let before = std::fs::read(&app.data_path).unwrap();
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let names = [
        "start_utc",
        "end_utc",
        "limit",
        "offset",
        "all_data",
        "min_rowcount",
        "pipeline_name",
        "cursor",
        "count",
        "format",
        "zz",
    ];
    let query_paths = [
        "/get_pipeline_info",
        "/download/pipeline_info",
        "/pipelines/stats",
    ];
    let bulk = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(format!("{}/pipelines/bulk", app.address))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for round in 0..500 {
        let response = match round % 5 {
            0 => {
                let len = rng.below(200) as usize;
                let body = rng.bytes(len);
                app.client
                    .post(format!("{}/pipelines", app.address))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
            }
            1 => {
                let body = rng.json(0);
                app.post_run(&body).await
            }
            2 => {
                let len = rng.below(200) as usize;
                let kind = ["application/json", "application/x-ndjson"][rng.below(2) as usize];
                bulk(rng.bytes(len), kind).await.unwrap()
            }
            3 => {
                let items: Vec<Value> = (0..rng.below(4)).map(|_| rng.json(0)).collect();
                bulk(serde_json::to_vec(&items).unwrap(), "application/json")
                    .await
                    .unwrap()
            }
            _ => {
                let mut query = String::new();
                for _ in 0..rng.below(5) {
                    let name = names[rng.below(names.len() as u64) as usize];
                    let len = rng.below(10) as usize;
                    let raw = rng.bytes(len);
                    let value: String = form_encode(&raw);
                    query.push_str(&format!("{name}={value}&"));
                }
                let path = query_paths[rng.below(query_paths.len() as u64) as usize];
                app.get(&format!("{path}?{query}")).await
            }
        };
        let status = response.status().as_u16();
        assert!(status < 500, "round {round}: {status}");
        // 400: random bytes that are not UTF-8 text, as FastAPI answers.
        assert!(
            status == 200 || status == 422 || (status == 400 && matches!(round % 5, 0 | 2)),
            "round {round}: unexpected {status}"
        );
    }
    assert_eq!(
        std::fs::read(&app.data_path).unwrap(),
        before,
        "nothing stored"
    );
}

fn form_encode(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("%{b:02X}")).collect()
}

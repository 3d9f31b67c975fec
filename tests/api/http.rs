//! HTTP conventions: response compression negotiated by `Accept-Encoding`
//! (streamed answers included), caching policies, and conditional GETs.

use std::io::Read;

use reqwest::header::HeaderMap;
use serde_json::json;

use crate::helpers::{run_on, spawn_app_with_file, TestApp};

/// A data file of `n` runs over 28 days.
fn runs(n: u32) -> String {
    (0..n)
        .map(|i| {
            let changes = json!({"date_code": format!("c{i}"), "rowcount": i});
            run_on(1 + i % 28, i % 24, changes).to_string() + "\n"
        })
        .collect()
}

/// `GET path` with these request headers: status, headers and the body as
/// it travelled (this client never decompresses).
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = app.client.get(format!("{}{path}", app.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli_decompressor::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(bytes).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

/// Answers of every kind worth compressing, and their media types.
const TEXT_ANSWERS: &[(&str, &str)] = &[
    ("/get_pipeline_info?limit=300", "application/json"),
    ("/get_pipeline_info?all_data=true", "application/json"),
    ("/pipelines/stats?recent=20", "application/json"),
    ("/download/pipeline_info?format=csv", "text/csv"),
    (
        "/download/pipeline_info?format=jsonl",
        "application/x-ndjson",
    ),
    ("/openapi.json", "application/json"),
    ("/docs/swagger-ui-bundle.js", "text/javascript"),
    ("/docs/swagger-ui.css", "text/css"),
    ("/metrics", "text/plain"),
];

#[tokio::test]
async fn text_answers_are_compressed_in_the_encoding_the_client_asks_for() {
    let app = spawn_app_with_file(&runs(3000)).await;
    for (path, media_type) in TEXT_ANSWERS {
        let (status, plain_headers, plain) = get(&app, path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&plain_headers, "content-type")
                .unwrap()
                .starts_with(media_type),
            "{path}"
        );
        assert_eq!(header(&plain_headers, "content-encoding"), None, "{path}");
        assert!(plain.len() > 2048, "{path}: {} bytes", plain.len());
        for encoding in ["gzip", "br", "zstd"] {
            let (status, headers, sent) = get(&app, path, &[("accept-encoding", encoding)]).await;
            assert_eq!(status, 200, "{path} {encoding}");
            assert_eq!(
                header(&headers, "content-encoding"),
                Some(encoding),
                "{path}"
            );
            assert!(
                headers.get_all("vary").iter().any(|v| v
                    .to_str()
                    .unwrap()
                    .to_ascii_lowercase()
                    .contains("accept-encoding")),
                "{path}: caches keep the encodings apart"
            );
            assert!(
                sent.len() * 2 < plain.len(),
                "{path} {encoding}: {} of {} bytes",
                sent.len(),
                plain.len()
            );
            if path.starts_with("/metrics") || path.starts_with("/pipelines/stats") {
                // Counters and ages move between two requests.
                continue;
            }
            assert!(
                decode(encoding, &sent) == plain,
                "{path} {encoding}: same content"
            );
        }
    }
}

#[tokio::test]
async fn streamed_answers_are_compressed_as_they_stream() {
    let app = spawn_app_with_file(&runs(3000)).await;
    for path in [
        "/download/pipeline_info?format=csv",
        "/get_pipeline_info?all_data=true",
    ] {
        let (_, plain_headers, plain) = get(&app, path, &[]).await;
        assert_eq!(
            header(&plain_headers, "content-length"),
            None,
            "{path} is streamed"
        );
        let (_, headers, sent) = get(&app, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(header(&headers, "content-encoding"), Some("gzip"), "{path}");
        assert_eq!(header(&headers, "content-length"), None, "{path}");
        assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
        assert!(decode("gzip", &sent) == plain, "{path}");
    }
}

#[tokio::test]
async fn the_preferred_encoding_wins_and_refused_ones_are_never_used() {
    let app = spawn_app_with_file(&runs(300)).await;
    let path = "/get_pipeline_info?limit=300";
    for (accept, chosen) in [
        ("gzip;q=0.5, br", Some("br")),
        ("br;q=0, gzip", Some("gzip")),
        ("zstd, gzip;q=0.9", Some("zstd")),
        ("identity", None),
        ("gzip;q=0", None),
        ("compress, x-unknown", None),
    ] {
        let (status, headers, _) = get(&app, path, &[("accept-encoding", accept)]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), chosen, "{accept}");
    }
}

#[tokio::test]
async fn tiny_answers_and_images_are_sent_as_they_are() {
    let app = spawn_app_with_file(&runs(1)).await;
    for path in [
        "/health",
        "/pipelines",
        "/",
        "/no/such/route",
        "/docs/favicon-32x32.png",
    ] {
        let (_, headers, body) = get(&app, path, &[("accept-encoding", "gzip, br, zstd")]).await;
        assert_eq!(header(&headers, "content-encoding"), None, "{path}");
        assert_eq!(
            header(&headers, "content-length"),
            Some(body.len().to_string().as_str()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn api_answers_are_not_stored_by_caches() {
    let app = spawn_app_with_file(&runs(3)).await;
    for path in [
        "/",
        "/health",
        "/ready",
        "/metrics",
        "/get_pipeline_info",
        "/download/pipeline_info",
        "/no/such/route",
        "/get_pipeline_info?limit=0",
    ] {
        let (_, headers, _) = get(&app, path, &[]).await;
        assert_eq!(
            header(&headers, "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }
    let posted = app.post_run(&run_on(5, 5, json!({}))).await;
    assert_eq!(posted.status(), 201);
    assert_eq!(posted.headers()["cache-control"], "no-store");
}

/// The validator of `path`, after checking the answer's policy; then a
/// revalidation with it answers 304 with no body.
async fn revalidates(app: &TestApp, path: &str, policy: &str) -> String {
    let (status, headers, _) = get(app, path, &[]).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(header(&headers, "cache-control"), Some(policy), "{path}");
    let etag = header(&headers, "etag").expect("an ETag").to_owned();
    assert!(etag.starts_with("W/\""), "{path}: {etag}");
    let (status, headers, body) = get(app, path, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304, "{path}");
    assert!(body.is_empty(), "{path}");
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()), "{path}");
    assert_eq!(header(&headers, "cache-control"), Some(policy), "{path}");
    let (status, _, _) = get(app, path, &[("if-none-match", "W/\"something-else\"")]).await;
    assert_eq!(status, 200, "{path}");
    etag
}

#[tokio::test]
async fn summaries_and_statistics_answer_304_until_a_run_arrives() {
    let app = spawn_app_with_file(&runs(40)).await;
    let summaries = revalidates(&app, "/pipelines", "private, no-cache").await;
    let stats = revalidates(&app, "/pipelines/stats", "private, no-cache").await;
    let recent = revalidates(&app, "/pipelines/stats?recent=5", "private, no-cache").await;
    assert_ne!(stats, recent, "the query is part of the answer");
    // `seconds_since_last_run` grows between two answers; the tag leaves it out.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _, _) = get(&app, "/pipelines/stats", &[("if-none-match", &stats)]).await;
    assert_eq!(
        status, 304,
        "an older copy of the same statistics is current"
    );
    app.store(&run_on(28, 23, json!({"pipeline_name": "newcomer"})))
        .await;
    for (path, before) in [
        ("/pipelines", &summaries),
        ("/pipelines/stats", &stats),
        ("/pipelines/stats?recent=5", &recent),
    ] {
        let (status, headers, _) = get(&app, path, &[("if-none-match", before)]).await;
        assert_eq!(status, 200, "{path}: a new run makes the copy stale");
        assert_ne!(header(&headers, "etag"), Some(before.as_str()), "{path}");
    }
}

#[tokio::test]
async fn documentation_files_are_kept_and_revalidated() {
    let app = spawn_app_with_file("").await;
    revalidates(&app, "/docs/swagger-ui-bundle.js", "public, max-age=604800").await;
    revalidates(&app, "/docs/swagger-ui.css", "public, max-age=604800").await;
    revalidates(&app, "/docs/", "no-cache").await;
    revalidates(&app, "/docs/swagger-initializer.js", "no-cache").await;
    revalidates(&app, "/openapi.json", "no-cache").await;
    // A HEAD before any GET has no validator yet, and is still answered.
    let head = app
        .client
        .head(format!("{}/docs/index.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "public, max-age=604800");
}

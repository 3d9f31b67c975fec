//! The real binary's request log: one line per request, the request id
//! once in it, and routine traffic (probes, scrapes, static files) at DEBUG
//! unless it fails.

use serde_json::Value;

use crate::helpers::{start_service, ServiceProcess};

/// Sends `method path` with `x-request-id: id` and returns the status.
async fn request(server: &ServiceProcess, method: &str, path: &str, id: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    reqwest::Client::new()
        .request(method, format!("{}{path}", server.address))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Requests whose answers succeed and are routine.
const ROUTINE: &[(&str, &str)] = &[
    ("/health", "probe-health"),
    ("/ready", "probe-ready"),
    ("/metrics", "scrape-metrics"),
    ("/docs/index.css", "docs-file"),
];

/// Sends the routine requests, a dashboard asset, a failing probe and a
/// data request (last, so once its line is in the log every earlier line
/// is too: each line is written before its answer is sent).
async fn traffic(server: &ServiceProcess) {
    for (path, id) in ROUTINE {
        assert_eq!(request(server, "GET", path, id).await, 200, "{path}");
    }
    let page = reqwest::get(format!("{}/ui", server.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let asset = page
        .split('"')
        .find(|s| s.starts_with("ui/assets/app."))
        .expect("the page names its script");
    assert_eq!(
        request(server, "GET", &format!("/{asset}"), "ui-asset").await,
        200
    );
    assert_eq!(
        request(server, "POST", "/health", "failed-probe").await,
        405
    );
    assert_eq!(request(server, "GET", "/pipelines", "data-read").await, 200);
    server.logged(|line| line.contains("data-read")).await;
}

/// The real binary over a fresh data file, logging in `format` with
/// `env` added (the data folder lives as long as the returned guard).
fn logging_service(format: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, ServiceProcess) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let mut all = vec![
        ("PIPELINE_JSONL_PATH", data.to_str().unwrap()),
        ("LOG_FORMAT", format),
    ];
    all.extend_from_slice(env);
    let server = start_service(&all);
    (dir, server)
}

/// The log line of the request with this id, if any.
fn line_of<'a>(lines: &'a [String], id: &str) -> Option<&'a String> {
    lines.iter().find(|line| line.contains(id))
}

#[tokio::test]
async fn routine_requests_are_not_logged_at_info_but_failures_and_data_requests_are() {
    let (_dir, server) = logging_service("json", &[]);
    traffic(&server).await;
    let lines = server.output.lock().clone();
    for (path, id) in ROUTINE.iter().chain(&[("/ui/assets/…", "ui-asset")]) {
        assert!(line_of(&lines, id).is_none(), "{path} logged: {lines:#?}");
    }
    for id in ["failed-probe", "data-read"] {
        let line: Value = serde_json::from_str(line_of(&lines, id).expect(id)).unwrap();
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["message"], "request finished", "{line}");
    }
}

#[tokio::test]
async fn with_debug_logging_routine_requests_are_logged_at_debug() {
    let (_dir, server) = logging_service("json", &[("RUST_LOG", "info,pipeline_service=debug")]);
    traffic(&server).await;
    let lines = server.output.lock().clone();
    let level = |id: &str| {
        let line: Value = serde_json::from_str(line_of(&lines, id).expect(id)).unwrap();
        line["level"].as_str().unwrap().to_owned()
    };
    for (_, id) in ROUTINE {
        assert_eq!(level(id), "DEBUG", "{id}");
    }
    assert_eq!(level("ui-asset"), "DEBUG");
    assert_eq!(level("failed-probe"), "INFO");
    assert_eq!(level("data-read"), "INFO");
}

#[tokio::test]
async fn the_request_id_appears_once_per_line_in_both_formats() {
    for format in ["text", "json"] {
        let (_dir, server) = logging_service(format, &[]);
        let id = format!("once-in-{format}");
        assert_eq!(request(&server, "GET", "/pipelines", &id).await, 200);
        server.logged(|line| line.contains(&id)).await;
        let lines = server.output.lock().clone();
        let line = line_of(&lines, &id).unwrap();
        assert_eq!(line.matches(&id).count(), 1, "{format}: {line}");
        assert!(line.contains("request_id"), "{format}: {line}");
        assert!(line.contains("/pipelines"), "{format}: {line}");
        if format == "json" {
            let parsed: Value = serde_json::from_str(line).unwrap();
            assert_eq!(parsed["span"]["request_id"], id.as_str(), "{line}");
            assert_eq!(parsed["status"], 200, "{line}");
        }
    }
}

//! Slow and idle clients, the connection cap and the shutdown deadline,
//! over raw sockets against the real server.

use std::time::{Duration, Instant};

use pipeline_service::config::{RawSettings, Settings};
use pipeline_service::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    connect, run, spawn_app_with, start_command, still_open, until_closed, TestApp, BINARY,
};

/// A request head without the blank line that ends it.
const PARTIAL_HEAD: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n";

/// A whole-number setting, as the environment gives it.
fn setting(value: u64) -> Option<String> {
    Some(value.to_string())
}

/// Connection settings of a test server (timeouts in seconds).
struct Limits {
    header_read_s: u64,
    keep_alive_s: u64,
    max_connections: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        header_read_s: 10,
        keep_alive_s: 60,
        max_connections: 1024,
    };
}

async fn limited_app(limits: Limits) -> TestApp {
    let raw = RawSettings {
        header_read_timeout_s: setting(limits.header_read_s),
        keep_alive_timeout_s: setting(limits.keep_alive_s),
        max_connections: setting(limits.max_connections),
        ..Default::default()
    };
    spawn_app_with(None, raw).await
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_is_closed() {
    let app = limited_app(Limits {
        header_read_s: 1,
        ..Limits::DEFAULT
    })
    .await;
    let started = Instant::now();
    let mut silent = connect(&app.address).await;
    let mut partial = connect(&app.address).await;
    partial.write_all(PARTIAL_HEAD).await.unwrap();
    for stream in [&mut silent, &mut partial] {
        let answer = until_closed(stream, Duration::from_secs(15)).await;
        assert_eq!(
            answer.as_deref(),
            Some(""),
            "closed without an answer, not left open"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before"
    );
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_still_cut_off() {
    let app = limited_app(Limits {
        header_read_s: 1,
        ..Limits::DEFAULT
    })
    .await;
    let mut stream = connect(&app.address).await;
    let started = Instant::now();
    // One byte every 100 ms keeps bytes arriving, but the head never ends.
    let mut sent = 0;
    let closed = loop {
        let byte = [PARTIAL_HEAD[sent % PARTIAL_HEAD.len()]];
        if stream.write_all(&byte).await.is_err() || !still_open(&mut stream).await {
            break true;
        }
        sent += 1;
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(closed, "a trickling client was never cut off");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = limited_app(Limits {
        keep_alive_s: 1,
        header_read_s: 60,
        ..Limits::DEFAULT
    })
    .await;
    let mut stream = connect(&app.address).await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..2 {
        // Kept alive: the same connection answers twice.
        stream.write_all(request).await.unwrap();
        let mut buffer = [0u8; 4096];
        let read = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..read]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let after_answer = Instant::now();
    let rest = until_closed(&mut stream, Duration::from_secs(15)).await;
    assert_eq!(
        rest.as_deref(),
        Some(""),
        "the idle connection was closed quietly"
    );
    assert!(
        after_answer.elapsed() >= Duration::from_millis(900),
        "not before the idle timeout"
    );
}

#[tokio::test]
async fn without_keep_alive_each_connection_answers_once() {
    let app = limited_app(Limits {
        keep_alive_s: 0,
        ..Limits::DEFAULT
    })
    .await;
    let mut stream = connect(&app.address).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut stream, Duration::from_secs(15))
        .await
        .expect("closed after the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_service_resumes() {
    let app = limited_app(Limits {
        max_connections: 3,
        header_read_s: 3,
        ..Limits::DEFAULT
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app.address).await;
        stream.write_all(PARTIAL_HEAD).await.unwrap();
        slow.push(stream);
    }
    let mut refused = Vec::new();
    for _ in 0..5 {
        let mut extra = connect(&app.address).await;
        let answer = until_closed(&mut extra, Duration::from_secs(10))
            .await
            .expect("the extra connection is answered and closed, not queued");
        refused.push(answer);
    }
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(
            answer.ends_with(r#"{"detail":"Server busy, retry shortly"}"#),
            "{answer}"
        );
    }
    for stream in &mut slow {
        assert!(
            still_open(stream).await,
            "refused while every slot was still held"
        );
    }
    // The slow ones time out; then the service answers normally.
    for stream in &mut slow {
        assert!(until_closed(stream, Duration::from_secs(15))
            .await
            .is_some());
    }
    answers_and_stores(&app.address).await;
}

/// A new client is answered, and its insert stored (the writer can open
/// the data file).
async fn answers_and_stores(address: &str) {
    let client = reqwest::Client::new();
    let health = client.get(format!("{address}/health")).send().await;
    assert_eq!(health.unwrap().status(), 200);
    let stored = client
        .post(format!("{address}/pipelines"))
        .json(&run(serde_json::json!({})))
        .send()
        .await;
    assert_eq!(stored.unwrap().status(), 201);
}

#[tokio::test]
async fn graceful_shutdown_ends_within_its_deadline_while_slow_clients_hold_on() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_raw(RawSettings {
        host: Some("127.0.0.1".into()),
        port: Some("0".into()),
        jsonl_path: Some(dir.path().join("runs.jsonl").display().to_string()),
        header_read_timeout_s: setting(600),
        request_timeout_s: setting(600),
        shutdown_timeout_s: setting(1),
        ..Default::default()
    })
    .unwrap();
    let application = Application::build(&settings).await.unwrap();
    let address = format!("http://{}", application.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    // One connection still sending its head, one stuck in its body.
    let mut partial = connect(&address).await;
    partial.write_all(PARTIAL_HEAD).await.unwrap();
    let mut stalled = connect(&address).await;
    stalled
        .write_all(
            b"POST /pipelines HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"start",
        )
        .await
        .unwrap();
    assert!(still_open(&mut partial).await && still_open(&mut stalled).await);
    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(15), server).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "shutdown waited past its deadline: {finished:?}"
    );
    for stream in [&mut partial, &mut stalled] {
        assert!(
            until_closed(stream, Duration::from_secs(5)).await.is_some(),
            "left open after shutdown"
        );
    }
}

#[tokio::test]
async fn with_few_file_descriptors_slow_clients_cannot_starve_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("runs.jsonl");
    // `ulimit -n 128` leaves room for 32 connections; 140 slow ones used
    // to exhaust the descriptors and fail every request, inserts included.
    let mut command = std::process::Command::new("/bin/sh");
    command
        .args(["-c", "ulimit -n 128 && exec \"$0\"", BINARY])
        .env_clear()
        .env("PORT", "0")
        .env("PIPELINE_JSONL_PATH", &data)
        .env("PIPELINE_HEADER_READ_TIMEOUT_S", "2");
    let server = start_command(&mut command);
    let mut slow = Vec::new();
    for _ in 0..140 {
        let mut stream = connect(&server.address).await;
        stream.write_all(PARTIAL_HEAD).await.unwrap();
        slow.push(stream);
    }
    let answers = futures_util::future::join_all(
        slow.iter_mut()
            .map(|stream| until_closed(stream, Duration::from_secs(20))),
    )
    .await;
    let refused = answers
        .iter()
        .filter(|a| a.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 503")))
        .count();
    let timed_out = answers.iter().filter(|a| a.as_deref() == Some("")).count();
    assert_eq!(
        refused + timed_out,
        140,
        "every slow connection ends: {answers:?}"
    );
    assert!(timed_out <= 32, "{timed_out} held at once");
    answers_and_stores(&server.address).await;
    let log = server.output.lock().join("\n");
    assert!(log.contains("serving fewer connections"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

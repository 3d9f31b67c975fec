//! The real binary: configuration errors, `--help`, graceful shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{start_service, BINARY};

fn service(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn fails_with_status_2(env: &[(&str, &str)], mentions: &str) {
    let output = service(env).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(mentions), "{env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn invalid_configuration_exits_with_status_2_naming_the_variable() {
    fails_with_status_2(&[("PIPELINE_BACKEND", "postgres")], "PIPELINE_BACKEND");
    fails_with_status_2(&[("PORT", "eighty")], "PORT");
    fails_with_status_2(&[("CORS_ALLOW_ALL", "sometimes")], "CORS_ALLOW_ALL");
    fails_with_status_2(&[("LOG_FORMAT", "xml")], "LOG_FORMAT");
}

#[test]
fn the_oracle_backend_never_falls_back_to_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let output = service(&[
        ("PIPELINE_BACKEND", "Oracle"),
        ("PORT", "0"),
        ("PIPELINE_JSONL_PATH", data.to_str().unwrap()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PIPELINE_BACKEND=oracle"));
    assert!(!data.exists());
}

#[test]
fn help_lists_flags_and_their_variables() {
    let output = service(&[]).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "--port",
        "PORT",
        "HOST",
        "PIPELINE_BACKEND",
        "PIPELINE_JSONL_PATH",
        "CORS_ORIGINS",
    ] {
        assert!(text.contains(name), "{name} missing from --help");
    }
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let mut server = start_service(&[("PIPELINE_JSONL_PATH", data.to_str().unwrap())]);
    let address = server.address.clone();
    let port = address.rsplit(':').next().unwrap();
    let probe = service(&[("PORT", port)])
        .arg("healthcheck")
        .status()
        .unwrap();
    assert!(probe.success(), "healthcheck against {address}");
    let child = &mut server.child;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rest = server.finished_output();
    assert!(
        rest.iter().any(|l| l.contains("shutdown signal received")),
        "{rest:?}"
    );
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let output = service(&[("PORT", &port)])
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unhealthy"));
}

//! The real binary: configuration errors, `--help`, graceful shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{service, start_service, succeeded};

fn fails_with_status_2(env: &[(&str, &str)], mentions: &str) {
    fails_with_status_2_for(&[], env, mentions);
}

fn fails_with_status_2_for(args: &[&str], env: &[(&str, &str)], mentions: &str) {
    let output = service(env).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(mentions), "{env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn invalid_configuration_exits_with_status_2_naming_the_variable() {
    fails_with_status_2(&[("PIPELINE_BACKEND", "mysql")], "PIPELINE_BACKEND");
    fails_with_status_2(&[("PIPELINE_BACKEND", "postgres")], "DATABASE_URL");
    fails_with_status_2(&[("PORT", "eighty")], "PORT");
    fails_with_status_2(&[("CORS_ALLOW_ALL", "sometimes")], "CORS_ALLOW_ALL");
    fails_with_status_2(&[("LOG_FORMAT", "xml")], "LOG_FORMAT");
}

#[test]
fn a_log_filter_that_does_not_parse_stops_startup() {
    // A taken port, so a server that ignored the filter would stop too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for filter in ["pipeline_service=loud", "info,[["] {
        let env = [("RUST_LOG", filter), ("HOST", "127.0.0.1"), ("PORT", &port)];
        fails_with_status_2(&env, "RUST_LOG");
    }
    // The same for the commands that log, before they touch anything.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.jsonl");
    let env = [
        ("RUST_LOG", "verbose=yes"),
        ("PIPELINE_JSONL_PATH", store.to_str().unwrap()),
    ];
    fails_with_status_2_for(&["compact", "--older-than", "1"], &env, "RUST_LOG");
    assert!(!store.exists(), "nothing was opened");
}

#[test]
fn a_startup_failure_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let output = service(&[
        ("HOST", "127.0.0.1"),
        ("PORT", &port),
        ("PIPELINE_JSONL_PATH", data.to_str().unwrap()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let everything = format!("{stdout}{stderr}");
    assert_eq!(
        everything.matches("cannot listen on").count(),
        1,
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.starts_with("pipeline-service: cannot listen on 127.0.0.1:"));
}

#[test]
fn the_oracle_backend_needs_its_credentials() {
    let output = service(&[("PIPELINE_BACKEND", "oracle"), ("ORACLE_USER", "app")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ORACLE_DSN") && stderr.contains("ORACLE_PASSWORD"),
        "{stderr}"
    );
    fails_with_status_2(
        &[
            ("PIPELINE_BACKEND", "oracle"),
            ("ORACLE_DSN", "db/x"),
            ("ORACLE_USER", "u"),
            ("ORACLE_PASSWORD", "p"),
            ("ORACLE_COLUMN_MAP", r#"{"rowcount": "X;DROP"}"#),
        ],
        "ORACLE_COLUMN_MAP",
    );
}

#[test]
fn without_instant_client_oracle_startup_says_what_to_install_and_never_falls_back() {
    // The build machines have no Oracle client library, so this runs for real.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let output = service(&[
        ("PIPELINE_BACKEND", "Oracle"),
        ("PORT", "0"),
        ("ORACLE_DSN", "127.0.0.1:1/NOWHERE"),
        ("ORACLE_USER", "app"),
        ("ORACLE_PASSWORD", "do-not-print-me"),
        ("PIPELINE_JSONL_PATH", data.to_str().unwrap()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Install Oracle Instant Client"), "{stderr}");
    assert!(stderr.contains("LD_LIBRARY_PATH"), "{stderr}");
    let everything = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        !everything.contains("do-not-print-me"),
        "the password never appears"
    );
    assert_eq!(
        everything.matches("Install Oracle Instant Client").count(),
        1,
        "said once: {everything}"
    );
    assert!(!data.exists(), "no JSON Lines fallback");
}

#[test]
fn ddl_prints_the_table_for_the_configured_names() {
    let output = succeeded(
        service(&[
            ("ORACLE_TABLE", "OPS.RUNS"),
            ("ORACLE_COLUMN_MAP", r#"{"start_utc": "START_TS"}"#),
        ])
        .arg("ddl"),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("CREATE TABLE OPS.RUNS ("), "{text}");
    assert!(text.contains("START_TS TIMESTAMP(6) NOT NULL"));
    assert!(text.contains("START_TS_OFFSET NUMBER(5)"));
    assert!(text.contains(
        "CREATE INDEX OPS.RUNS_NAME_START_IX ON OPS.RUNS (PIPELINE_NAME, START_TS DESC, ID);"
    ));
    fails_with_status_2_for(&["ddl"], &[("ORACLE_TABLE", "A.B.C")], "ORACLE_TABLE");
}

/// `ddl --add-offsets` prints only the ALTER TABLE that gives a table of
/// the original layout its offset columns, under the configured names;
/// `--add-idempotency` its key columns; asking for both is refused.
#[test]
fn ddl_prints_the_upgrades_of_an_existing_table() {
    let names = [
        ("ORACLE_TABLE", "OPS.RUNS"),
        ("ORACLE_COLUMN_MAP", r#"{"end_utc": "END_TS"}"#),
    ];
    let output = succeeded(service(&names).args(["ddl", "--add-offsets"]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("ALTER TABLE OPS.RUNS ADD (START_LOCAL_OFFSET NUMBER(5)"),
        "{text}"
    );
    assert!(text.contains("END_TS_OFFSET NUMBER(5) CHECK (END_TS_OFFSET BETWEEN -86399 AND 86399)"));
    assert_eq!(text.lines().count(), 1, "{text}");
    let output = succeeded(service(&names).args(["ddl", "--add-idempotency"]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("ALTER TABLE OPS.RUNS ADD (IDEMPOTENCY_KEY"),
        "{text}"
    );
    let both = service(&names)
        .args(["ddl", "--add-offsets", "--add-idempotency"])
        .output()
        .unwrap();
    assert!(!both.status.success());
}

/// Names Oracle cannot use unquoted, or that would collide, stop both the
/// DDL and the service at startup (before any session is opened), with
/// status 2 and one line naming the variable and the reason.
#[test]
fn oracle_names_that_cannot_work_stop_startup_with_status_2() {
    let long_table = "T".repeat(114);
    let long_time = format!(r#"{{"end_utc": "{}"}}"#, "E".repeat(122));
    let maps = [
        (r#"{"start_utc": "START"}"#, "reserved word"),
        (r#"{"date_code": "date"}"#, "reserved word"),
        (r#"{"pid": "ROWCOUNT"}"#, "would hold both"),
        (r#"{"pid": "IDEMPOTENCY_AT"}"#, "IDEMPOTENCY_AT"),
        (r#"{"rowcount": "TOTAL_RUNS"}"#, "TOTAL_RUNS"),
        (&long_time, "at most 121 characters"),
    ];
    let tables = [("LEVEL", "reserved word"), (&long_table, "at most 113")];
    let cases = maps
        .iter()
        .map(|(value, reason)| ("ORACLE_COLUMN_MAP", *value, *reason))
        .chain(
            tables
                .iter()
                .map(|(value, reason)| ("ORACLE_TABLE", *value, *reason)),
        );
    for (variable, value, reason) in cases {
        fails_with_status_2_for(&["ddl"], &[(variable, value)], reason);
        let serving = [
            ("PIPELINE_BACKEND", "oracle"),
            ("ORACLE_DSN", "127.0.0.1:1/NOWHERE"),
            ("ORACLE_USER", "app"),
            ("ORACLE_PASSWORD", "secret"),
            ("PORT", "0"),
            (variable, value),
        ];
        fails_with_status_2(&serving, variable);
        fails_with_status_2(&serving, reason);
    }
}

#[test]
fn import_loads_a_python_file_and_reports_skipped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.jsonl");
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_written.jsonl"
    );
    let output = succeeded(
        service(&[("PIPELINE_JSONL_PATH", store.to_str().unwrap())]).args(["import", source]),
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        summary.trim(),
        "read 12 lines, imported 7 records, skipped 4 lines (lines 7, 8, 9, 10)"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipped line 7: expected a JSON object, found an array"),
        "{stderr}"
    );
    let stored = std::fs::read_to_string(&store).unwrap();
    assert_eq!(stored.lines().count(), 7);
    assert!(
        stored.contains(r#""pipeline_name":"inventory_sync""#),
        "names inferred on import"
    );
    let again = service(&[("PIPELINE_JSONL_PATH", store.to_str().unwrap())])
        .args(["import", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "importing the store into itself is refused"
    );
}

#[test]
fn help_lists_flags_and_their_variables() {
    let output = succeeded(service(&[]).arg("--help"));
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

//! `/metrics` read as Prometheus reads it: a strict parse of a real scrape,
//! the naming conventions, and `promtool check metrics` when installed.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::exposition::{findings, parse, Exposition, Kind};
use crate::helpers::{run_on, spawn_app, TestApp};

/// A scrape after the reuse period of the previous one, as text.
async fn fresh_scrape(app: &TestApp) -> String {
    tokio::time::sleep(pipeline_service::api::scrape::REUSE_FOR).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A server holding runs of a few pipelines, one with label values that
/// need escaping, after requests of several kinds.
async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    for (day, name) in [
        (1, "plain"),
        (2, "quote \" back \\ slash\nnewline"),
        (3, "é ü"),
    ] {
        app.store(&run_on(day, 0, json!({"pipeline_name": name})))
            .await;
    }
    app.get("/pipelines").await;
    app.get("/get_pipeline_info?limit=0").await;
    app.get("/no/such/route").await;
    app
}

#[tokio::test]
async fn a_real_scrape_parses_strictly_and_follows_the_conventions() {
    let app = busy_app().await;
    let text = fresh_scrape(&app).await;
    let scrape: Exposition = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(findings(&scrape), Vec::<String>::new(), "{text}");
    // The families the conventions had renamed, and the ones added.
    assert!(scrape.family("pipeline_runs_total").is_none());
    let runs = scrape.family("pipeline_runs").expect("pipeline_runs");
    assert_eq!(runs.kind, Kind::Gauge);
    assert_eq!(
        scrape.value(
            "pipeline_runs",
            &[("pipeline_name", "quote \" back \\ slash\nnewline")]
        ),
        Some(1.0),
        "label values escaped and read back"
    );
    assert_eq!(
        scrape.value(
            "pipeline_service_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("backend", "jsonl")]
        ),
        Some(1.0)
    );
    let names: Vec<&str> = scrape.families.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"jsonl_records"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("oracle_")),
        "no Oracle families on JSON Lines: {names:?}"
    );
    for kind in [Kind::Counter, Kind::Gauge, Kind::Histogram] {
        assert!(scrape.families.iter().any(|f| f.kind == kind), "{kind:?}");
    }
}

/// Prometheus' own checker, when it is installed (`apt-get install
/// prometheus`; CI installs it).
fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
}

#[tokio::test]
async fn promtool_finds_nothing_in_a_real_scrape() {
    let Some(promtool) = promtool() else {
        let _ = writeln!(
            std::io::stdout(),
            "SKIPPED promtool_finds_nothing_in_a_real_scrape: no promtool found (apt-get install prometheus)"
        );
        return;
    };
    let app = busy_app().await;
    let text = fresh_scrape(&app).await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool has findings");
}

//! `ddl --backend postgres`, `migrate`, `import` and `serve` on PostgreSQL
//! through the real binary, the connection given by file or environment;
//! the password never appears in anything the binary prints.

use crate::helpers::{service, start_service, succeeded};
use crate::replica;
use crate::support::postgres::{connect, fresh_database};

const PASSWORD: &str = "hunter2-secret";

/// Everything a finished command printed, both streams.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn ddl_prints_the_migrations_without_a_database() {
    let output = succeeded(service(&[]).args(["ddl", "--backend", "postgres"]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("CREATE TABLE"), "{text}");
    assert!(text.contains("CREATE INDEX"), "{text}");
    // Both upgrades are for Oracle tables; the migrations already hold them.
    for upgrade in ["--add-idempotency", "--add-offsets"] {
        let refused = service(&[])
            .args(["ddl", "--backend", "postgres", upgrade])
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{upgrade}");
    }
}

#[tokio::test]
async fn migrate_import_and_serve_from_a_url_file_never_print_the_password() {
    let Some(database) = fresh_database().await else {
        return;
    };
    // A password the test server (trust authentication) never asks for, so
    // it rides along in the connection string only to be kept secret.
    let url = if database.url.starts_with("postgres") {
        database.url.clone()
    } else {
        format!("{} password={PASSWORD}", database.url)
    };
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let url_file = url_file.to_str().unwrap();
    let env = [
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL_FILE", url_file),
    ];

    let first = succeeded(service(&env).arg("migrate"));
    assert!(
        printed(&first).contains("migrated from version 0"),
        "{}",
        printed(&first)
    );
    let again = succeeded(service(&env).arg("migrate"));
    assert!(
        printed(&again).contains("nothing to do"),
        "{}",
        printed(&again)
    );

    // `import` (COPY) stores what the JSON Lines store reads from the same
    // file: served side by side, the two answers are byte-identical.
    let data = dir.path().join("runs.jsonl");
    succeeded(service(&[]).args(["gen", "--records", "3000", "--out", data.to_str().unwrap()]));
    let imported = succeeded(service(&env).args(["import", data.to_str().unwrap()]));
    assert!(
        printed(&imported).contains("3000"),
        "{}",
        printed(&imported)
    );

    let on_postgres = replica(&url, &[]);
    let on_file = start_service(&[
        ("HOST", "127.0.0.1"),
        ("PIPELINE_JSONL_PATH", data.to_str().unwrap()),
    ]);
    let client = reqwest::Client::new();
    for query in [
        "all_data=true",
        "limit=50&pipeline_name=ingest_orders&environment=prod",
        "limit=10&min_rowcount=1000&start_utc=2025-01-01&cursor=",
    ] {
        let mut bodies = Vec::new();
        for address in [&on_postgres.address, &on_file.address] {
            let response = client
                .get(format!("{address}/get_pipeline_info?{query}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{query}");
            // A cursor names a position in its own store (the tiebreak
            // is the store's insertion number), so it is not compared.
            let text = response.text().await.unwrap();
            bodies.push(match text.split_once(",\"next_cursor\":") {
                Some((before, _)) => before.to_owned(),
                None => text,
            });
        }
        assert!(
            bodies[0].contains("\"results\":[{"),
            "{query}: {}",
            bodies[0]
        );
        assert_eq!(bodies[0], bodies[1], "{query}");
    }
    let served_with_file = start_service(&[
        ("HOST", "127.0.0.1"),
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL_FILE", url_file),
    ]);
    let ready = client
        .get(format!("{}/ready", served_with_file.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    for output in [&first, &again, &imported] {
        assert!(!printed(output).contains(PASSWORD));
    }
    for process in [&on_postgres, &served_with_file] {
        let lines = process.output.lock().join("\n");
        assert!(!lines.contains(PASSWORD), "{lines}");
    }
}

#[test]
fn an_unreachable_database_stops_startup_without_showing_the_password() {
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:1/runs?connect_timeout=2");
    let output = service(&[
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL", &url),
        ("PIPELINE_PG_ACQUIRE_TIMEOUT_S", "2"),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    let text = printed(&output);
    assert!(text.contains("PIPELINE_BACKEND=postgres"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn the_printed_ddl_applied_by_hand_leaves_nothing_for_migrate() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let ddl = succeeded(service(&[]).args(["ddl", "--backend", "postgres"]));
    let client = connect(&database.settings).await;
    client
        .batch_execute(&String::from_utf8_lossy(&ddl.stdout))
        .await
        .expect("the printed DDL applies");
    let env = [
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL", database.url.as_str()),
    ];
    let migrated = succeeded(service(&env).arg("migrate"));
    assert!(
        printed(&migrated).contains("nothing to do"),
        "{}",
        printed(&migrated)
    );
}

//! The Oracle database the live tests use: ORACLE_TEST_DSN,
//! ORACLE_TEST_USER and ORACLE_TEST_PASSWORD (`.github/workflows/oracle.yml`
//! sets them).

// Each test binary that includes the support module uses a part of it.
#![allow(dead_code)]

use pipeline_service::config::RawSettings;

/// Settings for `table` in the test database, or `None` when the variables
/// are unset, said once per test binary past the harness's capture so the
/// skip is seen.
pub fn settings(table: &str) -> Option<RawSettings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(dsn), Some(user), Some(password)) = (
        var("ORACLE_TEST_DSN"),
        var("ORACLE_TEST_USER"),
        var("ORACLE_TEST_PASSWORD"),
    ) else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED on Oracle: set ORACLE_TEST_DSN, ORACLE_TEST_USER and ORACLE_TEST_PASSWORD \
to run the Oracle tests against a database too"
            );
        });
        return None;
    };
    Some(RawSettings {
        backend: Some("oracle".into()),
        oracle_dsn: Some(dsn),
        oracle_user: Some(user),
        oracle_password: Some(password),
        oracle_table: Some(table.to_owned()),
        ..Default::default()
    })
}

/// A table name no other test uses: `prefix`, the process and a counter.
pub fn table_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A table of the original layout, as the Python service's production
/// table is (and as this service's reference DDL made it before offsets
/// were kept): local times TIMESTAMP, UTC times TIMESTAMP WITH TIME ZONE,
/// no offset columns; with the idempotency columns of that DDL.
pub fn original_table_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (
    ID NUMBER GENERATED ALWAYS AS IDENTITY,
    START_LOCAL TIMESTAMP(6) NOT NULL,
    END_LOCAL TIMESTAMP(6) NOT NULL,
    START_UTC TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    END_UTC TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    ELAPSED_SECONDS BINARY_DOUBLE NOT NULL,
    ELAPSED_HUMAN VARCHAR2(4000 CHAR) NOT NULL,
    OUTPUT_FILE VARCHAR2(4000 CHAR) NOT NULL,
    ROWCOUNT NUMBER(19) NOT NULL,
    LOG_FILE VARCHAR2(4000 CHAR) NOT NULL,
    PID NUMBER(19) NOT NULL,
    DATE_CODE VARCHAR2(4000 CHAR) NOT NULL,
    PIPELINE_NAME VARCHAR2(4000 CHAR),
    SCRIPT_NAME VARCHAR2(4000 CHAR),
    PIPELINE_TYPE VARCHAR2(4000 CHAR),
    ENVIRONMENT VARCHAR2(4000 CHAR),
    ARCHIVED_FILE VARCHAR2(4000 CHAR),
    IDEMPOTENCY_KEY VARCHAR2(255 CHAR),
    IDEMPOTENCY_FINGERPRINT VARCHAR2(64),
    IDEMPOTENCY_AT TIMESTAMP(6) WITH TIME ZONE,
    CONSTRAINT {table}_PK PRIMARY KEY (ID)
);
CREATE INDEX {table}_NAME_START_IX ON {table} (PIPELINE_NAME, START_UTC);
CREATE INDEX {table}_START_IX ON {table} (START_UTC, ID);
CREATE INDEX {table}_DATE_CODE_IX ON {table} (DATE_CODE);
CREATE UNIQUE INDEX {table}_IDEMPOTENCY_UX ON {table} (IDEMPOTENCY_KEY);
"
    )
}

/// What a table of the original layout keeps of `record`, as its JSON:
/// local times as their wall-clock reading (an offset is dropped), UTC
/// times with their offset (a naive one at UTC); `None` when it cannot
/// keep it (a UTC offset outside -12:00..+14:00). Written from the
/// layout's definition, apart from the service's code that stores it.
pub fn kept_by_the_original_layout(record: &serde_json::Value) -> Option<serde_json::Value> {
    let mut kept = record.clone();
    for field in ["start_local", "end_local", "start_utc", "end_utc"] {
        let text = record[field].as_str()?;
        let (reading, zone) = split_zone(text);
        kept[field] = match (field.ends_with("_local"), zone) {
            (true, _) => reading.into(),
            (false, None) => format!("{reading}Z").into(),
            (false, Some(zone)) => {
                let minutes = zone_minutes(zone);
                if !(-12 * 60..=14 * 60).contains(&minutes) {
                    return None;
                }
                text.into()
            }
        };
    }
    Some(kept)
}

/// A rendered time's reading and its zone (`Z` or `±HH:MM`), if any.
fn split_zone(text: &str) -> (&str, Option<&str>) {
    if let Some(reading) = text.strip_suffix('Z') {
        return (reading, Some("Z"));
    }
    let at = text.len().saturating_sub(6);
    match text.get(at..at + 1) {
        Some("+") | Some("-") => (&text[..at], Some(&text[at..])),
        _ => (text, None),
    }
}

fn zone_minutes(zone: &str) -> i32 {
    if zone == "Z" {
        return 0;
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let hours: i32 = zone[1..3].parse().unwrap();
    let minutes: i32 = zone[4..6].parse().unwrap();
    sign * (hours * 60 + minutes)
}

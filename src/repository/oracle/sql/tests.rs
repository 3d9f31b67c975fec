use serde_json::json;

use super::*;
use crate::repository::RunKey;

fn plain() -> OracleSchema {
    OracleSchema::new("PIPELINE_RUNS", None).unwrap()
}

fn mapped() -> OracleSchema {
    OracleSchema::new(
        "ops.RUNS",
        Some(
            r#"{"start_utc": "START_TS", "end_utc": "END_TS", "rowcount": "ROW_COUNT",
                 "pipeline_name": "PIPE", "environment": "ENV$", "elapsed_seconds": "SECS",
                 "id": "RUN_ID"}"#,
        ),
    )
    .unwrap()
}

const PLAIN_COLUMNS: &str =
    "START_LOCAL, END_LOCAL, START_UTC, END_UTC, ELAPSED_SECONDS, ELAPSED_HUMAN, \
OUTPUT_FILE, ROWCOUNT, LOG_FILE, PID, DATE_CODE, PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, \
ENVIRONMENT, ARCHIVED_FILE";

const MAPPED_COLUMNS: &str = "START_LOCAL, END_LOCAL, START_TS, END_TS, SECS, ELAPSED_HUMAN, \
OUTPUT_FILE, ROW_COUNT, LOG_FILE, PID, DATE_CODE, PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, ARCHIVED_FILE";

fn at(text: &str) -> FlexDateTime {
    FlexDateTime::parse(text).unwrap()
}

fn names(statement: &Statement) -> Vec<&str> {
    statement.binds.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn identifiers() {
    for good in ["RUNS", "runs", "R", "A1_$#", &"X".repeat(128)] {
        assert!(is_safe_identifier(good), "{good}");
    }
    for bad in [
        "",
        "1RUNS",
        "_RUNS",
        "RUNS;DROP",
        "RU NS",
        "\"RUNS\"",
        "RUNS--",
        "ÄRUNS",
        &"X".repeat(129),
    ] {
        assert!(!is_safe_identifier(bad), "{bad}");
    }
    assert!(validate_table("OPS.RUNS").is_ok());
    for bad in ["A.B.C", ".RUNS", "OPS.", "RUNS; DELETE FROM X", "OPS.1RUNS"] {
        assert!(validate_table(bad).is_err(), "{bad}");
    }
}

#[test]
fn column_map_errors() {
    let cases = [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (r#"{"rowcnt": "X"}"#, "is not a record field"),
        (r#"{"rowcount": 5}"#, "must be a string"),
        (r#"{"rowcount": "ROW COUNT"}"#, "is not a safe column name"),
        (
            r#"{"rowcount": "X; DROP TABLE T"}"#,
            "is not a safe column name",
        ),
        (r#"{"rowcount": "\"X\""}"#, "is not a safe column name"),
    ];
    for (map, message) in cases {
        let error = OracleSchema::new("RUNS", Some(map)).unwrap_err();
        assert!(error.0.contains(message), "{map}: {}", error.0);
    }
    assert!(OracleSchema::new("RUNS", Some("  ")).is_ok());
}

#[test]
fn unfiltered_page() {
    let s = select_runs(
        &plain(),
        &RunFilter::default(),
        Position::Offset(200),
        Some(100),
    );
    assert_eq!(
        s.sql,
        format!(
            "SELECT {PLAIN_COLUMNS}, ID FROM PIPELINE_RUNS ORDER BY START_UTC DESC, ID ASC \
OFFSET :page_offset ROWS FETCH NEXT :page_limit ROWS ONLY"
        )
    );
    assert_eq!(
        s.binds,
        vec![
            ("page_offset".into(), Bind::Integer(200)),
            ("page_limit".into(), Bind::Integer(100))
        ]
    );
    let all = select_runs(&plain(), &RunFilter::default(), Position::Offset(0), None);
    assert_eq!(
        all.sql,
        format!("SELECT {PLAIN_COLUMNS}, ID FROM PIPELINE_RUNS ORDER BY START_UTC DESC, ID ASC")
    );
    assert!(all.binds.is_empty());
}

#[test]
fn each_filter_alone() {
    let cases: Vec<(RunFilter, &str, Bind)> = vec![
        (
            RunFilter {
                start_utc: Some(at("2025-08-01")),
                ..Default::default()
            },
            "START_UTC >= :start_utc",
            Bind::Instant(at("2025-08-01")),
        ),
        (
            RunFilter {
                end_utc: Some(at("2025-08-02T00:00:00+02:00")),
                ..Default::default()
            },
            "END_UTC <= :end_utc",
            Bind::Instant(at("2025-08-02T00:00:00+02:00")),
        ),
        (
            RunFilter {
                min_rowcount: Some(5),
                ..Default::default()
            },
            "ROWCOUNT >= :min_rowcount",
            Bind::Integer(5),
        ),
        (
            RunFilter {
                max_rowcount: Some(9),
                ..Default::default()
            },
            "ROWCOUNT <= :max_rowcount",
            Bind::Integer(9),
        ),
        (
            RunFilter {
                pipeline_name: Some("p".into()),
                ..Default::default()
            },
            "PIPELINE_NAME = :pipeline_name",
            Bind::Text(Some("p".into())),
        ),
        (
            RunFilter {
                script_name: Some("s".into()),
                ..Default::default()
            },
            "SCRIPT_NAME = :script_name",
            Bind::Text(Some("s".into())),
        ),
        (
            RunFilter {
                pipeline_type: Some("t".into()),
                ..Default::default()
            },
            "PIPELINE_TYPE = :pipeline_type",
            Bind::Text(Some("t".into())),
        ),
        (
            RunFilter {
                environment: Some("e".into()),
                ..Default::default()
            },
            "ENVIRONMENT = :environment",
            Bind::Text(Some("e".into())),
        ),
    ];
    for (filter, condition, bind) in cases {
        let c = count(&plain(), &filter);
        assert_eq!(
            c.sql,
            format!("SELECT COUNT(*) FROM PIPELINE_RUNS WHERE {condition}")
        );
        assert_eq!(c.binds.len(), 1);
        assert_eq!(c.binds[0].1, bind);
        let p = select_runs(&plain(), &filter, Position::Offset(0), Some(1));
        assert!(
            p.sql.contains(&format!(" WHERE {condition} ORDER BY")),
            "{}",
            p.sql
        );
        assert_eq!(p.binds.len(), 3);
    }
}

#[test]
fn empty_text_filters_add_nothing() {
    let filter = RunFilter {
        pipeline_name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        count(&plain(), &filter).sql,
        "SELECT COUNT(*) FROM PIPELINE_RUNS"
    );
}

#[test]
fn all_filters_combined_with_a_column_map() {
    let filter = RunFilter {
        start_utc: Some(at("2025-08-01")),
        end_utc: Some(at("2025-08-31T23:59:59Z")),
        min_rowcount: Some(1),
        max_rowcount: Some(100),
        pipeline_name: Some("sales".into()),
        script_name: Some("s.py".into()),
        pipeline_type: Some("batch".into()),
        environment: Some("prod".into()),
    };
    let where_text =
        "WHERE START_TS >= :start_utc AND END_TS <= :end_utc AND ROW_COUNT >= :min_rowcount \
AND ROW_COUNT <= :max_rowcount AND PIPE = :pipeline_name AND SCRIPT_NAME = :script_name \
AND PIPELINE_TYPE = :pipeline_type AND ENV$ = :environment";
    let c = count(&mapped(), &filter);
    assert_eq!(c.sql, format!("SELECT COUNT(*) FROM ops.RUNS {where_text}"));
    assert_eq!(
        names(&c),
        [
            "start_utc",
            "end_utc",
            "min_rowcount",
            "max_rowcount",
            "pipeline_name",
            "script_name",
            "pipeline_type",
            "environment"
        ]
    );
    let p = select_runs(&mapped(), &filter, Position::Offset(0), Some(10));
    assert_eq!(
        p.sql,
        format!(
            "SELECT {MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS {where_text} ORDER BY START_TS DESC, RUN_ID ASC \
OFFSET :page_offset ROWS FETCH NEXT :page_limit ROWS ONLY"
        )
    );
    assert_eq!(p.binds.len(), 10);
}

#[test]
fn summary_averages_positive_values_in_sql() {
    assert_eq!(
        summary(&plain()).sql,
        "SELECT PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT, COUNT(*), MAX(START_UTC), \
AVG(CASE WHEN ELAPSED_SECONDS > 0 THEN ELAPSED_SECONDS END), AVG(CASE WHEN ROWCOUNT > 0 THEN ROWCOUNT END) \
FROM PIPELINE_RUNS GROUP BY PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT \
ORDER BY MAX(START_UTC) DESC, MIN(ID) ASC"
    );
    assert_eq!(
        summary(&mapped()).sql,
        "SELECT PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, COUNT(*), MAX(START_TS), \
AVG(CASE WHEN SECS > 0 THEN SECS END), AVG(CASE WHEN ROW_COUNT > 0 THEN ROW_COUNT END) \
FROM ops.RUNS GROUP BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$ ORDER BY MAX(START_TS) DESC, MIN(RUN_ID) ASC"
    );
}

#[test]
fn activity_takes_the_latest_run_per_group() {
    assert_eq!(
        activity(&mapped()).sql,
        "SELECT PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, total_runs, START_TS, SECS, ROW_COUNT FROM (\
SELECT t.*, COUNT(*) OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$) AS total_runs, \
ROW_NUMBER() OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$ ORDER BY START_TS DESC, RUN_ID ASC) AS latest \
FROM ops.RUNS t) WHERE latest = 1"
    );
}

#[test]
fn insert_binds_every_field_typed() {
    let body = json!({
        "start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06",
        "start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06+02:00",
        "elapsed_seconds": 1325.5, "elapsed_human": "22m 5s", "output_file": "/o", "log_file": "/l",
        "rowcount": 8543, "pid": 7, "date_code": "d", "pipeline_name": "p"
    });
    let record = PipelineInfo::parse(&body, "body").unwrap();
    let statement = insert(&mapped(), &record);
    assert_eq!(
        statement.sql,
        format!(
            "INSERT INTO ops.RUNS ({MAPPED_COLUMNS}) VALUES (:start_local, :end_local, :start_utc, :end_utc, \
:elapsed_seconds, :elapsed_human, :output_file, :rowcount, :log_file, :pid, :date_code, :pipeline_name, \
:script_name, :pipeline_type, :environment, :archived_file)"
        )
    );
    assert_eq!(statement.binds[0].1, Bind::Time(at("2025-08-08T05:07:01")));
    assert_eq!(
        statement.binds[3].1,
        Bind::Time(at("2025-08-08T12:29:06+02:00"))
    );
    assert_eq!(statement.binds[4].1, Bind::Float(1325.5));
    assert_eq!(statement.binds[7].1, Bind::Integer(8543));
    assert_eq!(statement.binds[11].1, Bind::Text(Some("p".into())));
    assert_eq!(statement.binds[15].1, Bind::Text(None));
    assert_eq!(names(&statement), FIELD_NAMES);
}

#[test]
fn ddl_uses_the_mapped_names_and_creates_the_indexes() {
    let text = ddl(&mapped());
    assert!(text
        .starts_with("CREATE TABLE ops.RUNS (\n    RUN_ID NUMBER GENERATED ALWAYS AS IDENTITY,\n"));
    assert!(text.contains("    START_TS TIMESTAMP(6) WITH TIME ZONE NOT NULL,\n"));
    assert!(text.contains("    START_LOCAL TIMESTAMP(6) NOT NULL,\n"));
    assert!(text.contains("    ROW_COUNT NUMBER(19) NOT NULL,\n"));
    assert!(text.contains("CONSTRAINT RUNS_PK PRIMARY KEY (RUN_ID)"));
    assert!(text.contains("CREATE INDEX ops.RUNS_NAME_START_IX ON ops.RUNS (PIPE, START_TS);"));
    assert!(text.contains("CREATE INDEX ops.RUNS_START_IX ON ops.RUNS (START_TS, RUN_ID);"));
    assert!(text.contains("CREATE INDEX ops.RUNS_DATE_CODE_IX ON ops.RUNS (DATE_CODE);"));
    assert!(text.contains("    IDEMPOTENCY_KEY VARCHAR2(255 CHAR),\n"));
    assert!(
        text.contains("CREATE UNIQUE INDEX ops.RUNS_IDEMPOTENCY_UX ON ops.RUNS (IDEMPOTENCY_KEY);")
    );
    assert_eq!(
        add_key_columns(&mapped()),
        "ALTER TABLE ops.RUNS ADD (IDEMPOTENCY_KEY VARCHAR2(255 CHAR), IDEMPOTENCY_FINGERPRINT \
VARCHAR2(64), IDEMPOTENCY_AT TIMESTAMP(6) WITH TIME ZONE);\n\
CREATE UNIQUE INDEX ops.RUNS_IDEMPOTENCY_UX ON ops.RUNS (IDEMPOTENCY_KEY);\n"
    );
}

#[test]
fn keyed_inserts_lookups_and_releases() {
    let schema = mapped();
    assert_eq!(
        insert_keyed_sql(&schema),
        format!(
            "INSERT INTO ops.RUNS ({MAPPED_COLUMNS}, IDEMPOTENCY_KEY, IDEMPOTENCY_FINGERPRINT, \
IDEMPOTENCY_AT) VALUES (:start_local, :end_local, :start_utc, :end_utc, :elapsed_seconds, \
:elapsed_human, :output_file, :rowcount, :log_file, :pid, :date_code, :pipeline_name, \
:script_name, :pipeline_type, :environment, :archived_file, :key, :fingerprint, :key_at)"
        )
    );
    assert_eq!(
        key_lookup(&schema),
        format!(
            "SELECT {MAPPED_COLUMNS}, IDEMPOTENCY_FINGERPRINT, IDEMPOTENCY_AT FROM ops.RUNS \
WHERE IDEMPOTENCY_KEY = :key"
        )
    );
    assert_eq!(
        key_release(&schema),
        "UPDATE ops.RUNS SET IDEMPOTENCY_KEY = NULL WHERE IDEMPOTENCY_KEY = :key"
    );
    let now = at("2026-01-01T00:00:00Z");
    let names: Vec<String> = key_binds(None, now).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["key", "fingerprint", "key_at"]);
}

#[test]
fn the_reference_ddl_file_matches_the_generated_ddl() {
    let file = include_str!("../../../../sql/create_pipeline_runs.sql");
    let statements: String = file
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(statements, ddl(&plain()));
}

#[test]
fn keyset_page_continues_strictly_after_the_key() {
    let filter = RunFilter {
        environment: Some("prod".into()),
        ..RunFilter::default()
    };
    let key = RunKey {
        start_micros: 1_754_006_400_000_000,
        seq: 17,
    };
    let statement = select_runs(&mapped(), &filter, Position::After(key), Some(101));
    assert_eq!(
        statement.sql,
        format!(
            "SELECT {MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE ENV$ = :environment \
AND (START_TS < :after_start OR (START_TS = :after_start AND RUN_ID > :after_id)) \
ORDER BY START_TS DESC, RUN_ID ASC FETCH FIRST :page_limit ROWS ONLY"
        )
    );
    assert_eq!(
        statement.binds,
        [
            ("environment".to_owned(), Bind::Text(Some("prod".into()))),
            (
                "after_start".to_owned(),
                Bind::Instant(at("2025-08-01T00:00:00Z"))
            ),
            ("after_id".to_owned(), Bind::Integer(17)),
            ("page_limit".to_owned(), Bind::Integer(101)),
        ]
    );
    let first = select_runs(
        &plain(),
        &RunFilter::default(),
        Position::Offset(0),
        Some(5),
    );
    assert_eq!(
        first.sql,
        format!(
            "SELECT {PLAIN_COLUMNS}, ID FROM PIPELINE_RUNS \
ORDER BY START_UTC DESC, ID ASC OFFSET :page_offset ROWS FETCH NEXT :page_limit ROWS ONLY"
        )
    );
    assert_eq!(names(&first), ["page_offset", "page_limit"]);
    let everything_after = select_runs(&plain(), &RunFilter::default(), Position::After(key), None);
    assert!(
        everything_after
            .sql
            .ends_with("ORDER BY START_UTC DESC, ID ASC"),
        "{}",
        everything_after.sql
    );
    assert_eq!(names(&everything_after), ["after_start", "after_id"]);
}

#[test]
fn distinct_archived_files_of_a_date_code() {
    let statement = archived_files(&mapped(), "20250808_050701", 3);
    assert_eq!(
        statement.sql,
        "SELECT DISTINCT ARCHIVED_FILE FROM ops.RUNS WHERE DATE_CODE = :date_code \
FETCH FIRST :file_limit ROWS ONLY"
    );
    assert_eq!(
        statement.binds,
        [
            (
                "date_code".to_owned(),
                Bind::Text(Some("20250808_050701".into()))
            ),
            ("file_limit".to_owned(), Bind::Integer(3)),
        ]
    );
}

#[test]
fn retention_statements_use_the_mapped_columns() {
    let schema = mapped();
    assert_eq!(
        select_older(&schema),
        format!("SELECT {MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE START_TS < :cutoff ORDER BY RUN_ID")
    );
    assert_eq!(
        count_older(&schema),
        "SELECT COUNT(CASE WHEN START_TS < :cutoff THEN 1 END), COUNT(*), MAX(RUN_ID) FROM ops.RUNS"
    );
    assert_eq!(
        delete_older_batch(&schema),
        "DELETE FROM ops.RUNS WHERE START_TS < :cutoff AND RUN_ID <= :max_id AND ROWNUM <= :batch"
    );
}

use super::*;
use crate::repository::RunKey;
use oracle::sql_type::OracleType;

fn plain_schema() -> OracleSchema {
    OracleSchema::new("PIPELINE_RUNS", None).unwrap()
}

/// The default table in the layout `ddl` creates.
fn plain() -> Layout {
    Layout::full(&plain_schema())
}

/// A mapped table in the layout `ddl` creates.
fn mapped() -> Layout {
    Layout::full(&mapped_schema())
}

fn mapped_schema() -> OracleSchema {
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

const PLAIN_COLUMNS: &str = "START_LOCAL, START_LOCAL_offset, END_LOCAL, END_LOCAL_offset, \
START_UTC, START_UTC_offset, END_UTC, END_UTC_offset, ELAPSED_SECONDS, ELAPSED_HUMAN, \
OUTPUT_FILE, ROWCOUNT, LOG_FILE, PID, DATE_CODE, PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, \
ENVIRONMENT, ARCHIVED_FILE";

const MAPPED_COLUMNS: &str = "START_LOCAL, START_LOCAL_offset, END_LOCAL, END_LOCAL_offset, \
START_TS, START_TS_offset, END_TS, END_TS_offset, SECS, ELAPSED_HUMAN, \
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
        (r#"{"start_utc": "START"}"#, "reserved word"),
        (r#"{"date_code": "DATE"}"#, "reserved word"),
        (r#"{"rowcount": "level"}"#, "reserved word"),
        (r#"{"rowcount": "SIZE"}"#, "reserved word"),
        (r#"{"log_file": "FILE"}"#, "reserved word"),
        (r#"{"environment": "USER"}"#, "reserved word"),
        (r#"{"pid": "NUMBER"}"#, "reserved word"),
        (r#"{"id": "ROWID"}"#, "reserved word"),
        (
            r#"{"pipeline_name": "NAME", "script_name": "name"}"#,
            "would hold both",
        ),
        (r#"{"pid": "ROWCOUNT"}"#, "would hold both"),
        (r#"{"id": "PID"}"#, "would hold both"),
        (
            r#"{"pid": "IDEMPOTENCY_KEY"}"#,
            "the service's own IDEMPOTENCY_KEY",
        ),
        (
            r#"{"rowcount": "TOTAL_RUNS"}"#,
            "the service's own TOTAL_RUNS",
        ),
        (r#"{"pipeline_type": "Latest"}"#, "the service's own LATEST"),
        (
            r#"{"pid": "START_UTC_OFFSET"}"#,
            "the offset of \"start_utc\"",
        ),
        (
            r#"{"start_utc": "T0", "end_utc": "T0_OFFSET"}"#,
            "would hold both",
        ),
    ];
    for (map, message) in cases {
        let error = OracleSchema::new("RUNS", Some(map)).unwrap_err();
        assert!(error.0.contains(message), "{map}: {}", error.0);
    }
    assert!(OracleSchema::new("RUNS", Some("  ")).is_ok());
    // Names that are keywords but not reserved work unquoted.
    assert!(OracleSchema::new("RUNS", Some(r#"{"rowcount": "ROWS_OUT", "pid": "NAME"}"#)).is_ok());
    let longest_time = "T".repeat(121);
    let map = format!(r#"{{"start_utc": "{longest_time}"}}"#);
    assert!(OracleSchema::new("RUNS", Some(&map)).is_ok());
    let map = format!(r#"{{"start_utc": "{longest_time}X"}}"#);
    let error = OracleSchema::new("RUNS", Some(&map)).unwrap_err();
    assert!(error.0.contains("at most 121 characters"), "{}", error.0);
    let longest_other = format!(r#"{{"pid": "{}"}}"#, "P".repeat(128));
    assert!(OracleSchema::new("RUNS", Some(&longest_other)).is_ok());
}

/// A reserved word as a table or owner, and a table name that would make
/// its index names longer than 128 characters, are refused.
#[test]
fn table_names_that_break_statements_are_refused() {
    for (name, message) in [
        ("USER", "reserved word"),
        ("TABLE", "reserved word"),
        ("ops.LEVEL", "reserved word"),
        ("SESSION.RUNS", "reserved word"),
    ] {
        let error = validate_table(name).unwrap_err();
        assert!(error.0.contains(message), "{name}: {}", error.0);
    }
    let longest = "T".repeat(113);
    assert!(validate_table(&longest).is_ok());
    assert!(validate_table(&format!("{}.{longest}", "O".repeat(128))).is_ok());
    let error = validate_table(&"T".repeat(114)).unwrap_err();
    assert!(error.0.contains("at most 113"), "{}", error.0);
    let text = ddl(&OracleSchema::new(&longest, None).unwrap());
    for name in text.split_whitespace() {
        assert!(name.len() <= 128, "{name}");
    }
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
AVG(CASE WHEN ELAPSED_SECONDS > 0 THEN ELAPSED_SECONDS END), AVG(CASE WHEN ROWCOUNT > 0 THEN ROWCOUNT END), \
MAX(START_UTC_offset) KEEP (DENSE_RANK FIRST ORDER BY START_UTC DESC, ID ASC) \
FROM PIPELINE_RUNS GROUP BY PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT \
ORDER BY MAX(START_UTC) DESC, MIN(ID) ASC"
    );
    assert_eq!(
        summary(&mapped()).sql,
        "SELECT PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, COUNT(*), MAX(START_TS), \
AVG(CASE WHEN SECS > 0 THEN SECS END), AVG(CASE WHEN ROW_COUNT > 0 THEN ROW_COUNT END), \
MAX(START_TS_offset) KEEP (DENSE_RANK FIRST ORDER BY START_TS DESC, RUN_ID ASC) \
FROM ops.RUNS GROUP BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$ ORDER BY MAX(START_TS) DESC, MIN(RUN_ID) ASC"
    );
}

#[test]
fn activity_takes_the_latest_run_per_group() {
    assert_eq!(
        activity(&mapped()).sql,
        "SELECT PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, total_runs, START_TS, SECS, ROW_COUNT, START_TS_offset FROM (\
SELECT t.*, COUNT(*) OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$) AS total_runs, \
ROW_NUMBER() OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$ ORDER BY START_TS DESC, RUN_ID ASC) AS latest \
FROM ops.RUNS t) WHERE latest = 1"
    );
}

#[test]
fn inserts_name_every_column_and_its_placeholder() {
    assert_eq!(
        insert_sql(&mapped()),
        format!(
            "INSERT INTO ops.RUNS ({MAPPED_COLUMNS}) VALUES (:start_local, :start_local_offset, \
:end_local, :end_local_offset, :start_utc, :start_utc_offset, :end_utc, :end_utc_offset, \
:elapsed_seconds, :elapsed_human, :output_file, :rowcount, :log_file, :pid, :date_code, \
:pipeline_name, :script_name, :pipeline_type, :environment, :archived_file)"
        )
    );
}

/// Each time is its UTC instant (plain TIMESTAMP) and its offset; every
/// index that serves pages lists the start descending and the identity
/// ascending, as pages are ordered, so no page is sorted.
#[test]
fn ddl_uses_the_mapped_names_and_creates_the_indexes() {
    let text = ddl(&mapped_schema());
    assert!(text
        .starts_with("CREATE TABLE ops.RUNS (\n    RUN_ID NUMBER GENERATED ALWAYS AS IDENTITY,\n"));
    assert!(text.contains("    START_TS TIMESTAMP(6) NOT NULL,\n"));
    assert!(text.contains(
        "    START_TS_OFFSET NUMBER(5) CHECK (START_TS_OFFSET BETWEEN -86399 AND 86399),\n"
    ));
    assert!(text.contains("    START_LOCAL TIMESTAMP(6) NOT NULL,\n"));
    assert!(
        !text.contains("TIME ZONE"),
        "no column depends on a session zone"
    );
    assert!(text.contains("    ROW_COUNT NUMBER(19) NOT NULL,\n"));
    assert!(text.contains("    SECS BINARY_DOUBLE NOT NULL,\n"));
    assert!(text.contains("CONSTRAINT RUNS_PK PRIMARY KEY (RUN_ID)"));
    assert!(text.contains("CREATE INDEX ops.RUNS_START_IX ON ops.RUNS (START_TS DESC, RUN_ID);"));
    assert!(text.contains(
        "CREATE INDEX ops.RUNS_NAME_START_IX ON ops.RUNS (PIPE, START_TS DESC, RUN_ID);"
    ));
    assert!(text
        .contains("CREATE INDEX ops.RUNS_ENV_START_IX ON ops.RUNS (ENV$, START_TS DESC, RUN_ID);"));
    assert!(text.contains("CREATE INDEX ops.RUNS_DATE_CODE_IX ON ops.RUNS (DATE_CODE);"));
    assert!(text.contains("    IDEMPOTENCY_KEY VARCHAR2(255 CHAR),\n"));
    assert!(text.contains("    IDEMPOTENCY_AT TIMESTAMP(6),\n"));
    assert!(
        text.contains("CREATE UNIQUE INDEX ops.RUNS_IDEMPOTENCY_UX ON ops.RUNS (IDEMPOTENCY_KEY);")
    );
    assert_eq!(
        add_key_columns(&mapped_schema()),
        "ALTER TABLE ops.RUNS ADD (IDEMPOTENCY_KEY VARCHAR2(255 CHAR), IDEMPOTENCY_FINGERPRINT \
VARCHAR2(64), IDEMPOTENCY_AT TIMESTAMP(6));\n\
CREATE UNIQUE INDEX ops.RUNS_IDEMPOTENCY_UX ON ops.RUNS (IDEMPOTENCY_KEY);\n"
    );
    // The order every page is read in is the order these indexes keep.
    let page = select_runs(
        &mapped(),
        &RunFilter::default(),
        Position::Offset(0),
        Some(1),
    );
    assert!(page.sql.contains("ORDER BY START_TS DESC, RUN_ID ASC"));
}

#[test]
fn keyed_inserts_lookups_and_releases() {
    let schema = mapped();
    assert_eq!(
        insert_keyed_sql(&schema),
        format!(
            "INSERT INTO ops.RUNS ({MAPPED_COLUMNS}, IDEMPOTENCY_KEY, IDEMPOTENCY_FINGERPRINT, \
IDEMPOTENCY_AT) VALUES (:start_local, :start_local_offset, :end_local, :end_local_offset, \
:start_utc, :start_utc_offset, :end_utc, :end_utc_offset, :elapsed_seconds, :elapsed_human, :output_file, :rowcount, :log_file, :pid, :date_code, :pipeline_name, \
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
    let names: Vec<String> = key_params(&schema, None, now)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
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
    assert_eq!(statements, ddl(&plain_schema()));
    // The upgrades of an existing table, as comments, each as printed.
    let comments: String = file
        .lines()
        .filter_map(|l| l.strip_prefix("-- "))
        .filter(|l| l.starts_with("ALTER TABLE") || l.starts_with("CREATE UNIQUE INDEX"))
        .map(|l| format!("{l}\n"))
        .collect();
    let upgrades = add_key_columns(&plain_schema()) + &add_offset_columns(&plain_schema());
    assert_eq!(comments, upgrades);
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
AND START_TS <= :after_start AND (START_TS < :after_start OR (START_TS = :after_start AND RUN_ID > :after_id)) \
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
        format!("SELECT {MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE START_TS < :cutoff AND RUN_ID <= :max_id ORDER BY RUN_ID")
    );
    assert_eq!(
        count_older(&schema),
        "SELECT COUNT(CASE WHEN START_TS < :cutoff THEN 1 END), COUNT(*), MAX(RUN_ID) FROM ops.RUNS"
    );
    assert_eq!(
        delete_older_batch(&schema),
        "DELETE FROM ops.RUNS WHERE START_TS < :cutoff AND RUN_ID <= :max_id AND ROWNUM <= :batch"
    );
    assert_eq!(
        delete_by_id(&schema),
        "DELETE FROM ops.RUNS WHERE RUN_ID = :id"
    );
}

#[test]
fn readiness_names_every_column_the_service_uses() {
    assert_eq!(
        table_probe(&mapped()),
        format!("SELECT {MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE 1 = 0")
    );
}

/// The original layout (the Python service's table): no offset columns.
fn original() -> Layout {
    Layout::original(&plain_schema())
}

fn original_mapped() -> Layout {
    Layout::original(&mapped_schema())
}

const ORIGINAL_COLUMNS: &str = "START_LOCAL, END_LOCAL, START_UTC, END_UTC, ELAPSED_SECONDS, \
ELAPSED_HUMAN, OUTPUT_FILE, ROWCOUNT, LOG_FILE, PID, DATE_CODE, PIPELINE_NAME, SCRIPT_NAME, \
PIPELINE_TYPE, ENVIRONMENT, ARCHIVED_FILE";

const ORIGINAL_MAPPED_COLUMNS: &str = "START_LOCAL, END_LOCAL, START_TS, END_TS, SECS, \
ELAPSED_HUMAN, OUTPUT_FILE, ROW_COUNT, LOG_FILE, PID, DATE_CODE, PIPE, SCRIPT_NAME, \
PIPELINE_TYPE, ENV$, ARCHIVED_FILE";

/// On a table without offset columns every statement names only the
/// record's columns: pages, keyset pages, counts, summaries (no offset
/// aggregate), activity, inserts (plain and keyed), key lookups,
/// retention and readiness; filters, order and keyset are the same as
/// with offsets.
#[test]
fn statements_on_the_original_layout_name_no_offset_columns() {
    let key = RunKey {
        start_micros: 1_754_006_400_000_000,
        seq: 17,
    };
    let filter = RunFilter {
        start_utc: Some(at("2025-08-01")),
        end_utc: Some(at("2025-08-31T23:59:59Z")),
        environment: Some("prod".into()),
        ..RunFilter::default()
    };
    let page = select_runs(&original_mapped(), &filter, Position::After(key), Some(101));
    assert_eq!(
        page.sql,
        format!(
            "SELECT {ORIGINAL_MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE START_TS >= :start_utc \
AND END_TS <= :end_utc AND ENV$ = :environment AND START_TS <= :after_start AND (START_TS < :after_start \
OR (START_TS = :after_start AND RUN_ID > :after_id)) ORDER BY START_TS DESC, RUN_ID ASC \
FETCH FIRST :page_limit ROWS ONLY"
        )
    );
    assert_eq!(
        names(&page),
        [
            "start_utc",
            "end_utc",
            "environment",
            "after_start",
            "after_id",
            "page_limit"
        ]
    );
    let offset_page = select_runs(
        &original(),
        &RunFilter::default(),
        Position::Offset(5),
        Some(5),
    );
    assert_eq!(
        offset_page.sql,
        format!(
            "SELECT {ORIGINAL_COLUMNS}, ID FROM PIPELINE_RUNS ORDER BY START_UTC DESC, ID ASC \
OFFSET :page_offset ROWS FETCH NEXT :page_limit ROWS ONLY"
        )
    );
    assert_eq!(
        count(&original_mapped(), &filter).sql,
        "SELECT COUNT(*) FROM ops.RUNS WHERE START_TS >= :start_utc AND END_TS <= :end_utc AND ENV$ = :environment"
    );
    assert_eq!(
        summary(&original()).sql,
        "SELECT PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT, COUNT(*), MAX(START_UTC), \
AVG(CASE WHEN ELAPSED_SECONDS > 0 THEN ELAPSED_SECONDS END), AVG(CASE WHEN ROWCOUNT > 0 THEN ROWCOUNT END) \
FROM PIPELINE_RUNS GROUP BY PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT \
ORDER BY MAX(START_UTC) DESC, MIN(ID) ASC"
    );
    assert_eq!(
        activity(&original_mapped()).sql,
        "SELECT PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$, total_runs, START_TS, SECS, ROW_COUNT FROM (\
SELECT t.*, COUNT(*) OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$) AS total_runs, \
ROW_NUMBER() OVER (PARTITION BY PIPE, SCRIPT_NAME, PIPELINE_TYPE, ENV$ ORDER BY START_TS DESC, RUN_ID ASC) AS latest \
FROM ops.RUNS t) WHERE latest = 1"
    );
    let values = ":start_local, :end_local, :start_utc, :end_utc, :elapsed_seconds, \
:elapsed_human, :output_file, :rowcount, :log_file, :pid, :date_code, :pipeline_name, \
:script_name, :pipeline_type, :environment, :archived_file";
    assert_eq!(
        insert_sql(&original_mapped()),
        format!("INSERT INTO ops.RUNS ({ORIGINAL_MAPPED_COLUMNS}) VALUES ({values})")
    );
    assert_eq!(
        insert_keyed_sql(&original_mapped()),
        format!(
            "INSERT INTO ops.RUNS ({ORIGINAL_MAPPED_COLUMNS}, IDEMPOTENCY_KEY, \
IDEMPOTENCY_FINGERPRINT, IDEMPOTENCY_AT) VALUES ({values}, :key, :fingerprint, :key_at)"
        )
    );
    assert_eq!(
        key_lookup(&original_mapped()),
        format!(
            "SELECT {ORIGINAL_MAPPED_COLUMNS}, IDEMPOTENCY_FINGERPRINT, IDEMPOTENCY_AT FROM ops.RUNS \
WHERE IDEMPOTENCY_KEY = :key"
        )
    );
    assert_eq!(
        select_older(&original_mapped()),
        format!(
            "SELECT {ORIGINAL_MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE START_TS < :cutoff \
AND RUN_ID <= :max_id ORDER BY RUN_ID"
        )
    );
    assert_eq!(
        count_older(&original_mapped()),
        count_older(&mapped()),
        "retention names no offset"
    );
    assert_eq!(
        delete_older_batch(&original_mapped()),
        delete_older_batch(&mapped())
    );
    assert_eq!(
        table_probe(&original_mapped()),
        format!("SELECT {ORIGINAL_MAPPED_COLUMNS}, RUN_ID FROM ops.RUNS WHERE 1 = 0")
    );
    assert_eq!(
        describe_table(&mapped_schema()),
        "SELECT * FROM ops.RUNS WHERE 1 = 0"
    );
}

/// The columns of the original DDL, as Oracle describes them.
fn original_columns() -> Vec<(String, OracleType)> {
    let mut columns = vec![("ID".to_owned(), OracleType::Number(0, -127))];
    for (field, kind) in [
        ("START_LOCAL", OracleType::Timestamp(6)),
        ("END_LOCAL", OracleType::Timestamp(6)),
        ("START_UTC", OracleType::TimestampTZ(6)),
        ("END_UTC", OracleType::TimestampTZ(6)),
        ("ELAPSED_SECONDS", OracleType::BinaryDouble),
        ("ROWCOUNT", OracleType::Number(19, 0)),
        ("PID", OracleType::Number(19, 0)),
        ("IDEMPOTENCY_AT", OracleType::TimestampTZ(6)),
    ] {
        columns.push((field.to_owned(), kind));
    }
    for text in [
        "ELAPSED_HUMAN",
        "OUTPUT_FILE",
        "LOG_FILE",
        "DATE_CODE",
        "PIPELINE_NAME",
        "SCRIPT_NAME",
        "PIPELINE_TYPE",
        "ENVIRONMENT",
        "ARCHIVED_FILE",
        "IDEMPOTENCY_KEY",
        "IDEMPOTENCY_FINGERPRINT",
    ] {
        columns.push((text.to_owned(), OracleType::Varchar2(4000)));
    }
    columns
}

fn with_offsets(
    mut columns: Vec<(String, OracleType)>,
    times: &[&str],
) -> Vec<(String, OracleType)> {
    for time in times {
        columns.push((format!("{time}_OFFSET"), OracleType::Number(5, 0)));
    }
    columns
}

const TIMES: [&str; 4] = ["START_LOCAL", "END_LOCAL", "START_UTC", "END_UTC"];

/// The layout is read from the table: the original DDL gives the original
/// layout, the DDL `ddl` prints the full one, an original table after
/// `ddl --add-offsets` offsets with its own types, and a table without
/// the idempotency columns says so.
#[test]
fn the_layout_is_found_from_the_tables_columns() {
    let schema = plain_schema();
    assert_eq!(Layout::detect(&schema, &original_columns()), Ok(original()));
    let full_columns: Vec<(String, OracleType)> = original_columns()
        .into_iter()
        .map(|(name, kind)| match kind {
            OracleType::TimestampTZ(p) => (name, OracleType::Timestamp(p)),
            other => (name, other),
        })
        .collect();
    assert_eq!(
        Layout::detect(&schema, &with_offsets(full_columns, &TIMES)),
        Ok(plain())
    );
    let upgraded = Layout::detect(&schema, &with_offsets(original_columns(), &TIMES)).unwrap();
    assert!(upgraded.offsets());
    assert_eq!(upgraded.time_column("start_local"), TimeColumn::Plain);
    assert_eq!(upgraded.time_column("end_utc"), TimeColumn::Zoned);
    assert_eq!(upgraded.key_at_column(), TimeColumn::Zoned);
    let without_keys: Vec<(String, OracleType)> = original_columns()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("IDEMPOTENCY_"))
        .collect();
    let layout = Layout::detect(&schema, &without_keys).unwrap();
    assert!(!layout.has_key_columns());
    assert!(layout
        .describe()
        .contains("without the idempotency columns"));
    assert!(layout.describe().contains("without offset columns"));
    assert!(upgraded.describe().contains("with offset columns"));
    // Oracle describes names in capitals; a map may name them in any case.
    let lower = OracleSchema::new("runs", Some(r#"{"start_utc": "start_ts"}"#)).unwrap();
    let renamed: Vec<(String, OracleType)> = original_columns()
        .into_iter()
        .map(|(name, kind)| match name.as_str() {
            "START_UTC" => ("START_TS".to_owned(), kind),
            _ => (name, kind),
        })
        .collect();
    assert_eq!(
        Layout::detect(&lower, &renamed)
            .unwrap()
            .time_column("start_utc"),
        TimeColumn::Zoned
    );
}

/// A table the service cannot use is refused with the reason: a column a
/// run needs missing (a map that does not match the table), a time's
/// column of another type, some offset columns only, an offset column
/// that is not a number.
#[test]
fn a_table_the_service_cannot_use_is_refused_with_the_reason() {
    let schema = plain_schema();
    let without = |column: &str| {
        original_columns()
            .into_iter()
            .filter(|(name, _)| name != column)
            .collect::<Vec<_>>()
    };
    let retyped = |column: &str, kind: OracleType| {
        original_columns()
            .into_iter()
            .map(|(name, old)| {
                if name == column {
                    (name, kind.clone())
                } else {
                    (name, old)
                }
            })
            .collect::<Vec<_>>()
    };
    let cases = [
        (without("PID"), "has no column PID (for pid)"),
        (without("ID"), "has no column ID (for id)"),
        (
            retyped("START_UTC", OracleType::Date),
            "START_UTC of table PIPELINE_RUNS is DATE; a time needs TIMESTAMP or TIMESTAMP WITH TIME ZONE",
        ),
        (
            retyped("END_LOCAL", OracleType::TimestampLTZ(6)),
            "END_LOCAL of table PIPELINE_RUNS is TIMESTAMP WITH LOCAL TIME ZONE",
        ),
        (
            with_offsets(original_columns(), &["START_UTC", "END_UTC"]),
            "has the offset columns START_UTC_OFFSET, END_UTC_OFFSET but not START_LOCAL_OFFSET, END_LOCAL_OFFSET",
        ),
        (
            {
                let mut columns = with_offsets(original_columns(), &TIMES[..3]);
                columns.push(("END_UTC_OFFSET".into(), OracleType::Varchar2(10)));
                columns
            },
            "END_UTC_OFFSET of table PIPELINE_RUNS must be a NUMBER",
        ),
    ];
    for (columns, reason) in cases {
        let error = Layout::detect(&schema, &columns).unwrap_err();
        assert!(error.contains(reason), "{reason}: {error}");
    }
    let mapped = Layout::detect(&mapped_schema(), &original_columns()).unwrap_err();
    assert!(
        mapped.contains("START_TS (for start_utc)") && mapped.contains("RUN_ID (for id)"),
        "{mapped}"
    );
}

/// `ddl --add-offsets` adds the four offset columns, as `ddl` defines
/// them, to a table of the original layout, under the mapped names.
#[test]
fn add_offsets_adds_the_four_offset_columns() {
    assert_eq!(
        add_offset_columns(&mapped_schema()),
        "ALTER TABLE ops.RUNS ADD (\
START_LOCAL_OFFSET NUMBER(5) CHECK (START_LOCAL_OFFSET BETWEEN -86399 AND 86399), \
END_LOCAL_OFFSET NUMBER(5) CHECK (END_LOCAL_OFFSET BETWEEN -86399 AND 86399), \
START_TS_OFFSET NUMBER(5) CHECK (START_TS_OFFSET BETWEEN -86399 AND 86399), \
END_TS_OFFSET NUMBER(5) CHECK (END_TS_OFFSET BETWEEN -86399 AND 86399));\n"
    );
    let full = ddl(&plain_schema());
    for line in add_offset_columns(&plain_schema())
        .trim_start_matches("ALTER TABLE PIPELINE_RUNS ADD (")
        .trim_end_matches(");\n")
        .split(", ")
    {
        assert!(full.contains(&format!("    {line},\n")), "{line}");
    }
}

use serde_json::json;

use super::*;
use crate::domain::record::tests::sample;
use crate::repository::oracle::sql::{self, key_params, read_text, stored_text, OracleSchema};
use crate::repository::{Position, RunFilter, RunKey};

fn record(changes: Value) -> PipelineInfo {
    let mut body = sample();
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), changes) {
        target.extend(extra);
    }
    PipelineInfo::parse(&body, "body").unwrap()
}

fn at(text: &str) -> FlexDateTime {
    FlexDateTime::parse(text).unwrap()
}

/// The Oracle type of each param, by name.
fn types(params: &[(String, Param)]) -> Vec<(&str, OracleType)> {
    params
        .iter()
        .map(|(name, param)| (name.as_str(), bind_type(param)))
        .collect()
}

/// Every value of a record is bound with one type per kind, whatever its
/// value: no text as NVARCHAR2 (which would keep the indexes from being
/// used), the duration always BINARY_DOUBLE, times as plain TIMESTAMP with
/// an integer offset beside them.
#[test]
fn every_insert_param_has_its_kinds_one_type() {
    let varchar = OracleType::Varchar2(4000);
    let expected = [
        ("start_local", OracleType::Timestamp(6)),
        ("start_local_offset", OracleType::Int64),
        ("end_local", OracleType::Timestamp(6)),
        ("end_local_offset", OracleType::Int64),
        ("start_utc", OracleType::Timestamp(6)),
        ("start_utc_offset", OracleType::Int64),
        ("end_utc", OracleType::Timestamp(6)),
        ("end_utc_offset", OracleType::Int64),
        ("elapsed_seconds", OracleType::BinaryDouble),
        ("elapsed_human", varchar.clone()),
        ("output_file", varchar.clone()),
        ("rowcount", OracleType::Int64),
        ("log_file", varchar.clone()),
        ("pid", OracleType::Int64),
        ("date_code", varchar.clone()),
        ("pipeline_name", varchar.clone()),
        ("script_name", varchar.clone()),
        ("pipeline_type", varchar.clone()),
        ("environment", varchar.clone()),
        ("archived_file", varchar.clone()),
    ];
    for changes in [
        json!({}),
        // Nulls, empties, extremes and whole numbers bind as the same types.
        json!({"pipeline_name": null, "archived_file": "", "elapsed_seconds": 1e126,
               "start_local": "2025-08-14T22:49:07+05:30", "end_utc": "2025-08-14T22:49:07"}),
        json!({"elapsed_seconds": 5e-324, "rowcount": 0}),
        json!({"elapsed_seconds": 1.797_693_134_862_315_7e308}),
        json!({"elapsed_seconds": -0.0}),
    ] {
        let params = record_params(&record(changes.clone()));
        assert_eq!(types(&params), expected, "{changes}");
    }
    let key = crate::domain::IdempotencyKey::parse("k-1", &record(json!({}))).unwrap();
    assert_eq!(
        types(&key_params(Some(&key), at("2026-01-01T00:00:00Z"))),
        [
            ("key", varchar.clone()),
            ("fingerprint", varchar.clone()),
            ("key_at", OracleType::Timestamp(6))
        ]
    );
    // The names are the insert's placeholders, in its order.
    let schema = OracleSchema::new("RUNS", None).unwrap();
    let placeholders: Vec<String> = params_names(&record_params(&record(json!({}))));
    assert!(sql::insert_sql(&schema).ends_with(&format!("VALUES ({})", placeholders.join(", "))));
}

fn params_names(params: &[(String, Param)]) -> Vec<String> {
    params.iter().map(|(n, _)| format!(":{n}")).collect()
}

/// The durations bind as the f64 they are (BINARY_DOUBLE holds each one
/// exactly), never as text into NUMBER; only -0.0, which Oracle would turn
/// into +0.0, is stored as -infinity, and reads back as -0.0.
#[test]
fn durations_bind_as_their_own_bits() {
    for value in [
        1e126_f64,
        1.797_693_134_862_315_7e308,
        5e-324,
        -0.0,
        0.0,
        1325.5,
    ] {
        let params = record_params(&record(json!({ "elapsed_seconds": value })));
        let Some((_, Param::Double(bound))) = params.iter().find(|(n, _)| n == "elapsed_seconds")
        else {
            panic!("elapsed_seconds is not a double")
        };
        let negative_zero = value == 0.0 && value.is_sign_negative();
        let stored = if negative_zero {
            f64::NEG_INFINITY
        } else {
            value
        };
        assert_eq!(bound.to_bits(), stored.to_bits(), "{value}");
        assert_eq!(
            sql::read_elapsed(*bound).to_bits(),
            value.to_bits(),
            "{value}"
        );
    }
}

/// Query binds (filters, keyset bounds, page sizes, a date code, a key)
/// are VARCHAR2, TIMESTAMP and integers too: a text compared with a
/// VARCHAR2 column as NVARCHAR2 would convert the column and scan.
#[test]
fn every_query_param_has_its_kinds_one_type() {
    let schema = OracleSchema::new("RUNS", None).unwrap();
    let filter = RunFilter {
        start_utc: Some(at("2025-08-01")),
        end_utc: Some(at("2025-08-02T00:00:00+02:00")),
        min_rowcount: Some(1),
        max_rowcount: Some(9),
        pipeline_name: Some("etl".into()),
        script_name: Some("etl.py".into()),
        pipeline_type: Some("batch".into()),
        environment: Some("prod".into()),
    };
    let key = RunKey {
        start_micros: 1_754_006_400_000_000,
        seq: 7,
    };
    let statements = [
        sql::select_runs(&schema, &filter, Position::After(key), Some(10)),
        sql::select_runs(&schema, &filter, Position::Offset(5), Some(10)),
        sql::count(&schema, &filter),
        sql::archived_files(&schema, "d", 3),
    ];
    for statement in &statements {
        for (name, param) in sql::params(statement) {
            let expected = match name.as_str() {
                "start_utc" | "end_utc" | "after_start" => OracleType::Timestamp(6),
                "pipeline_name" | "script_name" | "pipeline_type" | "environment" | "date_code" => {
                    OracleType::Varchar2(4000)
                }
                _ => OracleType::Int64,
            };
            assert_eq!(bind_type(&param), expected, "{name} in {}", statement.sql);
        }
    }
}

/// Instants bind as their UTC reading, whatever zone they were written
/// in; a naive value counts as UTC, as every filter reads it.
#[test]
fn instants_bind_as_their_utc_reading() {
    let utc = |text: &str| {
        let ts = instant_timestamp(&at(text)).unwrap();
        assert!(!ts.with_tz(), "a plain TIMESTAMP: no session zone applies");
        (ts.year(), ts.month(), ts.day(), ts.hour(), ts.minute())
    };
    assert_eq!(utc("2025-08-14T22:49:07+05:30"), (2025, 8, 14, 17, 19));
    assert_eq!(utc("2025-08-14T22:49:07"), (2025, 8, 14, 22, 49));
    assert_eq!(utc("2025-08-14T00:10:00-23:59"), (2025, 8, 15, 0, 9));
}

/// What is written comes back: naive and aware times (offsets beyond
/// Oracle's own −12..+14 hours included), microseconds, `""` apart from
/// NULL, and texts that start with the escape character.
#[test]
fn stored_forms_give_back_what_was_written() {
    for text in [
        "2025-08-14T22:49:07",
        "2025-08-14T22:49:07.000001",
        "2025-08-14T22:49:07Z",
        "2025-08-14T22:49:07.250000+05:30",
        "2025-08-14T00:10:00-23:59",
        "2025-08-14T00:10:00+23:59",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        let value = at(text);
        let instant = instant_timestamp(&value).unwrap();
        let back = stored_time(&instant, value.offset_seconds().map(i64::from));
        assert_eq!(back, Some(value), "{text}");
        assert_eq!(back.unwrap().to_string(), text, "byte for byte");
    }
    for text in ["", "\0", "\0\0x", "a", "a\0", "ünïcødé"] {
        let stored = stored_text(text);
        assert!(!stored.is_empty(), "{text:?} is never stored as '' (NULL)");
        assert_eq!(read_text(stored.into_owned()), text);
    }
    assert_eq!(stored_text("/data/out.csv"), "/data/out.csv", "unchanged");
    assert_eq!(read_text("/data/out.csv".into()), "/data/out.csv");
}

fn refusal(result: Result<(), RepositoryError>) -> (usize, LocItem, &'static str) {
    let Err(RepositoryError::Invalid { run, errors }) = result else {
        panic!("not refused: {result:?}")
    };
    let error = &errors.detail[0];
    assert_eq!(error.loc[0], LocItem::from("body"));
    (run, error.loc[1].clone(), error.kind)
}

/// A text the column cannot hold (over 4000 bytes as stored, though the
/// API accepts 4096 characters of any size) is refused at its field, as
/// is a time whose instant is past year 9999; the limit itself fits.
#[test]
fn values_a_column_cannot_hold_are_refused_at_their_field() {
    for (field, _) in record(json!({})).text_fields() {
        let fits = record(json!({ field: "x".repeat(4000) }));
        assert!(check_storable(0, &fits).is_ok(), "{field}");
        // 1001 four-byte characters: 1001 characters, 4004 bytes.
        let too_long = record(json!({ field: "😀".repeat(1001) }));
        assert_eq!(
            refusal(check_storable(3, &too_long)),
            (3, LocItem::from(field), "string_too_long")
        );
    }
    let escaped = record(json!({ "output_file": format!("\0{}", "x".repeat(3999)) }));
    assert!(
        check_storable(0, &escaped).is_err(),
        "the escape counts: 4001 bytes stored"
    );
    let late = record(json!({ "end_local": "9999-12-31T23:00:00-05:00" }));
    assert_eq!(
        refusal(check_storable(1, &late)),
        (1, LocItem::from("end_local"), "less_than_equal")
    );
    let early = record(json!({ "start_utc": "0001-01-01T00:30:00+01:00" }));
    assert_eq!(refusal(check_storable(0, &early)).2, "greater_than_equal");
    assert!(check_storable(0, &record(json!({ "start_utc": "0001-01-01T00:00:00Z" }))).is_ok());
}

#[test]
fn every_field_has_its_own_columns() {
    let mut starts: Vec<usize> = FIELD_NAMES.iter().map(|f| column(f)).collect();
    starts.dedup();
    assert_eq!(starts.len(), FIELD_NAMES.len());
    assert_eq!(column("start_local"), 0);
    assert_eq!(column("end_local"), 2);
    assert_eq!(column("elapsed_seconds"), 8);
    assert_eq!(column("archived_file"), RECORD_WIDTH - 1);
}

use serde_json::json;

use super::*;
use crate::domain::record::tests::sample;
use crate::repository::oracle::sql::{
    self, key_params, read_text, stored_text, Layout, OracleSchema, TimeColumn,
};
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

fn schema() -> OracleSchema {
    OracleSchema::new("RUNS", None).unwrap()
}

fn full() -> Layout {
    Layout::full(&schema())
}

fn original() -> Layout {
    Layout::original(&schema())
}

/// An original table after `ddl --add-offsets`: its column types, and the
/// offset columns.
fn upgraded() -> Layout {
    use TimeColumn::{Plain, Zoned};
    Layout::new(&schema(), true, [Plain, Plain, Zoned, Zoned], Some(Zoned))
}

fn reading(text: &str) -> chrono::NaiveDateTime {
    at(text).wall_clock()
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
/// used), the duration always BINARY_DOUBLE, each time as its column's
/// type (TIMESTAMP, or TIMESTAMP WITH TIME ZONE for the original layout's
/// UTC times), with an integer offset beside it where the table keeps
/// offsets; the names are the insert's placeholders, in its order.
#[test]
fn every_insert_param_has_its_kinds_one_type_in_each_layout() {
    let varchar = OracleType::Varchar2(4000);
    let (plain, zoned) = (OracleType::Timestamp(6), OracleType::TimestampTZ(6));
    let rest = [
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
    let with_offsets = |utc: &OracleType| {
        let mut expected = vec![
            ("start_local", plain.clone()),
            ("start_local_offset", OracleType::Int64),
            ("end_local", plain.clone()),
            ("end_local_offset", OracleType::Int64),
            ("start_utc", utc.clone()),
            ("start_utc_offset", OracleType::Int64),
            ("end_utc", utc.clone()),
            ("end_utc_offset", OracleType::Int64),
        ];
        expected.extend(rest.iter().cloned());
        expected
    };
    let mut without_offsets = vec![
        ("start_local", plain.clone()),
        ("end_local", plain.clone()),
        ("start_utc", zoned.clone()),
        ("end_utc", zoned.clone()),
    ];
    without_offsets.extend(rest.iter().cloned());
    let layouts = [
        ("full", full(), with_offsets(&plain), plain.clone()),
        ("original", original(), without_offsets, zoned.clone()),
        ("upgraded", upgraded(), with_offsets(&zoned), zoned.clone()),
    ];
    for (name, layout, expected, key_at) in layouts {
        for changes in [
            json!({}),
            // Nulls, empties, extremes, whole numbers, naive and aware times
            // (offsets beyond Oracle's range included) bind as the same types.
            json!({"pipeline_name": null, "archived_file": "", "elapsed_seconds": 1e126,
                   "start_local": "2025-08-08T05:07:01+05:30", "end_utc": "2025-08-08T12:29:06"}),
            json!({"elapsed_seconds": 5e-324, "rowcount": 0,
                   "start_utc": "2025-08-08T12:07:01+23:59"}),
            json!({"elapsed_seconds": 1.797_693_134_862_315_7e308}),
            json!({"elapsed_seconds": -0.0}),
        ] {
            let params = record_params(&record(changes.clone()), &layout);
            assert_eq!(types(&params), expected, "{name}: {changes}");
        }
        let key = crate::domain::IdempotencyKey::parse("k-1", &record(json!({}))).unwrap();
        assert_eq!(
            types(&key_params(&layout, Some(&key), at("2026-01-01T00:00:00Z"))),
            [
                ("key", varchar.clone()),
                ("fingerprint", varchar.clone()),
                ("key_at", key_at)
            ],
            "{name}"
        );
        let placeholders = params_names(&record_params(&record(json!({})), &layout));
        let values = format!("VALUES ({})", placeholders.join(", "));
        assert!(sql::insert_sql(&layout).ends_with(&values), "{name}");
    }
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
        for layout in [full(), original()] {
            let params = record_params(&record(json!({ "elapsed_seconds": value })), &layout);
            let Some((_, Param::Double(bound))) =
                params.iter().find(|(n, _)| n == "elapsed_seconds")
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
}

/// Query binds (filters, keyset bounds, page sizes, a date code, a key,
/// a retention cutoff) are VARCHAR2, integers, and instants of the type
/// of the column they are compared with: a text compared as NVARCHAR2,
/// or a plain TIMESTAMP with a zoned column (or the reverse), would
/// convert the column and keep its index from being used.
#[test]
fn every_query_param_has_the_type_of_what_it_is_compared_with() {
    use TimeColumn::{Plain, Zoned};
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
    // A table of its own making: the start's column plain, the end's zoned.
    let mixed = Layout::new(&schema(), false, [Plain, Plain, Plain, Zoned], None);
    for layout in [full(), original(), upgraded(), mixed] {
        let statements = [
            sql::select_runs(&layout, &filter, Position::After(key), Some(10)),
            sql::select_runs(&layout, &filter, Position::Offset(5), Some(10)),
            sql::count(&layout, &filter),
            sql::archived_files(&layout, "d", 3),
        ];
        let of = |field: &str| match layout.time_column(field) {
            Plain => OracleType::Timestamp(6),
            Zoned => OracleType::TimestampTZ(6),
        };
        for statement in &statements {
            for (name, param) in sql::params(&layout, statement) {
                let expected = match name.as_str() {
                    "start_utc" | "after_start" => of("start_utc"),
                    "end_utc" => of("end_utc"),
                    "pipeline_name" | "script_name" | "pipeline_type" | "environment"
                    | "date_code" => OracleType::Varchar2(4000),
                    _ => OracleType::Int64,
                };
                assert_eq!(bind_type(&param), expected, "{name} in {}", statement.sql);
            }
        }
        let cutoff = layout.time_column("start_utc").instant(at("2025-01-01"));
        assert_eq!(bind_type(&cutoff), of("start_utc"));
    }
}

/// Instants (bounds, keys, cutoffs) bind as their UTC reading, whatever
/// zone they were written in (a naive value counts as UTC): as a plain
/// TIMESTAMP for a plain column, at +00:00 for a zoned one.
#[test]
fn instants_bind_as_their_utc_reading() {
    for (text, utc) in [
        ("2025-08-14T22:49:07+05:30", "2025-08-14T17:19:07"),
        ("2025-08-14T22:49:07", "2025-08-14T22:49:07"),
        ("2025-08-14T00:10:00-23:59", "2025-08-15T00:09:00"),
        // Past Oracle's years 1–9999 at UTC: bound at the nearest end
        // instead of failing in the driver.
        ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999999"),
        ("0001-01-01T01:00:00+05:00", "0001-01-01T00:00:00"),
    ] {
        assert_eq!(
            TimeColumn::Plain.instant(at(text)),
            Param::Timestamp(reading(utc))
        );
        assert_eq!(
            TimeColumn::Zoned.instant(at(text)),
            Param::TimestampTz(reading(utc), 0)
        );
    }
    let zoned = typed(&Param::TimestampTz(reading("2025-08-14T17:19:07"), 19_800)).unwrap();
    assert_eq!(zoned.kind, OracleType::TimestampTZ(6));
    let plain = typed(&Param::Timestamp(reading("2025-08-14T17:19:07"))).unwrap();
    assert_eq!(plain.kind, OracleType::Timestamp(6));
}

/// What each time's column (and offset column) holds in each layout. A
/// local time's plain column holds the wall-clock time as written, a UTC
/// time's plain column its UTC reading, a zoned column the time at its
/// own offset (naive at +00:00, an offset Oracle cannot hold at UTC); the
/// offset column holds the offset as written, NULL for a naive time in a
/// plain column, `NAIVE_IN_ZONED` for one in a zoned column.
#[test]
fn each_time_is_stored_as_its_column_holds_times() {
    use TimeColumn::{Plain, Zoned};
    let plain = |text: &str| Param::Timestamp(reading(text));
    let zoned = |text: &str, offset: i32| Param::TimestampTz(reading(text), offset);
    let naive = Some(sql::NAIVE_IN_ZONED);
    // (field, written, column) -> (column value, offset column), a row each.
    #[rustfmt::skip]
    let cases = [
        ("start_local", "2025-08-14T22:49:07+05:30", Plain, plain("2025-08-14T22:49:07"), Some(19_800)),
        ("end_local", "2025-08-14T22:49:07", Plain, plain("2025-08-14T22:49:07"), None),
        ("start_utc", "2025-08-14T22:49:07+05:30", Plain, plain("2025-08-14T17:19:07"), Some(19_800)),
        ("end_utc", "2025-08-14T22:49:07", Plain, plain("2025-08-14T22:49:07"), None),
        ("start_utc", "2025-08-14T22:49:07+05:30", Zoned, zoned("2025-08-14T22:49:07", 19_800), Some(19_800)),
        ("start_utc", "2025-08-14T22:49:07Z", Zoned, zoned("2025-08-14T22:49:07", 0), Some(0)),
        ("end_utc", "2025-08-14T22:49:07", Zoned, zoned("2025-08-14T22:49:07", 0), naive),
        ("end_utc", "2025-08-14T00:10:00-23:59", Zoned, zoned("2025-08-15T00:09:00", 0), Some(-86_340)),
        ("start_utc", "2025-08-14T22:49:07+14:00", Zoned, zoned("2025-08-14T22:49:07", 50_400), Some(50_400)),
        ("start_utc", "2025-08-14T22:49:07-12:00", Zoned, zoned("2025-08-14T22:49:07", -43_200), Some(-43_200)),
        ("start_utc", "2025-08-14T22:49:07+14:01", Zoned, zoned("2025-08-14T08:48:07", 0), Some(50_460)),
    ];
    for (field, written, column, value, offset) in cases {
        assert_eq!(
            time_params(field, at(written), column),
            (value, Param::Number(offset)),
            "{field} {written} in {column:?}"
        );
    }
}

/// What Oracle gives back for a bound time: the reading, and for a zoned
/// column the offset it was bound with.
fn given_back(param: &Param) -> Timestamp {
    match param {
        Param::Timestamp(reading) => timestamp(reading).unwrap(),
        Param::TimestampTz(reading, offset) => {
            timestamp(reading).unwrap().and_tz_offset(*offset).unwrap()
        }
        other => panic!("not a time: {other:?}"),
    }
}

/// A time written into `layout` and read back as the service reads it.
fn round_trip(layout: &Layout, field: &str, written: &str) -> String {
    let (value, offset) = time_params(field, at(written), layout.time_column(field));
    let offset = match offset {
        Param::Number(offset) if layout.offsets() => offset,
        Param::Number(_) => None,
        other => panic!("not an offset: {other:?}"),
    };
    read_time(field, &given_back(&value), offset)
        .unwrap()
        .to_string()
}

/// With offset columns (the full layout, and an original table after
/// `ddl --add-offsets`), every time comes back byte for byte: naive and
/// aware, offsets beyond Oracle's own −12..+14 hours, microseconds, the
/// years' limits.
#[test]
fn with_offset_columns_every_time_reads_back_as_written() {
    for layout in [full(), upgraded()] {
        for field in TIME_FIELDS {
            for text in [
                "2025-08-14T22:49:07",
                "2025-08-14T22:49:07.000001",
                "2025-08-14T22:49:07Z",
                "2025-08-14T22:49:07.250000+05:30",
                "2025-08-14T00:10:00-23:59",
                "2025-08-14T00:10:00+23:59",
                "2025-08-14T00:10:00+14:00",
                "2025-08-14T00:10:00-12:00",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999Z",
            ] {
                assert_eq!(round_trip(&layout, field, text), text, "{field} {layout:?}");
            }
        }
    }
}

/// Without offset columns (the original layout) a local time comes back as
/// its wall-clock reading, naive (an aware one loses its offset), and a
/// UTC time as the instant at the offset it was written with (a naive one
/// at UTC, `Z`): what the original layout can hold, and what the Python
/// service read from it.
#[test]
fn without_offset_columns_times_read_back_as_the_original_layout_holds_them() {
    let layout = original();
    for (field, written, read) in [
        ("start_local", "2025-08-14T22:49:07", "2025-08-14T22:49:07"),
        (
            "start_local",
            "2025-08-14T22:49:07.250000+05:30",
            "2025-08-14T22:49:07.250000",
        ),
        (
            "end_local",
            "2025-08-14T22:49:07-23:59",
            "2025-08-14T22:49:07",
        ),
        ("start_utc", "2025-08-14T22:49:07", "2025-08-14T22:49:07Z"),
        ("start_utc", "2025-08-14T22:49:07Z", "2025-08-14T22:49:07Z"),
        (
            "end_utc",
            "2025-08-14T22:49:07.000001+05:30",
            "2025-08-14T22:49:07.000001+05:30",
        ),
        (
            "end_utc",
            "2025-08-14T22:49:07+14:00",
            "2025-08-14T22:49:07+14:00",
        ),
        (
            "end_utc",
            "2025-08-14T22:49:07-12:00",
            "2025-08-14T22:49:07-12:00",
        ),
    ] {
        assert_eq!(
            round_trip(&layout, field, written),
            read,
            "{field} {written}"
        );
    }
}

/// Rows with NULL offsets — written before `ddl --add-offsets`, or since
/// by a writer that does not know the columns (the Python service) — read
/// as their columns hold them, exactly as they read without the columns;
/// the naive mark is never taken for an offset.
#[test]
fn a_null_offset_reads_as_the_column_holds_the_time() {
    let plain = timestamp(&reading("2025-08-14T22:49:07")).unwrap();
    let zoned = plain.and_tz_offset(19_800).unwrap();
    for field in TIME_FIELDS {
        assert_eq!(
            read_time(field, &plain, None).unwrap().to_string(),
            "2025-08-14T22:49:07"
        );
        assert_eq!(
            read_time(field, &zoned, None).unwrap().to_string(),
            "2025-08-14T22:49:07+05:30"
        );
        assert_eq!(
            read_time(field, &zoned, Some(sql::NAIVE_IN_ZONED))
                .unwrap()
                .to_string(),
            "2025-08-14T17:19:07",
            "a naive time in a zoned column reads as its instant's UTC reading"
        );
    }
    assert_eq!(
        stored_instant_micros(&zoned),
        Some(at("2025-08-14T22:49:07+05:30").instant_micros())
    );
    assert_eq!(
        stored_instant_micros(&plain),
        Some(at("2025-08-14T22:49:07Z").instant_micros())
    );
}

#[test]
fn texts_give_back_what_was_written() {
    for text in ["", "\0", "\0\0x", "a", "a\0", "ünïcødé"] {
        let stored = stored_text(text);
        assert!(!stored.is_empty(), "{text:?} is never stored as '' (NULL)");
        assert_eq!(read_text(stored.into_owned()), text);
    }
    assert_eq!(stored_text("/data/out.csv"), "/data/out.csv", "unchanged");
    assert_eq!(read_text("/data/out.csv".into()), "/data/out.csv");
}

fn refusal(result: Result<(), RepositoryError>) -> (usize, LocItem, &'static str, String) {
    let Err(RepositoryError::Invalid { run, errors }) = result else {
        panic!("not refused: {result:?}")
    };
    let error = &errors.detail[0];
    assert_eq!(error.loc[0], LocItem::from("body"));
    (run, error.loc[1].clone(), error.kind, error.msg.clone())
}

/// A text the column cannot hold (over 4000 bytes as stored, though the
/// API accepts 4096 characters of any size) is refused at its field in
/// every layout; the limit itself fits.
#[test]
fn texts_a_column_cannot_hold_are_refused_at_their_field() {
    for layout in [full(), original()] {
        for (field, _) in record(json!({})).text_fields() {
            let fits = record(json!({ field: "x".repeat(4000) }));
            assert!(check_storable(0, &fits, &layout).is_ok(), "{field}");
            // 1001 four-byte characters: 1001 characters, 4004 bytes.
            let too_long = record(json!({ field: "😀".repeat(1001) }));
            let (run, at, kind, _) = refusal(check_storable(3, &too_long, &layout));
            assert_eq!(
                (run, at, kind),
                (3, LocItem::from(field), "string_too_long")
            );
        }
        let escaped = record(json!({ "output_file": format!("\0{}", "x".repeat(3999)) }));
        assert!(
            check_storable(0, &escaped, &layout).is_err(),
            "the escape counts: 4001 bytes stored"
        );
    }
}

/// A time is refused when what its column would hold falls outside the
/// years 1–9999: the UTC reading of a UTC time (plain or zoned), of a
/// local time in a zoned column; a local time's plain column holds the
/// wall clock, which is always within them.
#[test]
fn times_past_the_years_a_column_holds_are_refused_at_their_field() {
    let late = "9999-12-31T23:00:00-05:00";
    for layout in [full(), original(), upgraded()] {
        let (run, field, kind, _) = refusal(check_storable(
            1,
            &record(json!({ "end_utc": late })),
            &layout,
        ));
        assert_eq!(
            (run, field, kind),
            (1, LocItem::from("end_utc"), "less_than_equal")
        );
        let early = record(json!({ "start_utc": "0001-01-01T00:30:00+01:00" }));
        assert_eq!(
            refusal(check_storable(0, &early, &layout)).2,
            "greater_than_equal"
        );
        let first = record(json!({ "start_utc": "0001-01-01T00:00:00Z" }));
        assert!(check_storable(0, &first, &layout).is_ok());
        let local = record(json!({ "end_local": late }));
        assert!(
            check_storable(0, &local, &layout).is_ok(),
            "a local time's wall clock is stored"
        );
    }
}

/// Without offset columns, a UTC time's zoned column holds offsets from
/// −12:00 to +14:00 only: another is refused with a 422 at the field that
/// says why, never bound (which would fail with a 500). Local times'
/// plain columns take any offset (and lose it); with offset columns every
/// offset is stored.
#[test]
fn offsets_a_zoned_column_cannot_hold_are_refused_without_offset_columns() {
    for (field, offset) in [
        ("start_utc", "+14:01"),
        ("end_utc", "-12:01"),
        ("end_utc", "+23:59"),
    ] {
        let value = format!("2025-08-08T12:29:06{offset}");
        let written = record(json!({ field: value }));
        let (run, at, kind, msg) = refusal(check_storable(2, &written, &original()));
        assert_eq!((run, at, kind), (2, LocItem::from(field), "value_error"));
        assert!(msg.contains("-12:00 to +14:00"), "{msg}");
        assert!(check_storable(0, &written, &upgraded()).is_ok());
        assert!(check_storable(0, &written, &full()).is_ok());
    }
    for fits in ["+14:00", "-12:00", "Z", ""] {
        let written = record(json!({ "start_utc": format!("2025-08-08T12:07:01{fits}") }));
        assert!(check_storable(0, &written, &original()).is_ok(), "{fits}");
    }
    let local = record(json!({ "start_local": "2025-08-08T05:07:01+23:59" }));
    assert!(check_storable(0, &local, &original()).is_ok());
}

/// Each field is read from its own column: the position of its column in
/// the select list of each layout (a time followed by its offset where
/// kept), the identity right after.
#[test]
fn every_field_is_read_from_its_own_column_in_each_layout() {
    for layout in [full(), original(), upgraded()] {
        let select = sql::select_runs(&layout, &RunFilter::default(), Position::Offset(0), None);
        let list = select
            .sql
            .trim_start_matches("SELECT ")
            .split(" FROM ")
            .next()
            .unwrap()
            .split(", ")
            .collect::<Vec<_>>();
        for field in FIELD_NAMES {
            let at = column(&layout, field);
            assert_eq!(list[at], layout.schema().column(field), "{field}");
            if layout.offsets() && TIME_FIELDS.contains(&field) {
                assert!(list[at + 1].eq_ignore_ascii_case(&format!("{}_OFFSET", list[at])));
            }
        }
        assert_eq!(list.len(), layout.select_width() + 1);
        assert_eq!(list[layout.select_width()], "ID");
    }
}

/// An insert answers with the run as the table keeps it, which is what a
/// later read gives back: unchanged with offset columns; without them,
/// local times naive and a naive UTC time at UTC.
#[test]
fn an_insert_answers_with_the_run_as_the_table_keeps_it() {
    let written = record(json!({
        "start_local": "2025-08-08T05:07:01+05:30", "end_local": "2025-08-08T05:29:06.250000",
        "start_utc": "2025-08-07T23:37:01", "end_utc": "2025-08-08T00:29:06+01:00",
    }));
    for layout in [full(), upgraded()] {
        assert_eq!(as_kept(&written, &layout), Some(written.clone()));
    }
    let kept = as_kept(&written, &original()).unwrap();
    let text = |t: FlexDateTime| t.to_string();
    assert_eq!(
        [
            kept.start_local(),
            kept.end_local(),
            kept.start_utc(),
            kept.end_utc()
        ]
        .map(text),
        [
            "2025-08-08T05:07:01",
            "2025-08-08T05:29:06.250000",
            "2025-08-07T23:37:01Z",
            "2025-08-08T00:29:06+01:00"
        ]
    );
    assert_eq!(
        kept.with_times([
            written.start_local(),
            written.end_local(),
            written.start_utc(),
            written.end_utc()
        ]),
        written,
        "only the times differ"
    );
    for (field, value) in times(&written) {
        let read = round_trip(&original(), field, &value.to_string());
        let answered = times(&kept)
            .into_iter()
            .find(|(f, _)| *f == field)
            .unwrap()
            .1;
        assert_eq!(answered.to_string(), read, "{field}: answer and read agree");
    }
}

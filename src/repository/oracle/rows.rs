//! Values in and out of the database: how each value is stored and bound
//! (one type per kind of value, on every statement), what a column cannot
//! hold, array inserts, and rows read straight into records.
//!
//! Storage keeps a record as written, as far as the table's layout
//! (`sql::Layout`) allows:
//! - a time's column holds, in a plain TIMESTAMP, the wall-clock reading
//!   as written for a local time and the UTC reading for a UTC time (a
//!   naive value counts as UTC), and in a TIMESTAMP WITH TIME ZONE the
//!   time at its own offset (naive ones at +00:00). Where the table has
//!   offset columns, each time's offset goes beside it (`time_params`), so
//!   any offset the API accepts comes back; without them the column alone
//!   is what comes back (`read_time`);
//! - a duration is BINARY_DOUBLE, which turns -0.0 into +0.0, so -0.0 is
//!   stored as -infinity (`sql::stored_elapsed`), which no record holds;
//! - a text is VARCHAR2, where Oracle cannot tell `''` from NULL, so `""`
//!   and any text starting with U+0000 are stored behind one extra U+0000
//!   (`sql::stored_text`), which reading takes off again (`sql::read_text`).

use std::ops::RangeInclusive;

use chrono::NaiveDateTime;
use oracle::sql_type::{OracleType, Timestamp, ToSql};
use oracle::{Connection, Row};
use serde_json::Value;

use super::sql::{
    read_elapsed, read_text, stored_elapsed, stored_text, utc_reading, BeyondOracleYears, Layout,
    Param, TimeColumn, NAIVE_IN_ZONED,
};
use crate::domain::record::RecordParts;
use crate::domain::{
    FieldError, FlexDateTime, LocItem, PipelineInfo, ValidationErrors, FIELD_NAMES,
};
use crate::repository::sql::TIME_FIELDS;
use crate::repository::RepositoryError;

/// The most bytes a VARCHAR2 holds under Oracle's default
/// `MAX_STRING_SIZE=STANDARD`, whatever the column's declared length.
pub const TEXT_MAX_BYTES: usize = 4000;

/// The offsets a TIMESTAMP WITH TIME ZONE holds, in seconds (−12:00 to
/// +14:00); the API accepts up to ±23:59.
const ZONED_OFFSETS: RangeInclusive<i32> = -12 * 3600..=14 * 3600;

/// The type each kind of value is bound as, on every statement: texts as
/// VARCHAR2 (the crate's default for strings, NVARCHAR2, would convert
/// the column and keep its indexes from being used), durations as
/// BINARY_DOUBLE (every finite f64 exactly, -0.0 included), instants as
/// the type of the time column they are stored in or compared with
/// (TIMESTAMP or TIMESTAMP WITH TIME ZONE: a comparison of mixed types
/// would convert the column through the session's time zone).
pub fn bind_type(param: &Param) -> OracleType {
    match param {
        Param::Text(_) => OracleType::Varchar2(TEXT_MAX_BYTES as u32),
        Param::Number(_) => OracleType::Int64,
        Param::Double(_) => OracleType::BinaryDouble,
        Param::Timestamp(_) => OracleType::Timestamp(6),
        Param::TimestampTz(..) => OracleType::TimestampTZ(6),
    }
}

/// A value with the type `bind_type` chose for it.
pub(super) struct Typed {
    value: Box<dyn ToSql>,
    kind: OracleType,
}

impl ToSql for Typed {
    fn oratype(&self, _conn: &Connection) -> oracle::Result<OracleType> {
        Ok(self.kind.clone())
    }

    fn to_sql(&self, val: &mut oracle::SqlValue) -> oracle::Result<()> {
        self.value.to_sql(val)
    }
}

/// A reading as an Oracle timestamp (without a zone).
pub(super) fn timestamp(reading: &NaiveDateTime) -> oracle::Result<Timestamp> {
    use chrono::{Datelike, Timelike};
    Timestamp::new(
        reading.year(),
        reading.month(),
        reading.day(),
        reading.hour(),
        reading.minute(),
        reading.second(),
        reading.nanosecond(),
    )
}

fn typed(param: &Param) -> oracle::Result<Typed> {
    let value: Box<dyn ToSql> = match param {
        Param::Text(text) => Box::new(text.clone()),
        Param::Number(number) => Box::new(*number),
        Param::Double(double) => Box::new(*double),
        Param::Timestamp(reading) => Box::new(timestamp(reading)?),
        Param::TimestampTz(reading, offset) => {
            Box::new(timestamp(reading)?.and_tz_offset(*offset)?)
        }
    };
    Ok(Typed {
        value,
        kind: bind_type(param),
    })
}

/// Owned, typed bind values for one statement.
pub(super) fn bind_values(params: &[(String, Param)]) -> oracle::Result<Vec<(String, Typed)>> {
    params
        .iter()
        .map(|(name, param)| Ok((name.clone(), typed(param)?)))
        .collect()
}

pub(super) fn named(values: &[(String, Typed)]) -> Vec<(&str, &dyn ToSql)> {
    values
        .iter()
        .map(|(n, v)| (n.as_str(), v as &dyn ToSql))
        .collect()
}

/// Inserts `rows` (params per row, same names and order in each) with one
/// array DML round trip per thousand rows, each column declared with the
/// type `bind_type` gives its first row's value.
pub(super) fn array_insert(
    conn: &Connection,
    text: &str,
    rows: &[Vec<(String, Param)>],
) -> oracle::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut batch = conn.batch(text, rows.len().min(1000)).build()?;
    for (name, param) in first {
        batch.set_type(name.as_str(), &bind_type(param))?;
    }
    for row in rows {
        let values = bind_values(row)?;
        batch.append_row_named(&named(&values))?;
    }
    batch.execute()
}

/// The times of a record by field.
fn times(record: &PipelineInfo) -> [(&'static str, FlexDateTime); 4] {
    [
        ("start_local", record.start_local()),
        ("end_local", record.end_local()),
        ("start_utc", record.start_utc()),
        ("end_utc", record.end_utc()),
    ]
}

/// A refusal of the value of `field` of the run at `run` (422 at the field).
pub(super) fn refused(run: usize, field: &str, input: Value, error: FieldError) -> RepositoryError {
    RepositoryError::Invalid {
        run,
        errors: ValidationErrors::single(
            error.at(vec![LocItem::from("body"), LocItem::from(field)], input),
        ),
    }
}

/// Refuses, at its field, a value the table cannot hold: a text over
/// `TEXT_MAX_BYTES` bytes as stored (the API counts characters, and a
/// character can take four bytes), a time whose reading as stored falls
/// outside the years 1–9999 a timestamp holds (9999-12-31T23:00-05:00 is
/// in year 10000 in UTC), as pydantic's `less_than_equal` or
/// `greater_than_equal` with the bound in `ctx`, and, in a table without
/// offset columns, an offset a TIMESTAMP WITH TIME ZONE cannot hold.
/// `run` is the record's position in its insert.
pub fn check_storable(
    run: usize,
    record: &PipelineInfo,
    layout: &Layout,
) -> Result<(), RepositoryError> {
    for (field, value) in record.text_fields() {
        let Some(value) = value else { continue };
        let bytes = stored_text(value).len();
        if bytes > TEXT_MAX_BYTES {
            return Err(refused(
                run,
                field,
                Value::String(value.to_owned()),
                too_long_error(TEXT_MAX_BYTES as u64),
            ));
        }
    }
    for (field, value) in times(record) {
        if let Err(error) = storable_time(field, value, layout) {
            return Err(refused(run, field, Value::String(value.to_string()), error));
        }
    }
    Ok(())
}

/// Why the column of the time `field` cannot hold `value`, if it cannot.
fn storable_time(field: &str, value: FlexDateTime, layout: &Layout) -> Result<(), FieldError> {
    let column = layout.time_column(field);
    // What the database checks: the reading a plain column holds, the UTC
    // reading of a zoned one (Oracle keeps those in UTC).
    let reading = match column {
        TimeColumn::Plain if is_local(field) => value.wall_clock(),
        _ => utc_reading(&value),
    };
    let bound = BeyondOracleYears::of(&reading).map(|beyond| match beyond {
        BeyondOracleYears::Before => (
            "greater_than_equal",
            "ge",
            "greater",
            "0001-01-01T00:00:00Z",
        ),
        BeyondOracleYears::After => (
            "less_than_equal",
            "le",
            "less",
            "9999-12-31T23:59:59.999999Z",
        ),
    });
    if let Some((kind, key, relation, limit)) = bound {
        return Err(FieldError::new(
            kind,
            format!("Input should be {relation} than or equal to {limit}: the database holds instants of the years 1 to 9999 (UTC)"),
        )
        .with_ctx(key, limit));
    }
    let offset = value.offset_seconds().unwrap_or(0);
    if column == TimeColumn::Zoned && !layout.offsets() && !ZONED_OFFSETS.contains(&offset) {
        return Err(FieldError::new(
            "value_error",
            format!("Value error, the database stores {field} with an offset from -12:00 to +14:00 (TIMESTAMP WITH TIME ZONE, and no column for other offsets); send this time in UTC or with an offset in that range"),
        ));
    }
    Ok(())
}

/// Whether `field` is a local time, whose plain column holds the
/// wall-clock reading as written (a UTC time's holds its UTC reading).
fn is_local(field: &str) -> bool {
    field.ends_with("_local")
}

/// How the time `field` is stored in a column of type `column`: the
/// column's value and its offset column's. A plain column holds the
/// reading (`is_local`) and the offset column the offset as written (NULL
/// when naive). A zoned column holds the time at its own offset where
/// Oracle can hold that offset, else at UTC, and the offset column the
/// offset as written, or `NAIVE_IN_ZONED` when naive (stored at +00:00).
pub fn time_params(field: &str, value: FlexDateTime, column: TimeColumn) -> (Param, Param) {
    let offset = value.offset_seconds();
    match column {
        TimeColumn::Plain => {
            let reading = if is_local(field) {
                value.wall_clock()
            } else {
                utc_reading(&value)
            };
            (
                Param::Timestamp(reading),
                Param::Number(offset.map(i64::from)),
            )
        }
        TimeColumn::Zoned => match offset {
            None => (
                Param::TimestampTz(value.wall_clock(), 0),
                Param::Number(Some(NAIVE_IN_ZONED)),
            ),
            Some(offset) if ZONED_OFFSETS.contains(&offset) => (
                Param::TimestampTz(value.wall_clock(), offset),
                Param::Number(Some(offset.into())),
            ),
            Some(offset) => (
                Param::TimestampTz(utc_reading(&value), 0),
                Param::Number(Some(offset.into())),
            ),
        },
    }
}

/// The error for a text longer than a column holds.
pub(super) fn too_long_error(max_bytes: u64) -> FieldError {
    FieldError::new(
        "string_too_long",
        format!("String should have at most {max_bytes} bytes (UTF-8) to fit the database column"),
    )
    .with_ctx("max_length", max_bytes)
}

/// The params of one record, in the order of `sql::insert_sql`: each
/// field, each time followed by its offset where the table keeps offsets.
pub fn record_params(record: &PipelineInfo, layout: &Layout) -> Vec<(String, Param)> {
    let text = |v: Option<&str>| Param::Text(v.map(|t| stored_text(t).into_owned()));
    let mut params = Vec::with_capacity(layout.select_width());
    let time_values = times(record);
    let text_values = record.text_fields();
    for field in FIELD_NAMES {
        if let Some((_, at)) = time_values.iter().find(|(f, _)| *f == field) {
            let (time, offset) = time_params(field, *at, layout.time_column(field));
            params.push((field.to_owned(), time));
            if layout.offsets() {
                params.push((format!("{field}_offset"), offset));
            }
        } else if let Some((_, value)) = text_values.iter().find(|(f, _)| *f == field) {
            params.push((field.to_owned(), text(*value)));
        } else {
            let param = match field {
                "elapsed_seconds" => Param::Double(stored_elapsed(record.elapsed_seconds())),
                "rowcount" => Param::Number(Some(record.rowcount())),
                _ => Param::Number(Some(record.pid())),
            };
            params.push((field.to_owned(), param));
        }
    }
    params
}

/// Where each field starts in a selected row: a time takes two columns
/// where the table keeps offsets.
fn column(layout: &Layout, field: &str) -> usize {
    let mut at = 0;
    for f in FIELD_NAMES {
        if f == field {
            return at;
        }
        at += if layout.offsets() && TIME_FIELDS.contains(&f) {
            2
        } else {
            1
        };
    }
    at
}

/// The time `field` as written, from its column's value `stored` and its
/// offset column's `offset` (None when NULL, or when the table has no
/// offset columns: both mean "as the column holds it").
pub(super) fn read_time(
    field: &str,
    stored: &Timestamp,
    offset: Option<i64>,
) -> Option<FlexDateTime> {
    let date = chrono::NaiveDate::from_ymd_opt(stored.year(), stored.month(), stored.day())?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        stored.hour(),
        stored.minute(),
        stored.second(),
        stored.nanosecond() / 1000 * 1000,
    )?;
    let zone = stored.with_tz().then(|| stored.tz_offset());
    time_as_written(field, date.and_time(time), zone, offset)
}

/// The time `field` as written, from what its column holds (`reading`,
/// and for a zoned column the `zone` it holds it at) and its offset
/// column's `offset`; the inverse of `time_params`.
fn time_as_written(
    field: &str,
    reading: NaiveDateTime,
    zone: Option<i32>,
    offset: Option<i64>,
) -> Option<FlexDateTime> {
    let aware_from_utc = |utc: NaiveDateTime, offset: i64| {
        let offset = i32::try_from(offset).ok()?;
        FlexDateTime::aware(utc + chrono::Duration::seconds(offset.into()), offset)
    };
    if let Some(zone) = zone {
        let utc = reading - chrono::Duration::seconds(zone.into());
        return match offset {
            None => FlexDateTime::aware(reading, zone),
            Some(NAIVE_IN_ZONED) => Some(FlexDateTime::naive(utc)),
            Some(offset) => aware_from_utc(utc, offset),
        };
    }
    match offset {
        None | Some(NAIVE_IN_ZONED) => Some(FlexDateTime::naive(reading)),
        Some(offset) if is_local(field) => {
            FlexDateTime::aware(reading, i32::try_from(offset).ok()?)
        }
        Some(offset) => aware_from_utc(reading, offset),
    }
}

/// `record` as a table of `layout` keeps it, which is what reading it
/// back gives: the record itself where the table keeps offsets; without
/// them, local times as their wall-clock reading, naive, and UTC times at
/// the offset written (a naive one at UTC). Inserts answer with it, so a
/// created run is the run any later read returns. `None` when a time
/// cannot be stored at all (`check_storable` refuses it first).
pub fn as_kept(record: &PipelineInfo, layout: &Layout) -> Option<PipelineInfo> {
    if layout.offsets() {
        return Some(record.clone());
    }
    let mut kept = Vec::with_capacity(TIME_FIELDS.len());
    for (field, value) in times(record) {
        let (reading, zone) = match time_params(field, value, layout.time_column(field)).0 {
            Param::Timestamp(reading) => (reading, None),
            Param::TimestampTz(reading, zone) => (reading, Some(zone)),
            _ => return None,
        };
        kept.push(time_as_written(field, reading, zone, None)?);
    }
    Some(record.with_times(kept.try_into().ok()?))
}

/// The instant a stored time stands for (a plain one counts as UTC).
pub(super) fn stored_instant_micros(stored: &Timestamp) -> Option<i64> {
    read_time("start_utc", stored, None).map(|t| t.instant_micros())
}

/// The time `field` read from its column and, where the table keeps
/// offsets, its offset's.
pub(super) fn time_from(
    row: &Row,
    field: &str,
    at: usize,
    offset_at: Option<usize>,
) -> oracle::Result<Option<FlexDateTime>> {
    let stored: Option<Timestamp> = row.get(at)?;
    let offset: Option<i64> = match offset_at {
        Some(offset_at) => row.get(offset_at)?,
        None => None,
    };
    Ok(stored.and_then(|s| read_time(field, &s, offset)))
}

/// A text column as written, NULL as `None`.
pub(super) fn text_at(row: &Row, at: usize) -> oracle::Result<Option<String>> {
    Ok(row.get::<usize, Option<String>>(at)?.map(read_text))
}

/// A selected row (the select list of `layout`: fields in `FIELD_NAMES`
/// order, each time followed by its offset where kept) as a record, each
/// column read as its field's type. The types already hold every rule a
/// stored record must keep except a finite duration, which `from_parts`
/// checks.
pub(super) fn record_from_row(row: &Row, layout: &Layout) -> Result<PipelineInfo, RepositoryError> {
    let invalid =
        |why: String| RepositoryError::Database(format!("stored row is not a valid record: {why}"));
    let read = |e: oracle::Error| RepositoryError::Database(e.to_string());
    let column = |field: &str| column(layout, field);
    let time = |field: &str| {
        let at = column(field);
        time_from(row, field, at, layout.offsets().then_some(at + 1))
            .map_err(read)?
            .ok_or_else(|| invalid(format!("{field} is not a datetime")))
    };
    let optional = |field: &str| text_at(row, column(field)).map_err(read);
    let text = |field: &str| optional(field)?.ok_or_else(|| invalid(format!("{field} is null")));
    let number = |field: &str| row.get::<usize, i64>(column(field)).map_err(read);
    let (elapsed_human, output_file, log_file, date_code) = (
        text("elapsed_human")?,
        text("output_file")?,
        text("log_file")?,
        text("date_code")?,
    );
    let archived_file = optional("archived_file")?;
    let classes = [
        "pipeline_name",
        "script_name",
        "pipeline_type",
        "environment",
    ]
    .map(|field| optional(field).map(|value| value.map(std::sync::Arc::from)));
    let [pipeline_name, script_name, pipeline_type, environment] = classes;
    PipelineInfo::from_parts(RecordParts {
        start_local: time("start_local")?,
        end_local: time("end_local")?,
        start_utc: time("start_utc")?,
        end_utc: time("end_utc")?,
        elapsed_seconds: read_elapsed(
            row.get::<usize, f64>(column("elapsed_seconds"))
                .map_err(read)?,
        ),
        elapsed_human: &elapsed_human,
        output_file: &output_file,
        log_file: &log_file,
        rowcount: number("rowcount")?,
        pid: number("pid")?,
        date_code: &date_code,
        classes: [pipeline_name?, script_name?, pipeline_type?, environment?],
        archived_file: archived_file.as_deref(),
    })
    .ok_or_else(|| invalid("elapsed_seconds is not a finite number".into()))
}

#[cfg(test)]
mod tests;

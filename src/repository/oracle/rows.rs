//! Values in and out of the database: how each value is stored and bound
//! (one type per kind of value, on every statement), what a column cannot
//! hold, array inserts, and rows read straight into records.
//!
//! Storage keeps a record exactly as written:
//! - a time is two columns, the UTC instant (plain TIMESTAMP; a naive
//!   value counts as UTC, as every filter reads it) and the offset it was
//!   written with in seconds (NULL when naive), so any offset the API
//!   accepts is kept and no session time zone is ever consulted;
//! - a duration is BINARY_DOUBLE, which turns -0.0 into +0.0, so -0.0 is
//!   stored as -infinity (`sql::stored_elapsed`), which no record holds;
//! - a text is VARCHAR2, where Oracle cannot tell `''` from NULL, so `""`
//!   and any text starting with U+0000 are stored behind one extra U+0000
//!   (`sql::stored_text`), which reading takes off again (`sql::read_text`).

use oracle::sql_type::{OracleType, Timestamp, ToSql};
use oracle::{Connection, Row};
use serde_json::Value;

use super::sql::{read_elapsed, read_text, stored_elapsed, stored_text, Param};
use crate::domain::record::RecordParts;
use crate::domain::{
    FieldError, FlexDateTime, LocItem, PipelineInfo, ValidationErrors, FIELD_NAMES,
};
use crate::repository::sql::TIME_FIELDS;
use crate::repository::RepositoryError;

/// The most bytes a VARCHAR2 holds under Oracle's default
/// `MAX_STRING_SIZE=STANDARD`, whatever the column's declared length.
pub const TEXT_MAX_BYTES: usize = 4000;

/// The type each kind of value is bound as, on every statement: texts as
/// VARCHAR2 (the crate's default for strings, NVARCHAR2, would convert
/// the column and keep its indexes from being used), durations as
/// BINARY_DOUBLE (every finite f64 exactly, -0.0 included), instants as
/// plain TIMESTAMP (compared with the instant columns without any time
/// zone conversion).
pub fn bind_type(param: &Param) -> OracleType {
    match param {
        Param::Text(_) => OracleType::Varchar2(TEXT_MAX_BYTES as u32),
        Param::Number(_) => OracleType::Int64,
        Param::Double(_) => OracleType::BinaryDouble,
        Param::Instant(_) => OracleType::Timestamp(6),
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

/// An instant as a plain TIMESTAMP holding its UTC reading.
pub(super) fn instant_timestamp(value: &FlexDateTime) -> oracle::Result<Timestamp> {
    use chrono::{Datelike, Timelike};
    let utc = utc_reading(value);
    Timestamp::new(
        utc.year(),
        utc.month(),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.nanosecond(),
    )
}

fn utc_reading(value: &FlexDateTime) -> chrono::NaiveDateTime {
    FlexDateTime::from_instant_micros(value.instant_micros()).wall_clock()
}

fn typed(param: &Param) -> oracle::Result<Typed> {
    let value: Box<dyn ToSql> = match param {
        Param::Text(text) => Box::new(text.clone()),
        Param::Number(number) => Box::new(*number),
        Param::Double(double) => Box::new(*double),
        Param::Instant(at) => Box::new(instant_timestamp(at)?),
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

/// Refuses, at its field, a value the table cannot hold as written: a
/// text over `TEXT_MAX_BYTES` bytes as stored (the API counts characters,
/// and a character can take four bytes), or a time whose UTC instant falls
/// outside the years 1–9999 a TIMESTAMP holds (9999-12-31T23:00-05:00 is
/// in year 10000 in UTC), as pydantic's `less_than_equal` or
/// `greater_than_equal` with the bound in `ctx`. `run` is the record's
/// position in its insert.
pub fn check_storable(run: usize, record: &PipelineInfo) -> Result<(), RepositoryError> {
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
        use chrono::Datelike;
        let year = utc_reading(&value).year();
        let bound = match year {
            ..1 => (
                "greater_than_equal",
                "ge",
                "greater",
                "0001-01-01T00:00:00Z",
            ),
            10_000.. => (
                "less_than_equal",
                "le",
                "less",
                "9999-12-31T23:59:59.999999Z",
            ),
            _ => continue,
        };
        let (kind, key, relation, limit) = bound;
        return Err(refused(
            run,
            field,
            Value::String(value.to_string()),
            FieldError::new(
                kind,
                format!("Input should be {relation} than or equal to {limit}: the database holds instants of the years 1 to 9999 (UTC)"),
            )
            .with_ctx(key, limit),
        ));
    }
    Ok(())
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
/// field, each time followed by its offset.
pub fn record_params(record: &PipelineInfo) -> Vec<(String, Param)> {
    let text = |v: Option<&str>| Param::Text(v.map(|t| stored_text(t).into_owned()));
    let mut params = Vec::with_capacity(FIELD_NAMES.len() + TIME_FIELDS.len());
    let time_values = times(record);
    let text_values = record.text_fields();
    for field in FIELD_NAMES {
        if let Some((_, at)) = time_values.iter().find(|(f, _)| *f == field) {
            params.push((field.to_owned(), Param::Instant(*at)));
            params.push((
                format!("{field}_offset"),
                Param::Number(at.offset_seconds().map(i64::from)),
            ));
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

/// Where each field starts in a selected row: times take two columns.
fn column(field: &str) -> usize {
    let mut at = 0;
    for f in FIELD_NAMES {
        if f == field {
            return at;
        }
        at += if TIME_FIELDS.contains(&f) { 2 } else { 1 };
    }
    at
}

/// How many columns a record takes in a selected row.
pub(super) const RECORD_WIDTH: usize = FIELD_NAMES.len() + TIME_FIELDS.len();

/// The time stored as `instant` (UTC reading) with `offset` (seconds
/// east; None when written naive).
pub(super) fn stored_time(instant: &Timestamp, offset: Option<i64>) -> Option<FlexDateTime> {
    let date = chrono::NaiveDate::from_ymd_opt(instant.year(), instant.month(), instant.day())?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        instant.hour(),
        instant.minute(),
        instant.second(),
        instant.nanosecond() / 1000 * 1000,
    )?;
    let utc = date.and_time(time);
    match offset {
        None => Some(FlexDateTime::naive(utc)),
        Some(offset) => {
            let offset = i32::try_from(offset).ok()?;
            FlexDateTime::aware(utc + chrono::Duration::seconds(offset.into()), offset)
        }
    }
}

/// A time read from its instant's and its offset's columns.
pub(super) fn time_from(
    row: &Row,
    instant_at: usize,
    offset_at: usize,
) -> oracle::Result<Option<FlexDateTime>> {
    let instant: Option<Timestamp> = row.get(instant_at)?;
    let offset: Option<i64> = row.get(offset_at)?;
    Ok(instant.and_then(|i| stored_time(&i, offset)))
}

/// A text column as written, NULL as `None`.
pub(super) fn text_at(row: &Row, at: usize) -> oracle::Result<Option<String>> {
    Ok(row.get::<usize, Option<String>>(at)?.map(read_text))
}

/// A selected row (the select list: fields in `FIELD_NAMES` order, each
/// time followed by its offset) as a record, each column read as its
/// field's type. The types already hold every rule a stored record must
/// keep except a finite duration, which `from_parts` checks.
pub(super) fn record_from_row(row: &Row) -> Result<PipelineInfo, RepositoryError> {
    let invalid =
        |why: String| RepositoryError::Database(format!("stored row is not a valid record: {why}"));
    let read = |e: oracle::Error| RepositoryError::Database(e.to_string());
    let time = |field: &str| {
        time_from(row, column(field), column(field) + 1)
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

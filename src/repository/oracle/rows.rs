//! Values in and out of the database: binds for statements, array inserts,
//! and rows read straight into records.

use oracle::sql_type::{OracleType, Timestamp, ToSql};
use oracle::{Connection, Row};

use super::sql::Bind;
use crate::domain::record::RecordParts;
use crate::domain::{FlexDateTime, PipelineInfo, FIELD_NAMES};
use crate::repository::RepositoryError;

/// A FlexDateTime as an Oracle timestamp; `with_zone` forces an offset
/// (naive values count as UTC).
pub(super) fn timestamp(value: &FlexDateTime, with_zone: bool) -> oracle::Result<Timestamp> {
    use chrono::{Datelike, Timelike};
    let n = value.wall_clock();
    let ts = Timestamp::new(
        n.year(),
        n.month(),
        n.day(),
        n.hour(),
        n.minute(),
        n.second(),
        n.nanosecond(),
    )?;
    match value.offset_seconds() {
        Some(offset) => ts.and_tz_offset(offset),
        None if with_zone => ts.and_tz_offset(0),
        None => Ok(ts),
    }
}

pub(super) fn from_timestamp(ts: &Timestamp) -> Option<FlexDateTime> {
    let date = chrono::NaiveDate::from_ymd_opt(ts.year(), ts.month(), ts.day())?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.nanosecond() / 1000 * 1000,
    )?;
    let naive = date.and_time(time);
    if ts.with_tz() {
        FlexDateTime::aware(naive, ts.tz_offset())
    } else {
        Some(FlexDateTime::naive(naive))
    }
}

/// Inserts `rows` (binds per row, same names and order in each) with one
/// array DML round trip per thousand rows.
pub(super) fn array_insert(
    conn: &Connection,
    text: &str,
    rows: Vec<Vec<(String, Bind)>>,
) -> oracle::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut batch = conn.batch(text, rows.len().min(1000)).build()?;
    // Array binds need one type per column for every row, so all times bind
    // WITH TIME ZONE (naive ones at UTC). With UTC sessions that stores
    // exactly what single inserts store, in either column type.
    for (name, bind) in first {
        let kind = match bind {
            Bind::Time(_) | Bind::Instant(_) => OracleType::TimestampTZ(6),
            Bind::Float(_) => OracleType::BinaryDouble,
            Bind::Integer(_) => OracleType::Int64,
            Bind::Text(_) => OracleType::Varchar2(16_384),
        };
        batch.set_type(name.as_str(), &kind)?;
    }
    for row in rows {
        let binds: Vec<(String, Bind)> = row
            .into_iter()
            .map(|(name, bind)| match bind {
                Bind::Time(t) => (name, Bind::Instant(t)),
                other => (name, other),
            })
            .collect();
        let values = bind_values(&binds)?;
        batch.append_row_named(&named(&values))?;
    }
    batch.execute()
}

/// Owned bind values for one statement.
pub(super) fn bind_values(
    binds: &[(String, Bind)],
) -> oracle::Result<Vec<(String, Box<dyn ToSql>)>> {
    binds
        .iter()
        .map(|(name, bind)| {
            let value: Box<dyn ToSql> = match bind {
                Bind::Text(text) => Box::new(text.clone()),
                Bind::Integer(i) => Box::new(*i),
                Bind::Float(f) => Box::new(*f),
                Bind::Time(t) => Box::new(timestamp(t, false)?),
                Bind::Instant(t) => Box::new(timestamp(t, true)?),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

pub(super) fn named(values: &[(String, Box<dyn ToSql>)]) -> Vec<(&str, &dyn ToSql)> {
    values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_ref()))
        .collect()
}

/// The column of each field in a selected row: `FIELD_NAMES` order.
fn column(field: &str) -> usize {
    FIELD_NAMES
        .iter()
        .position(|f| *f == field)
        .unwrap_or(FIELD_NAMES.len())
}

/// A selected row (columns in `FIELD_NAMES` order) as a record, each column
/// read as its field's type. The types already hold every rule a stored
/// record must keep except a finite duration, which `from_parts` checks.
pub(super) fn record_from_row(row: &Row) -> Result<PipelineInfo, RepositoryError> {
    let invalid =
        |why: String| RepositoryError::Database(format!("stored row is not a valid record: {why}"));
    let read = |e: oracle::Error| RepositoryError::Database(e.to_string());
    let time = |field: &str| {
        row.get::<usize, Option<Timestamp>>(column(field))
            .map_err(read)?
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| invalid(format!("{field} is not a datetime")))
    };
    let optional = |field: &str| {
        row.get::<usize, Option<String>>(column(field))
            .map_err(read)
    };
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
        elapsed_seconds: row
            .get::<usize, f64>(column("elapsed_seconds"))
            .map_err(read)?,
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
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_and_without_zone() {
        for text in [
            "2025-08-14T22:49:07.250000",
            "2025-08-14T22:49:07+05:30",
            "2025-08-14T22:49:07Z",
        ] {
            let value = FlexDateTime::parse(text).unwrap();
            let oracle = timestamp(&value, false).unwrap();
            assert_eq!(from_timestamp(&oracle), Some(value), "{text}");
        }
        let naive_bound = timestamp(&FlexDateTime::parse("2025-08-14").unwrap(), true).unwrap();
        assert!(
            naive_bound.with_tz() && naive_bound.tz_offset() == 0,
            "naive bounds count as UTC"
        );
    }

    #[test]
    fn every_field_has_its_own_column() {
        let mut columns: Vec<usize> = FIELD_NAMES.iter().map(|f| column(f)).collect();
        columns.dedup();
        assert_eq!(columns, (0..FIELD_NAMES.len()).collect::<Vec<_>>());
    }
}

//! Rows to records and records to column values. A time is two columns:
//! the instant and the offset it was written with (NULL when naive), so a
//! record reads back exactly as written (see the first migration).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::domain::digest::GroupKey;
use crate::domain::record::RecordParts;
use crate::domain::{FieldError, FlexDateTime, LocItem, PipelineInfo, ValidationErrors};
use crate::repository::sql::{Bind, Statement};
use crate::repository::RepositoryError;

/// Where each value sits in a row selected with `Table::select_list`.
pub mod column {
    pub const START_LOCAL: usize = 0;
    pub const END_LOCAL: usize = 2;
    pub const START_UTC: usize = 4;
    pub const END_UTC: usize = 6;
    pub const ELAPSED_SECONDS: usize = 8;
    pub const ELAPSED_HUMAN: usize = 9;
    pub const OUTPUT_FILE: usize = 10;
    pub const ROWCOUNT: usize = 11;
    pub const LOG_FILE: usize = 12;
    pub const PID: usize = 13;
    pub const DATE_CODE: usize = 14;
    pub const CLASSES: usize = 15;
    pub const ARCHIVED_FILE: usize = 19;
    /// The first column after the select list.
    pub const AFTER: usize = 20;
}

fn corrupt(what: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::Database(format!("stored row is not a valid record: {what}"))
}

/// The instant a time is stored as (naive values as if UTC).
pub fn instant(value: &FlexDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(value.instant_micros()).unwrap_or_default()
}

/// The time stored as `instant` with `offset` (seconds east; None = naive).
pub fn flex_time(instant: DateTime<Utc>, offset: Option<i32>) -> Option<FlexDateTime> {
    let utc = instant.naive_utc();
    match offset {
        None => Some(FlexDateTime::naive(utc)),
        Some(seconds) => {
            let wall = utc.checked_add_signed(chrono::Duration::seconds(i64::from(seconds)))?;
            FlexDateTime::aware(wall, seconds)
        }
    }
}

/// The time in columns `at` (instant) and `at + 1` (offset).
pub fn time_at(row: &Row, at: usize) -> Result<FlexDateTime, RepositoryError> {
    let instant: DateTime<Utc> = row.try_get(at).map_err(corrupt)?;
    let offset: Option<i32> = row.try_get(at + 1).map_err(corrupt)?;
    flex_time(instant, offset).ok_or_else(|| corrupt("a time out of range"))
}

/// A row selected with `Table::select_list` as a record.
pub fn record(row: &Row) -> Result<PipelineInfo, RepositoryError> {
    use column::*;
    let text = |i: usize| row.try_get::<_, &str>(i).map_err(corrupt);
    let optional = |i: usize| row.try_get::<_, Option<&str>>(i).map_err(corrupt);
    let mut classes: [Option<Arc<str>>; 4] = Default::default();
    for (i, class) in classes.iter_mut().enumerate() {
        *class = optional(CLASSES + i)?.map(Arc::from);
    }
    PipelineInfo::from_parts(RecordParts {
        start_local: time_at(row, START_LOCAL)?,
        end_local: time_at(row, END_LOCAL)?,
        start_utc: time_at(row, START_UTC)?,
        end_utc: time_at(row, END_UTC)?,
        elapsed_seconds: row.try_get(ELAPSED_SECONDS).map_err(corrupt)?,
        elapsed_human: text(ELAPSED_HUMAN)?,
        output_file: text(OUTPUT_FILE)?,
        log_file: text(LOG_FILE)?,
        rowcount: row.try_get(ROWCOUNT).map_err(corrupt)?,
        pid: row.try_get(PID).map_err(corrupt)?,
        date_code: text(DATE_CODE)?,
        classes,
        archived_file: optional(ARCHIVED_FILE)?,
    })
    .ok_or_else(|| corrupt("elapsed_seconds is not finite"))
}

/// One shared copy of each distinct text read, so a value met on millions
/// of rows costs a reference count each time, not an allocation.
#[derive(Debug, Default)]
pub struct SharedNames(std::collections::HashMap<String, Arc<str>>);

impl SharedNames {
    pub fn get(&mut self, value: Option<&str>) -> Option<Arc<str>> {
        let value = value?;
        if let Some(shared) = self.0.get(value) {
            return Some(shared.clone());
        }
        let shared = Arc::<str>::from(value);
        self.0.insert(value.to_owned(), shared.clone());
        Some(shared)
    }
    /// The four group values in columns `first`…`first + 3` of `row`.
    pub fn group_key(&mut self, row: &Row, first: usize) -> Result<GroupKey, RepositoryError> {
        Ok([
            self.get(row.try_get(first)?),
            self.get(row.try_get(first + 1)?),
            self.get(row.try_get(first + 2)?),
            self.get(row.try_get(first + 3)?),
        ])
    }
}

/// A statement's binds as driver values (borrow them with `params`).
pub fn values(statement: &Statement) -> Vec<Box<dyn ToSql + Sync + Send>> {
    statement.binds.iter().map(|(_, b)| value(b)).collect()
}

/// Driver values as the parameter list a query takes.
pub fn params(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A shared-layer bind as a driver value.
fn value(bind: &Bind) -> Box<dyn ToSql + Sync + Send> {
    match bind {
        Bind::Text(text) => Box::new(text.clone()),
        Bind::Integer(i) => Box::new(*i),
        Bind::Float(f) => Box::new(*f),
        Bind::Time(t) | Bind::Instant(t) => Box::new(instant(t)),
    }
}

/// PostgreSQL text cannot hold U+0000, which JSON can carry: such a value
/// is refused at its field (422) instead of failing the statement; `run`
/// is the record's position in its insert.
pub fn check_storable(run: usize, record: &PipelineInfo) -> Result<(), RepositoryError> {
    for (field, value) in record.text_fields() {
        if let Some(value) = value.filter(|v| v.contains('\0')) {
            let error = FieldError::new(
                "string_pattern_mismatch",
                "String should not contain the NUL character (U+0000), which the database cannot store",
            )
            .at(
                vec![LocItem::from("body"), LocItem::from(field)],
                serde_json::Value::String(value.to_owned()),
            );
            return Err(RepositoryError::Invalid {
                run,
                errors: ValidationErrors::single(error),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_offsets_give_back_what_was_written() {
        for text in [
            "2025-08-14T22:49:07",
            "2025-08-14T22:49:07.000001",
            "2025-08-14T22:49:07Z",
            "2025-08-14T22:49:07.250000+05:30",
            "2025-08-14T00:10:00-23:59",
            "1600-01-01T00:00:00+00:30",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let value = FlexDateTime::parse(text).unwrap();
            let back = flex_time(instant(&value), value.offset_seconds()).unwrap();
            assert_eq!(back.to_string(), text);
            assert_eq!(back, value);
        }
    }
}

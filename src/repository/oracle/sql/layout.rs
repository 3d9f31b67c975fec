//! The layout of the runs table the service was pointed at, found once
//! from the table itself: whether each time has an offset column beside
//! it, and whether each time column is a plain TIMESTAMP or a TIMESTAMP
//! WITH TIME ZONE. Two layouts matter:
//! - the *original* one (the Python service's, and this service's before
//!   offsets were kept): local times in TIMESTAMP, UTC times in TIMESTAMP
//!   WITH TIME ZONE, no offset columns;
//! - the *full* one (`pipeline-service ddl`): every time a TIMESTAMP with
//!   its `<COLUMN>_OFFSET` beside it; an original table upgraded with
//!   `ddl --add-offsets` has the offset columns with its original types.
//!
//! Statement text depends only on whether there are offset columns; the
//! column types decide how each time is bound, so that a bind always has
//! its column's type (a comparison of mixed types would convert the column
//! through the session's time zone and keep its index from being used).

use oracle::sql_type::OracleType;

use super::{OracleSchema, Table, ID_FIELD, KEY_COLUMNS, OFFSET_SUFFIX};
use crate::domain::FIELD_NAMES;
use crate::repository::sql::TIME_FIELDS;

/// The type of a time's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeColumn {
    /// `TIMESTAMP`: a reading without a zone.
    Plain,
    /// `TIMESTAMP WITH TIME ZONE`: an instant and the offset it holds
    /// (Oracle's offsets run from −12:00 to +14:00).
    Zoned,
}

impl TimeColumn {
    fn sql_type(self) -> &'static str {
        match self {
            TimeColumn::Plain => "TIMESTAMP",
            TimeColumn::Zoned => "TIMESTAMP WITH TIME ZONE",
        }
    }
}

/// The table's layout: its names (`OracleSchema`), whether each time has
/// an offset column, each time column's type, and the type of
/// `IDEMPOTENCY_AT` when the table has the idempotency columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    schema: OracleSchema,
    /// The shared SQL layer's view of the table (offset columns or not).
    table: Table,
    /// In `TIME_FIELDS` order.
    times: [TimeColumn; 4],
    key_at: Option<TimeColumn>,
}

impl Layout {
    pub fn new(
        schema: &OracleSchema,
        offsets: bool,
        times: [TimeColumn; 4],
        key_at: Option<TimeColumn>,
    ) -> Self {
        Self {
            table: Table::new(
                schema.table().to_owned(),
                schema.columns().to_vec(),
                schema.column(ID_FIELD).to_owned(),
                offsets,
            ),
            schema: schema.clone(),
            times,
            key_at,
        }
    }

    /// The layout `pipeline-service ddl` creates.
    pub fn full(schema: &OracleSchema) -> Self {
        Self::new(
            schema,
            true,
            [TimeColumn::Plain; 4],
            Some(TimeColumn::Plain),
        )
    }

    /// The original layout: local times plain, UTC times with a zone, no
    /// offset columns (with the idempotency columns as its DDL had them).
    pub fn original(schema: &OracleSchema) -> Self {
        use TimeColumn::{Plain, Zoned};
        Self::new(schema, false, [Plain, Plain, Zoned, Zoned], Some(Zoned))
    }

    /// The layout of a table whose columns (name and type, as Oracle
    /// describes a query of the table) are `described`, or why the service
    /// cannot use it: a column a run needs is missing, a time's column is
    /// neither TIMESTAMP nor TIMESTAMP WITH TIME ZONE, or only some of the
    /// offset columns exist.
    pub fn detect(
        schema: &OracleSchema,
        described: &[(String, OracleType)],
    ) -> Result<Self, String> {
        let find = |name: &str| {
            described
                .iter()
                .find(|(column, _)| column.eq_ignore_ascii_case(name))
                .map(|(_, kind)| kind)
        };
        let missing: Vec<String> = FIELD_NAMES
            .iter()
            .chain([&ID_FIELD])
            .filter(|field| find(schema.column(field)).is_none())
            .map(|field| format!("{} (for {field})", schema.column(field)))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "table {} has no column {}; point ORACLE_COLUMN_MAP at its columns or create it with `pipeline-service ddl`",
                schema.table(),
                missing.join(", ")
            ));
        }
        let time_column = |column: &str| {
            match find(column) {
            Some(OracleType::Timestamp(_)) => Ok(TimeColumn::Plain),
            Some(OracleType::TimestampTZ(_)) => Ok(TimeColumn::Zoned),
            Some(other) => Err(format!(
                "column {column} of table {} is {other}; a time needs TIMESTAMP or TIMESTAMP WITH TIME ZONE",
                schema.table()
            )),
            None => Err(format!("table {} has no column {column}", schema.table())),
        }
        };
        let mut times = [TimeColumn::Plain; 4];
        for (slot, field) in times.iter_mut().zip(TIME_FIELDS) {
            *slot = time_column(schema.column(field))?;
        }
        let offset_columns = TIME_FIELDS.map(|field| offset_column(schema, field));
        let (present, absent): (Vec<&String>, Vec<&String>) =
            offset_columns.iter().partition(|c| find(c).is_some());
        if !present.is_empty() && !absent.is_empty() {
            return Err(format!(
                "table {} has the offset column{} {} but not {}: add all four (`pipeline-service ddl --add-offsets`) or none",
                schema.table(),
                if present.len() > 1 { "s" } else { "" },
                join(&present),
                join(&absent)
            ));
        }
        for column in &present {
            if !matches!(find(column), Some(OracleType::Number(..))) {
                return Err(format!(
                    "column {column} of table {} must be a NUMBER (seconds east of UTC)",
                    schema.table()
                ));
            }
        }
        let key_at = match find(KEY_COLUMNS[2]) {
            None => None,
            Some(_) => Some(time_column(KEY_COLUMNS[2])?),
        };
        Ok(Self::new(schema, absent.is_empty(), times, key_at))
    }

    pub fn schema(&self) -> &OracleSchema {
        &self.schema
    }

    pub(in crate::repository::oracle) fn table(&self) -> &Table {
        &self.table
    }

    /// Whether each time has an offset column beside it.
    pub fn offsets(&self) -> bool {
        self.table.offset_column("start_utc").is_some()
    }

    /// The type of the column of the time `field`.
    pub fn time_column(&self, field: &str) -> TimeColumn {
        TIME_FIELDS
            .iter()
            .position(|f| *f == field)
            .map_or(TimeColumn::Plain, |i| self.times[i])
    }

    /// The type of `IDEMPOTENCY_AT` (plain when the table lacks it: a
    /// keyed statement then fails on the missing column, answered 501).
    pub fn key_at_column(&self) -> TimeColumn {
        self.key_at.unwrap_or(TimeColumn::Plain)
    }

    /// Whether the table has the idempotency columns.
    pub fn has_key_columns(&self) -> bool {
        self.key_at.is_some()
    }

    /// How many columns the select list has.
    pub fn select_width(&self) -> usize {
        self.table.select_width()
    }

    /// One line for the log: which layout, and what it means for records.
    pub fn describe(&self) -> String {
        let types = TIME_FIELDS
            .iter()
            .map(|field| {
                format!(
                    "{} {}",
                    self.schema.column(field),
                    self.time_column(field).sql_type()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let offsets = if self.offsets() {
            "with offset columns: records are stored exactly as written"
        } else {
            "without offset columns (the original layout): an aware local time loses its offset, a naive UTC time reads back as UTC, and a UTC time's offset must lie within -12:00..+14:00 (add the columns with `pipeline-service ddl --add-offsets`)"
        };
        let keys = if self.has_key_columns() {
            "with the idempotency columns"
        } else {
            "without the idempotency columns (Idempotency-Key answers 501; add them with `pipeline-service ddl --add-idempotency`)"
        };
        format!(
            "table {} {offsets}; {keys}; times: {types}",
            self.schema.table()
        )
    }
}

/// The offset column of the time `field`.
pub(super) fn offset_column(schema: &OracleSchema, field: &str) -> String {
    format!("{}{OFFSET_SUFFIX}", schema.column(field))
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

//! SQL for the Oracle backend, built as text plus a bind list so it can be
//! checked without a database. Identifiers come only from a validated
//! `OracleSchema`; every value is a bind variable. The queries (filters,
//! keyset, order, counts, summaries, activity, archived files) come from
//! the shared layer (`repository::sql`), which the live PostgreSQL tests
//! run; what is Oracle's own here is the schema mapping, inserts, keys,
//! retention and DDL.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::{FlexDateTime, IdempotencyKey, PipelineInfo, FIELD_NAMES};
use crate::repository::sql::{self as shared, Dialect, Table};
pub use crate::repository::sql::{Bind, Statement};
use crate::repository::{Position, RunFilter};

/// Why an Oracle table or column setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// An unquoted Oracle identifier: a letter, then letters, digits, `_`, `$`
/// or `#`, at most 128 characters. Quoted identifiers are not accepted, so
/// nothing from configuration can break out of an identifier position.
pub fn is_safe_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '#'))
        && name.len() <= 128
}

/// `TABLE` or `SCHEMA.TABLE`, each part a safe identifier.
pub fn validate_table(name: &str) -> Result<String, SchemaError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| is_safe_identifier(p)) {
        Ok(name.to_owned())
    } else {
        Err(SchemaError(format!(
            "{name:?} is not a valid table name (TABLE or SCHEMA.TABLE; letters, digits, _ $ #, starting with a letter)"
        )))
    }
}

/// The identity column's key in `ORACLE_COLUMN_MAP`, besides the record fields.
pub const ID_FIELD: &str = "id";

/// The table and its column names after `ORACLE_COLUMN_MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleSchema {
    table: Table,
}

impl OracleSchema {
    /// `column_map` is the raw `ORACLE_COLUMN_MAP` JSON (or nothing).
    pub fn new(table: &str, column_map: Option<&str>) -> Result<Self, SchemaError> {
        let table = validate_table(table)?;
        let mut mapped: BTreeMap<String, String> = BTreeMap::new();
        if let Some(text) = column_map.filter(|t| !t.trim().is_empty()) {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| SchemaError(format!("not valid JSON: {e}")))?;
            let Value::Object(entries) = value else {
                return Err(SchemaError(
                    "must be a JSON object of field -> column".into(),
                ));
            };
            for (field, column) in entries {
                if field != ID_FIELD && !FIELD_NAMES.contains(&field.as_str()) {
                    return Err(SchemaError(format!(
                        "{field:?} is not a record field (known: {}, {ID_FIELD})",
                        FIELD_NAMES.join(", ")
                    )));
                }
                let Value::String(column) = column else {
                    return Err(SchemaError(format!(
                        "the column for {field:?} must be a string"
                    )));
                };
                if !is_safe_identifier(&column) {
                    return Err(SchemaError(format!(
                        "{column:?} (for {field:?}) is not a safe column name (a letter, then letters, digits, _ $ #; at most 128)"
                    )));
                }
                mapped.insert(field, column);
            }
        }
        let column = |field: &str| {
            mapped
                .get(field)
                .cloned()
                .unwrap_or_else(|| field.to_ascii_uppercase())
        };
        Ok(Self {
            // Oracle keeps each time's offset inside the time itself.
            table: Table::new(
                table,
                FIELD_NAMES.iter().map(|f| column(f)).collect(),
                column(ID_FIELD),
                false,
            ),
        })
    }

    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// The column holding `field` (the identity column for `id`).
    pub fn column(&self, field: &str) -> &str {
        self.table.column(field)
    }

    fn id_column(&self) -> &str {
        self.table.seq()
    }

    fn columns(&self) -> &[String] {
        self.table.columns()
    }

    fn select_list(&self) -> String {
        self.table.select_list()
    }
}

/// Up to `fetch` matches (`None`: every one) from `position`, newest start
/// first, ties by the identity column, each followed by its identity
/// (column 16) so the key of the next page can be made. After a key, the
/// row-value comparison is spelled out so Oracle can use an index on
/// (start, id).
pub fn select_runs(
    schema: &OracleSchema,
    filter: &RunFilter,
    position: Position,
    fetch: Option<usize>,
) -> Statement {
    shared::select_runs(Dialect::Oracle, &schema.table, filter, position, fetch)
}

/// The distinct `archived_file` values (NULL included) of the runs with a
/// `date_code`, at most `:file_limit` rows (served by the DATE_CODE index).
pub fn archived_files(schema: &OracleSchema, date_code: &str, limit: usize) -> Statement {
    shared::archived_files(Dialect::Oracle, &schema.table, date_code, limit)
}

/// Runs older than `:cutoff`, oldest stored first, each with its identity
/// (column 16), for archiving before a retention delete.
pub fn select_older(schema: &OracleSchema) -> String {
    format!(
        "SELECT {}, {id} FROM {} WHERE {} < :cutoff ORDER BY {id}",
        schema.select_list(),
        schema.table(),
        schema.column("start_utc"),
        id = schema.id_column(),
    )
}

/// How many runs are older than `:cutoff` (up to identity `:max_id`), and
/// the greatest identity in the table.
pub fn count_older(schema: &OracleSchema) -> String {
    format!(
        "SELECT COUNT(CASE WHEN {} < :cutoff THEN 1 END), COUNT(*), MAX({}) FROM {}",
        schema.column("start_utc"),
        schema.id_column(),
        schema.table(),
    )
}

/// One batch of a retention delete; repeated (each batch committed) until
/// it deletes nothing. `:max_id` keeps runs stored during the delete.
pub fn delete_older_batch(schema: &OracleSchema) -> String {
    format!(
        "DELETE FROM {} WHERE {} < :cutoff AND {} <= :max_id AND ROWNUM <= :batch",
        schema.table(),
        schema.column("start_utc"),
        schema.id_column(),
    )
}

pub fn count(schema: &OracleSchema, filter: &RunFilter) -> Statement {
    shared::count(Dialect::Oracle, &schema.table, filter)
}

/// Per-group summaries; averages count only positive values, as the JSON
/// Lines backend does. Groups with the same last run keep the order of
/// their first stored run.
pub fn summary(schema: &OracleSchema) -> Statement {
    shared::summary(Dialect::Oracle, &schema.table)
}

/// The latest run of every group with the group's run count.
pub fn activity(schema: &OracleSchema) -> Statement {
    shared::activity(Dialect::Oracle, &schema.table)
}

/// The statement every inserted record uses.
pub fn insert_sql(schema: &OracleSchema) -> String {
    let placeholders: Vec<String> = FIELD_NAMES.iter().map(|f| format!(":{f}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        schema.table(),
        schema.select_list(),
        placeholders.join(", ")
    )
}

/// The binds of one record, in `FIELD_NAMES` order.
pub fn insert_binds(record: &PipelineInfo) -> Vec<(String, Bind)> {
    let text = |v: Option<&str>| Bind::Text(v.map(str::to_owned));
    let values = [
        Bind::Time(record.start_local()),
        Bind::Time(record.end_local()),
        Bind::Time(record.start_utc()),
        Bind::Time(record.end_utc()),
        Bind::Float(record.elapsed_seconds()),
        text(Some(record.elapsed_human())),
        text(Some(record.output_file())),
        Bind::Integer(record.rowcount()),
        text(Some(record.log_file())),
        Bind::Integer(record.pid()),
        text(Some(record.date_code())),
        text(record.pipeline_name()),
        text(record.script_name()),
        text(record.pipeline_type()),
        text(record.environment()),
        text(record.archived_file()),
    ];
    FIELD_NAMES
        .iter()
        .map(|f| (*f).to_owned())
        .zip(values)
        .collect()
}

/// The idempotency columns: key (unique when present), the fingerprint of
/// the record it was sent with, and when it was stored. Optional: only
/// inserts that carry a key use them.
pub const KEY_COLUMNS: [&str; 3] = [
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_FINGERPRINT",
    "IDEMPOTENCY_AT",
];

/// An insert that also stores the idempotency columns.
pub fn insert_keyed_sql(schema: &OracleSchema) -> String {
    let placeholders: Vec<String> = FIELD_NAMES
        .iter()
        .chain(["key", "fingerprint", "key_at"].iter())
        .map(|f| format!(":{f}"))
        .collect();
    format!(
        "INSERT INTO {} ({}, {}) VALUES ({})",
        schema.table(),
        schema.select_list(),
        KEY_COLUMNS.join(", "),
        placeholders.join(", ")
    )
}

/// The binds `insert_keyed_sql` adds to a record's.
pub fn key_binds(key: Option<&IdempotencyKey>, at: FlexDateTime) -> Vec<(String, Bind)> {
    vec![
        ("key".into(), Bind::Text(key.map(|k| k.key().to_owned()))),
        (
            "fingerprint".into(),
            Bind::Text(key.map(|k| k.fingerprint().to_owned())),
        ),
        ("key_at".into(), Bind::Instant(at)),
    ]
}

/// The record stored under a key (columns 0–15), its fingerprint (16) and
/// when the key was stored (17).
pub fn key_lookup(schema: &OracleSchema) -> String {
    format!(
        "SELECT {}, {}, {} FROM {} WHERE {} = :key",
        schema.select_list(),
        KEY_COLUMNS[1],
        KEY_COLUMNS[2],
        schema.table(),
        KEY_COLUMNS[0]
    )
}

/// Frees an expired key so it can be used again (the unique index would
/// refuse it otherwise); the run itself stays.
pub fn key_release(schema: &OracleSchema) -> String {
    format!(
        "UPDATE {} SET {key} = NULL WHERE {key} = :key",
        schema.table(),
        key = KEY_COLUMNS[0]
    )
}

pub fn insert(schema: &OracleSchema, record: &PipelineInfo) -> Statement {
    Statement {
        sql: insert_sql(schema),
        binds: insert_binds(record),
    }
}

/// The trivial query readiness runs.
pub const PING: &str = "SELECT 1 FROM DUAL";

/// The column type of a record field, chosen by name so that the order of
/// the fields cannot pair a column with another field's type.
fn column_type(field: &str) -> &'static str {
    match field {
        "start_local" | "end_local" => "TIMESTAMP(6) NOT NULL",
        "start_utc" | "end_utc" => "TIMESTAMP(6) WITH TIME ZONE NOT NULL",
        "elapsed_seconds" => "BINARY_DOUBLE NOT NULL",
        "rowcount" | "pid" => "NUMBER(19) NOT NULL",
        "elapsed_human" | "output_file" | "log_file" | "date_code" => {
            "VARCHAR2(4000 CHAR) NOT NULL"
        }
        _ => "VARCHAR2(4000 CHAR)",
    }
}

/// Table, identity and indexes for `schema`. Local times are plain
/// TIMESTAMP (wall-clock readings without a zone); UTC times keep their
/// offset in TIMESTAMP WITH TIME ZONE.
pub fn ddl(schema: &OracleSchema) -> String {
    let key_types = [
        "VARCHAR2(255 CHAR)",
        "VARCHAR2(64)",
        "TIMESTAMP(6) WITH TIME ZONE",
    ];
    let table = schema.table();
    let base = table.rsplit('.').next().unwrap_or(table);
    let mut lines = vec![format!(
        "    {} NUMBER GENERATED ALWAYS AS IDENTITY",
        schema.id_column()
    )];
    for (column, field) in schema.columns().iter().zip(FIELD_NAMES) {
        lines.push(format!("    {column} {}", column_type(field)));
    }
    for (column, kind) in KEY_COLUMNS.iter().zip(key_types) {
        lines.push(format!("    {column} {kind}"));
    }
    lines.push(format!(
        "    CONSTRAINT {base}_PK PRIMARY KEY ({})",
        schema.id_column()
    ));
    let index = |suffix: &str, columns: String| index_ddl(schema, "INDEX", suffix, &columns);
    [
        format!("CREATE TABLE {table} (\n{}\n);", lines.join(",\n")),
        index(
            "NAME_START_IX",
            format!(
                "{}, {}",
                schema.column("pipeline_name"),
                schema.column("start_utc")
            ),
        ),
        index(
            "START_IX",
            format!("{}, {}", schema.column("start_utc"), schema.id_column()),
        ),
        index("DATE_CODE_IX", schema.column("date_code").to_owned()),
        index_ddl(schema, "UNIQUE INDEX", "IDEMPOTENCY_UX", KEY_COLUMNS[0]),
    ]
    .join("\n")
        + "\n"
}

/// `CREATE <kind> <schema.>TABLE_SUFFIX ON table (columns);`
fn index_ddl(schema: &OracleSchema, kind: &str, suffix: &str, columns: &str) -> String {
    let table = schema.table();
    let (prefix, base) = match table.rsplit_once('.') {
        Some((owner, base)) => (format!("{owner}."), base),
        None => (String::new(), table),
    };
    format!("CREATE {kind} {prefix}{base}_{suffix} ON {table} ({columns});")
}

/// Adds the idempotency columns to a table created before they existed.
pub fn add_key_columns(schema: &OracleSchema) -> String {
    format!(
        "ALTER TABLE {} ADD ({} VARCHAR2(255 CHAR), {} VARCHAR2(64), {} TIMESTAMP(6) WITH TIME ZONE);\n{}\n",
        schema.table(),
        KEY_COLUMNS[0],
        KEY_COLUMNS[1],
        KEY_COLUMNS[2],
        index_ddl(schema, "UNIQUE INDEX", "IDEMPOTENCY_UX", KEY_COLUMNS[0])
    )
}

#[cfg(test)]
mod tests;

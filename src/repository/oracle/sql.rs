//! SQL for the Oracle backend, built as text plus a bind list so it can be
//! checked without a database. Identifiers come only from a validated
//! `OracleSchema`; every value is a bind variable. Statements are built
//! for the table's `Layout` (with offset columns or without, found from
//! the table), DDL for the names alone. The queries (filters, keyset,
//! order, counts, summaries, activity, archived files) come from the
//! shared layer (`repository::sql`), which the live PostgreSQL tests run;
//! what is Oracle's own here is the schema mapping and its checks, the
//! layout, the stored forms of texts and durations (Oracle turns `''` into
//! NULL and -0.0 into +0.0), inserts, keys, retention, readiness and DDL.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde_json::Value;

mod layout;
pub use self::layout::{Layout, TimeColumn};

use crate::domain::{FlexDateTime, IdempotencyKey, FIELD_NAMES};
use crate::repository::sql::{self as shared, Dialect, Table, TIME_FIELDS};
pub use crate::repository::sql::{Bind, Statement};

/// A value as the Oracle backend binds it (`rows::bind_type` gives each
/// kind its one Oracle type). Texts are already in their stored form.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Number(Option<i64>),
    Double(f64),
    /// A plain TIMESTAMP holding this reading.
    Timestamp(NaiveDateTime),
    /// A TIMESTAMP WITH TIME ZONE: this reading at this offset (seconds
    /// east of UTC, within Oracle's −12:00..+14:00).
    TimestampTz(NaiveDateTime, i32),
}

impl TimeColumn {
    /// An instant (a filter bound, a key, a cutoff) bound as this column
    /// holds instants: a plain TIMESTAMP of its UTC reading, or a
    /// TIMESTAMP WITH TIME ZONE at UTC. Either way the comparison with the
    /// column involves no time zone conversion.
    ///
    /// Oracle's timestamps cover the years 1 to 9999 only, while a query
    /// may bound past either end (`9999-12-31T23:00:00-05:00` is in the
    /// year 10000 at UTC). Every stored instant lies inside that range (the
    /// service refuses others), so the bound is moved to the nearest end,
    /// which selects the same runs instead of failing in the driver.
    pub fn instant(self, at: FlexDateTime) -> Param {
        let utc = within_oracle_years(utc_reading(&at));
        match self {
            TimeColumn::Plain => Param::Timestamp(utc),
            TimeColumn::Zoned => Param::TimestampTz(utc, 0),
        }
    }
}

/// Which end of the years 1–9999 that Oracle's timestamps hold a reading
/// lies beyond, if it lies beyond either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeyondOracleYears {
    Before,
    After,
}

impl BeyondOracleYears {
    pub fn of(reading: &NaiveDateTime) -> Option<Self> {
        use chrono::Datelike;
        match reading.year() {
            ..1 => Some(Self::Before),
            10_000.. => Some(Self::After),
            _ => None,
        }
    }

    /// The reading at this end of the range that Oracle still holds.
    fn nearest(self) -> Option<NaiveDateTime> {
        let (date, time) = match self {
            Self::Before => ((1, 1, 1), (0, 0, 0, 0)),
            Self::After => ((9999, 12, 31), (23, 59, 59, 999_999)),
        };
        chrono::NaiveDate::from_ymd_opt(date.0, date.1, date.2)
            .and_then(|day| day.and_hms_micro_opt(time.0, time.1, time.2, time.3))
    }
}

/// `reading` moved into the years 1–9999 that Oracle's timestamps hold.
fn within_oracle_years(reading: NaiveDateTime) -> NaiveDateTime {
    BeyondOracleYears::of(&reading)
        .and_then(BeyondOracleYears::nearest)
        .unwrap_or(reading)
}

/// The UTC reading of an instant (a naive value counts as UTC).
pub fn utc_reading(value: &FlexDateTime) -> NaiveDateTime {
    FlexDateTime::from_instant_micros(value.instant_micros()).wall_clock()
}

/// What marks a stored text that was written empty or starting with it.
const ESCAPE: char = '\0';

/// A text as stored: `""` and texts starting with U+0000 get one U+0000
/// in front, which keeps `""` apart from NULL and the mapping reversible.
pub fn stored_text(text: &str) -> Cow<'_, str> {
    if text.is_empty() || text.starts_with(ESCAPE) {
        Cow::Owned(format!("{ESCAPE}{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A stored text as written (`stored_text` undone).
pub fn read_text(mut stored: String) -> String {
    if stored.starts_with(ESCAPE) {
        stored.remove(0);
    }
    stored
}

/// A duration as stored. BINARY_DOUBLE keeps every finite f64 except
/// -0.0, which Oracle turns into +0.0; -0.0 is stored as -infinity, a
/// value no record can hold (the API refuses infinities), and one that
/// averages of positive durations leave out just as they leave out -0.0.
pub fn stored_elapsed(seconds: f64) -> f64 {
    if seconds == 0.0 && seconds.is_sign_negative() {
        f64::NEG_INFINITY
    } else {
        seconds
    }
}

/// A stored duration as written (`stored_elapsed` undone).
pub fn read_elapsed(stored: f64) -> f64 {
    if stored == f64::NEG_INFINITY {
        -0.0
    } else {
        stored
    }
}

/// A statement's binds as Oracle params: texts in their stored form
/// (filters and a `date_code` compare with stored values), instants with
/// the type of the column they are compared with (`end_utc` for its
/// bound, `start_utc` for the others: its bound, a keyset key).
pub fn params(layout: &Layout, statement: &Statement) -> Vec<(String, Param)> {
    statement
        .binds
        .iter()
        .map(|(name, bind)| {
            let param = match bind {
                Bind::Text(text) => {
                    Param::Text(text.as_deref().map(|t| stored_text(t).into_owned()))
                }
                Bind::Integer(i) => Param::Number(Some(*i)),
                Bind::Float(f) => Param::Double(*f),
                Bind::Time(t) | Bind::Instant(t) => {
                    let compared = if name == "end_utc" {
                        "end_utc"
                    } else {
                        "start_utc"
                    };
                    layout.time_column(compared).instant(*t)
                }
            };
            (name.clone(), param)
        })
        .collect()
}
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

/// Oracle's reserved words (the SQL Language Reference's list, which is
/// `V$RESERVED_WORDS` with `RESERVED = 'Y'`): unquoted, as a table or
/// column name, each makes the statements fail to parse.
const RESERVED_WORDS: &[&str] = &[
    "ACCESS",
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "AUDIT",
    "BETWEEN",
    "BY",
    "CHAR",
    "CHECK",
    "CLUSTER",
    "COLUMN",
    "COMMENT",
    "COMPRESS",
    "CONNECT",
    "CREATE",
    "CURRENT",
    "DATE",
    "DECIMAL",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DROP",
    "ELSE",
    "EXCLUSIVE",
    "EXISTS",
    "FILE",
    "FLOAT",
    "FOR",
    "FROM",
    "GRANT",
    "GROUP",
    "HAVING",
    "IDENTIFIED",
    "IMMEDIATE",
    "IN",
    "INCREMENT",
    "INDEX",
    "INITIAL",
    "INSERT",
    "INTEGER",
    "INTERSECT",
    "INTO",
    "IS",
    "LEVEL",
    "LIKE",
    "LOCK",
    "LONG",
    "MAXEXTENTS",
    "MINUS",
    "MLSLABEL",
    "MODE",
    "MODIFY",
    "NOAUDIT",
    "NOCOMPRESS",
    "NOT",
    "NOWAIT",
    "NULL",
    "NUMBER",
    "OF",
    "OFFLINE",
    "ON",
    "ONLINE",
    "OPTION",
    "OR",
    "ORDER",
    "PCTFREE",
    "PRIOR",
    "PUBLIC",
    "RAW",
    "RENAME",
    "RESOURCE",
    "REVOKE",
    "ROW",
    "ROWID",
    "ROWNUM",
    "ROWS",
    "SELECT",
    "SESSION",
    "SET",
    "SHARE",
    "SIZE",
    "SMALLINT",
    "START",
    "SUCCESSFUL",
    "SYNONYM",
    "SYSDATE",
    "TABLE",
    "THEN",
    "TO",
    "TRIGGER",
    "UID",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USER",
    "VALIDATE",
    "VALUES",
    "VARCHAR",
    "VARCHAR2",
    "VIEW",
    "WHENEVER",
    "WHERE",
    "WITH",
];

/// Names the service's statements use besides the mapped columns: the
/// idempotency columns and the aliases of the activity query.
const SERVICE_NAMES: &[&str] = &[
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_FINGERPRINT",
    "IDEMPOTENCY_AT",
    "TOTAL_RUNS",
    "LATEST",
];

/// What the DDL appends to the table's name for its constraint and
/// indexes; the longest one bounds the table's name.
const NAME_SUFFIXES: [&str; 6] = [
    "_PK",
    "_START_IX",
    "_NAME_START_IX",
    "_ENV_START_IX",
    "_DATE_CODE_IX",
    "_IDEMPOTENCY_UX",
];

/// What is appended to a time's column to name the column of its offset.
const OFFSET_SUFFIX: &str = "_OFFSET";

/// The longest identifier Oracle accepts (12.2 and later).
const MAX_IDENTIFIER: usize = 128;

fn is_reserved(name: &str) -> bool {
    RESERVED_WORDS
        .iter()
        .any(|word| word.eq_ignore_ascii_case(name))
}

/// `TABLE` or `SCHEMA.TABLE`, each part a safe identifier that is not a
/// reserved word, the table's name short enough that the names of its
/// indexes (`<TABLE>_IDEMPOTENCY_UX`…) stay within 128 characters.
pub fn validate_table(name: &str) -> Result<String, SchemaError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| is_safe_identifier(p)) {
        return Err(SchemaError(format!(
            "{name:?} is not a valid table name (TABLE or SCHEMA.TABLE; letters, digits, _ $ #, starting with a letter)"
        )));
    }
    if let Some(word) = parts.iter().find(|p| is_reserved(p)) {
        return Err(SchemaError(format!(
            "{word:?} in {name:?} is an Oracle reserved word; choose another name"
        )));
    }
    let base = parts.last().copied().unwrap_or(name);
    let longest = NAME_SUFFIXES.iter().map(|s| s.len()).max().unwrap_or(0);
    if base.len() + longest > MAX_IDENTIFIER {
        return Err(SchemaError(format!(
            "the table name {base:?} is {} characters; at most {} leave room for the index names made from it (\"{base}_IDEMPOTENCY_UX\" must fit in {MAX_IDENTIFIER})",
            base.len(),
            MAX_IDENTIFIER - longest
        )));
    }
    Ok(name.to_owned())
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
        let schema = Self {
            // The names of the layout `ddl` creates; the statements use the
            // layout the table turns out to have (`Layout`).
            table: Table::new(
                table,
                FIELD_NAMES.iter().map(|f| column(f)).collect(),
                column(ID_FIELD),
                true,
            ),
        };
        schema.check_names()?;
        Ok(schema)
    }

    /// Refuses column names that cannot work: reserved words, a time's
    /// column too long to name its offset column after, and any name used
    /// twice among the mapped columns, the offset columns and the names of
    /// the service's own (idempotency columns, query aliases).
    fn check_names(&self) -> Result<(), SchemaError> {
        let mut taken: Vec<(String, String)> = SERVICE_NAMES
            .iter()
            .map(|n| ((*n).to_owned(), format!("the service's own {n}")))
            .collect();
        let fields = FIELD_NAMES.iter().chain([&ID_FIELD]);
        for field in fields {
            let column = self.column(field);
            if is_reserved(column) {
                return Err(SchemaError(format!(
                    "{column:?} (for {field:?}) is an Oracle reserved word; choose another name"
                )));
            }
            let mut names = vec![(column.to_owned(), format!("{field:?}"))];
            if TIME_FIELDS.contains(field) {
                if column.len() + OFFSET_SUFFIX.len() > MAX_IDENTIFIER {
                    return Err(SchemaError(format!(
                        "{column:?} (for {field:?}) is too long: a time's column has at most {} characters, so that its offset column {column}{OFFSET_SUFFIX} fits in {MAX_IDENTIFIER}",
                        MAX_IDENTIFIER - OFFSET_SUFFIX.len()
                    )));
                }
                names.push((
                    format!("{column}{OFFSET_SUFFIX}"),
                    format!("the offset of {field:?}"),
                ));
            }
            for (name, user) in names {
                if let Some((_, other)) = taken.iter().find(|(t, _)| t.eq_ignore_ascii_case(&name))
                {
                    return Err(SchemaError(format!(
                        "column {name:?} would hold both {other} and {user}; each needs a column of its own"
                    )));
                }
                taken.push((name, user));
            }
        }
        Ok(())
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
}

/// Up to `fetch` matches (`None`: every one) from `position`, newest start
/// first, ties by the identity column, each followed by its identity (the
/// column after the select list) so the key of the next page can be made.
/// The order is the order of the `START_IX` index; after a key, the bound
/// `start <= key` starts the index range scan at the key.
pub fn select_runs(
    layout: &Layout,
    filter: &RunFilter,
    position: Position,
    fetch: Option<usize>,
) -> Statement {
    shared::select_runs(Dialect::Oracle, layout.table(), filter, position, fetch)
}

/// The distinct `archived_file` values (NULL included) of the runs with a
/// `date_code`, at most `:file_limit` rows (served by the DATE_CODE index).
pub fn archived_files(layout: &Layout, date_code: &str, limit: usize) -> Statement {
    shared::archived_files(Dialect::Oracle, layout.table(), date_code, limit)
}

/// The runs older than `:cutoff` up to identity `:max_id`, oldest stored
/// first, each with its identity (the column after the select list), for
/// archiving before a retention delete.
pub fn select_older(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "SELECT {}, {id} FROM {} WHERE {} < :cutoff AND {id} <= :max_id ORDER BY {id}",
        table.select_list(),
        table.name(),
        table.column("start_utc"),
        id = table.seq(),
    )
}

/// How many runs are older than `:cutoff`, how many there are, and the
/// greatest identity in the table.
pub fn count_older(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "SELECT COUNT(CASE WHEN {} < :cutoff THEN 1 END), COUNT(*), MAX({}) FROM {}",
        table.column("start_utc"),
        table.seq(),
        table.name(),
    )
}

/// One batch of a retention delete without an archive; repeated (each
/// batch committed) until it deletes nothing. `:max_id` keeps runs stored
/// during the delete.
pub fn delete_older_batch(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "DELETE FROM {} WHERE {} < :cutoff AND {} <= :max_id AND ROWNUM <= :batch",
        table.name(),
        table.column("start_utc"),
        table.seq(),
    )
}

/// Deletes one archived run by identity (array DML: one round trip per
/// batch of identities), so a retention with an archive deletes exactly
/// the runs it archived, never one committed after it read them.
pub fn delete_by_id(layout: &Layout) -> String {
    let table = layout.table();
    format!("DELETE FROM {} WHERE {} = :id", table.name(), table.seq())
}

pub fn count(layout: &Layout, filter: &RunFilter) -> Statement {
    shared::count(Dialect::Oracle, layout.table(), filter)
}

/// Per-group summaries; averages count only positive values, as the JSON
/// Lines backend does. Groups with the same last run keep the order of
/// their first stored run.
pub fn summary(layout: &Layout) -> Statement {
    shared::summary(Dialect::Oracle, layout.table())
}

/// The latest run of every group with the group's run count.
pub fn activity(layout: &Layout) -> Statement {
    shared::activity(Dialect::Oracle, layout.table())
}

/// The placeholders of a record's values in select-list order: each
/// field, each time followed by its offset where the table keeps offsets
/// (`rows::record_params` binds them in this order).
fn record_placeholders(layout: &Layout) -> Vec<String> {
    let mut placeholders = Vec::with_capacity(layout.select_width());
    for field in FIELD_NAMES {
        placeholders.push(format!(":{field}"));
        if layout.offsets() && TIME_FIELDS.contains(&field) {
            placeholders.push(format!(":{field}_offset"));
        }
    }
    placeholders
}

/// The statement every inserted record uses.
pub fn insert_sql(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name(),
        table.select_list(),
        record_placeholders(layout).join(", ")
    )
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
pub fn insert_keyed_sql(layout: &Layout) -> String {
    let table = layout.table();
    let mut placeholders = record_placeholders(layout);
    placeholders.extend([":key", ":fingerprint", ":key_at"].map(String::from));
    format!(
        "INSERT INTO {} ({}, {}) VALUES ({})",
        table.name(),
        table.select_list(),
        KEY_COLUMNS.join(", "),
        placeholders.join(", ")
    )
}

/// The params `insert_keyed_sql` adds to a record's. Keys and
/// fingerprints are never empty, so they are stored as they are; the time
/// is bound as `IDEMPOTENCY_AT` holds instants.
pub fn key_params(
    layout: &Layout,
    key: Option<&IdempotencyKey>,
    at: FlexDateTime,
) -> Vec<(String, Param)> {
    vec![
        ("key".into(), Param::Text(key.map(|k| k.key().to_owned()))),
        (
            "fingerprint".into(),
            Param::Text(key.map(|k| k.fingerprint().to_owned())),
        ),
        ("key_at".into(), layout.key_at_column().instant(at)),
    ]
}

/// The record stored under a key (the select list), its fingerprint and
/// when the key was stored (the two columns after it).
pub fn key_lookup(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "SELECT {}, {}, {} FROM {} WHERE {} = :key",
        table.select_list(),
        KEY_COLUMNS[1],
        KEY_COLUMNS[2],
        table.name(),
        KEY_COLUMNS[0]
    )
}

/// Frees an expired key so it can be used again (the unique index would
/// refuse it otherwise); the run itself stays.
pub fn key_release(layout: &Layout) -> String {
    format!(
        "UPDATE {} SET {key} = NULL WHERE {key} = :key",
        layout.table().name(),
        key = KEY_COLUMNS[0]
    )
}

/// The trivial query a new pool checks its first session with.
pub const PING: &str = "SELECT 1 FROM DUAL";

/// A query of no rows whose description (each column's name and type) is
/// what `Layout::detect` reads. Oracle answers it from the data
/// dictionary, for a table, a view or a synonym, with no privilege beyond
/// reading the table.
pub fn describe_table(schema: &OracleSchema) -> String {
    format!("SELECT * FROM {} WHERE 1 = 0", schema.table())
}

/// A query of no rows naming every column the layout uses (the record's,
/// the offsets when kept, the identity; the idempotency columns are
/// optional): it fails with ORA-00904 or ORA-00942 unless the table still
/// has them all.
pub fn table_probe(layout: &Layout) -> String {
    let table = layout.table();
    format!(
        "SELECT {}, {} FROM {} WHERE 1 = 0",
        table.select_list(),
        table.seq(),
        table.name()
    )
}

/// The column type of a record field, chosen by name so that the order of
/// the fields cannot pair a column with another field's type. A local
/// time's column holds its wall-clock reading as written, a UTC time's
/// column its UTC instant (the offset of each beside it); texts hold at most `rows::TEXT_MAX_BYTES`
/// bytes whatever the declared length (under `MAX_STRING_SIZE=STANDARD`),
/// which the service checks before it binds.
fn column_type(field: &str) -> &'static str {
    match field {
        "start_local" | "end_local" | "start_utc" | "end_utc" => "TIMESTAMP(6) NOT NULL",
        "elapsed_seconds" => "BINARY_DOUBLE NOT NULL",
        "rowcount" | "pid" => "NUMBER(19) NOT NULL",
        "elapsed_human" | "output_file" | "log_file" | "date_code" => {
            "VARCHAR2(4000 CHAR) NOT NULL"
        }
        _ => "VARCHAR2(4000 CHAR)",
    }
}

/// The type of a time's offset column: the offset the time was written
/// with, in seconds east of UTC. NULL means "as the time's column holds
/// it": naive in a plain TIMESTAMP, the column's own offset in a TIMESTAMP
/// WITH TIME ZONE. NULL is what rows written before the column existed
/// (or by a writer that does not know it, such as the Python service)
/// hold, so they read as they always did.
const OFFSET_TYPE: &str = "NUMBER(5) CHECK ({} BETWEEN -86399 AND 86399)";

/// The offset column's value for a time written naive into a TIMESTAMP
/// WITH TIME ZONE column (which holds it at +00:00): NULL there means the
/// column's own offset, and every whole minute is an offset, so the mark
/// is one second — not a whole minute, hence never an offset the API
/// accepts, and read as an offset by another reader it is as good as UTC,
/// which is what a naive time counts as.
pub const NAIVE_IN_ZONED: i64 = 1;

/// The idempotency columns' types: the key is at most 255 ASCII
/// characters, the fingerprint 64 hex digits, the time a UTC reading.
const KEY_TYPES: [&str; 3] = ["VARCHAR2(255 CHAR)", "VARCHAR2(64)", "TIMESTAMP(6)"];

/// Table, identity and indexes for `schema`, in the full layout: each
/// time is its reading (a local time's wall clock, a UTC time's instant)
/// and its offset; the indexes put runs in answer order (start
/// descending, identity ascending), so pages, keyset pages and retention
/// read them from the index instead of sorting.
pub fn ddl(schema: &OracleSchema) -> String {
    let table = schema.table();
    let base = table.rsplit('.').next().unwrap_or(table);
    let mut lines = vec![format!(
        "    {} NUMBER GENERATED ALWAYS AS IDENTITY",
        schema.id_column()
    )];
    for (column, field) in schema.columns().iter().zip(FIELD_NAMES) {
        lines.push(format!("    {column} {}", column_type(field)));
        if TIME_FIELDS.contains(&field) {
            lines.push(offset_column_ddl(schema, field));
        }
    }
    for (column, kind) in KEY_COLUMNS.iter().zip(KEY_TYPES) {
        lines.push(format!("    {column} {kind}"));
    }
    lines.push(format!(
        "    CONSTRAINT {base}{} PRIMARY KEY ({})",
        NAME_SUFFIXES[0],
        schema.id_column()
    ));
    let in_order = |leading: Option<&str>| {
        let order = format!(
            "{} DESC, {}",
            schema.column("start_utc"),
            schema.id_column()
        );
        match leading {
            Some(field) => format!("{}, {order}", schema.column(field)),
            None => order,
        }
    };
    let index = |suffix: &str, columns: String| index_ddl(schema, "INDEX", suffix, &columns);
    [
        format!("CREATE TABLE {table} (\n{}\n);", lines.join(",\n")),
        index(NAME_SUFFIXES[1], in_order(None)),
        index(NAME_SUFFIXES[2], in_order(Some("pipeline_name"))),
        index(NAME_SUFFIXES[3], in_order(Some("environment"))),
        index(NAME_SUFFIXES[4], schema.column("date_code").to_owned()),
        index_ddl(schema, "UNIQUE INDEX", NAME_SUFFIXES[5], KEY_COLUMNS[0]),
    ]
    .join("\n")
        + "\n"
}

/// `<COLUMN>_OFFSET NUMBER(5) CHECK (…)`, the offset column of `field`.
fn offset_column_ddl(schema: &OracleSchema, field: &str) -> String {
    let offset = layout::offset_column(schema, field);
    format!("    {offset} {}", OFFSET_TYPE.replace("{}", &offset))
}

/// `CREATE <kind> <schema.>TABLE<suffix> ON table (columns);`
fn index_ddl(schema: &OracleSchema, kind: &str, suffix: &str, columns: &str) -> String {
    let table = schema.table();
    let (prefix, base) = match table.rsplit_once('.') {
        Some((owner, base)) => (format!("{owner}."), base),
        None => (String::new(), table),
    };
    format!("CREATE {kind} {prefix}{base}{suffix} ON {table} ({columns});")
}

/// Adds the idempotency columns to a table created before they existed.
pub fn add_key_columns(schema: &OracleSchema) -> String {
    format!(
        "ALTER TABLE {} ADD ({} {}, {} {}, {} {});\n{}\n",
        schema.table(),
        KEY_COLUMNS[0],
        KEY_TYPES[0],
        KEY_COLUMNS[1],
        KEY_TYPES[1],
        KEY_COLUMNS[2],
        KEY_TYPES[2],
        index_ddl(schema, "UNIQUE INDEX", NAME_SUFFIXES[5], KEY_COLUMNS[0])
    )
}

/// Adds the offset columns to a table of the original layout (local times
/// TIMESTAMP, UTC times TIMESTAMP WITH TIME ZONE), which keeps its column
/// types, so its other readers see the same values. The rows it holds get
/// NULL offsets, which mean "as the time's column holds it": they read
/// back exactly as before the upgrade (local times naive, UTC times with
/// the offset their column holds), and so do rows written afterwards by a
/// writer that does not name the offset columns.
pub fn add_offset_columns(schema: &OracleSchema) -> String {
    let columns = TIME_FIELDS
        .iter()
        .map(|field| offset_column_ddl(schema, field).trim().to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    format!("ALTER TABLE {} ADD ({columns});\n", schema.table())
}

#[cfg(test)]
mod tests;

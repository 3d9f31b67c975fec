//! The Oracle backend: the production store. Runs on tokio's blocking pool
//! (ODPI-C calls block), with a session pool, call timeouts, a retry on a
//! dead session for reads, and 503-class errors when the database is out of
//! reach. The SQL itself lives in `sql.rs` so it can be checked without a
//! database.

pub mod sql;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oracle::pool::{GetMode, Pool, PoolBuilder};
use oracle::sql_type::{OracleType, Timestamp, ToSql};
use oracle::{Connection, Row};
use serde_json::{Map, Value};

use self::sql::{Bind, OracleSchema, Statement};
use super::insert::{self, InsertOutcome, KnownKey, NewRun};
use super::{
    KeysetPage, Page, PipelineInfoRepository, RepositoryError, RunFilter, RunKey,
};
use crate::config::OracleSettings;
use crate::domain::{
    FieldError, FlexDateTime, LocItem, PipelineActivity, PipelineInfo, PipelineSummary,
    ValidationErrors, FIELD_NAMES,
};
use crate::metrics::METRICS;

/// What to install when the Oracle client libraries cannot be loaded.
pub const INSTANT_CLIENT_HELP: &str = "the Oracle client library (libclntsh) could not be loaded. \
Install Oracle Instant Client (Basic or Basic Light, 19c or newer) from Oracle's download page, \
then point the service at it: LD_LIBRARY_PATH=/opt/oracle/instantclient_23_5 (or register the folder \
with ldconfig). The Dockerfile's `oracle` stage builds an image that includes it";

#[derive(Clone)]
pub struct OraclePipelineRepository {
    /// How long an idempotency key protects against repeats.
    key_retention: Duration,
    pool: Arc<Pool>,
    schema: Arc<OracleSchema>,
    call_timeout: Duration,
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum OracleStartError {
    #[error("{INSTANT_CLIENT_HELP} (driver said: {0})")]
    ClientMissing(String),
    #[error("cannot open the Oracle session pool: {0}")]
    Connect(String),
    #[error("no Oracle session within {0:?}; is the database reachable?")]
    ConnectTimeout(Duration),
}

/// Sessions use UTC as their time zone (unless the operator set `ORA_SDTZ`),
/// so a value in a plain TIMESTAMP column compares as UTC against filter
/// bounds, as naive values do in the JSON Lines store. The Oracle client
/// reads `ORA_SDTZ` when it opens sessions.
fn use_utc_sessions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("ORA_SDTZ").is_none() {
            // Set before the first session exists and only once; nothing
            // else in the process reads this variable concurrently.
            std::env::set_var("ORA_SDTZ", "UTC");
        }
    });
}

/// ODPI-C reports a missing client library as DPI-1047.
fn is_client_missing(error: &oracle::Error) -> bool {
    error.to_string().contains("DPI-1047")
}

/// Errors that mean the session is gone, so a read may be retried on a
/// fresh one: end-of-file on channel, not connected, session killed, and
/// ODPI-C's closed-connection errors.
fn is_dead_session(error: &oracle::Error) -> bool {
    const DEAD: &[i32] = &[28, 1012, 2396, 3113, 3114, 3135, 12537, 12547, 12570, 12583];
    if let Some(db) = error.db_error() {
        if DEAD.contains(&db.code()) {
            return true;
        }
    }
    let text = error.to_string();
    text.contains("DPI-1010") || text.contains("DPI-1080")
}

/// Errors that mean the database cannot be reached or answered too slowly,
/// as opposed to a fault in our SQL: network, listener, pool and timeouts.
fn is_unavailable(error: &oracle::Error) -> bool {
    const UNREACHABLE: &[i32] = &[
        1033, 1034, 1089, 12154, 12170, 12514, 12516, 12518, 12520, 12521, 12526, 12528, 12541,
        12543, 24418, 24457, 24459, 24496,
    ];
    if is_dead_session(error) {
        return true;
    }
    if let Some(db) = error.db_error() {
        if UNREACHABLE.contains(&db.code()) {
            return true;
        }
    }
    let text = error.to_string();
    // DPI-1067: call timeout exceeded.
    text.contains("DPI-1067") || text.contains("DPI-1047")
}

fn classify(error: &oracle::Error) -> RepositoryError {
    if is_unavailable(error) {
        RepositoryError::Unavailable(error.to_string())
    } else {
        RepositoryError::Database(error.to_string())
    }
}

/// ORA-12899 ("value too large for column "S"."T"."C" (actual: a,
/// maximum: m)") as a 422 on the field stored in column C.
fn too_large_for_column(
    error: &oracle::Error,
    schema: &OracleSchema,
    record: &PipelineInfo,
) -> Option<RepositoryError> {
    if error.db_error()?.code() != 12899 {
        return None;
    }
    let message = error.to_string();
    let (column, maximum) = column_limit(&message)?;
    let field = FIELD_NAMES
        .iter()
        .find(|f| schema.column(f).eq_ignore_ascii_case(column))?;
    let value = serde_json::to_value(record)
        .ok()
        .and_then(|v| v.get(*field).cloned())
        .unwrap_or(Value::Null);
    let error = FieldError::new(
        "string_too_long",
        format!("String should have at most {maximum} bytes to fit the database column"),
    )
    .with_ctx("max_length", maximum)
    .at(vec![LocItem::from("body"), LocItem::from(*field)], value);
    Some(RepositoryError::Invalid(ValidationErrors::single(error)))
}

/// The column and its limit from ORA-12899's message.
fn column_limit(message: &str) -> Option<(&str, u64)> {
    let column = message.split('"').nth(5)?;
    let maximum = message
        .split("maximum: ")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((column, maximum))
}

/// A FlexDateTime as an Oracle timestamp; `with_zone` forces an offset
/// (naive values count as UTC).
fn timestamp(value: &FlexDateTime, with_zone: bool) -> oracle::Result<Timestamp> {
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

fn from_timestamp(ts: &Timestamp) -> Option<FlexDateTime> {
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

/// Why a keyed insert cannot work on a table made before idempotency keys.
pub const KEYS_NEED_COLUMNS: &str = "Idempotency-Key needs the idempotency columns; add them with the statements of `pipeline-service ddl --add-idempotency`";

/// Errors peculiar to keyed inserts, else the usual classification.
fn classify_keyed(error: &oracle::Error) -> RepositoryError {
    match error.db_error().map(|e| e.code()) {
        // Unique key violated: another session stored the same key between
        // our lookup and our insert.
        Some(1) => RepositoryError::KeyInFlight,
        // Invalid identifier: the table predates the idempotency columns.
        Some(904) => RepositoryError::Unsupported(KEYS_NEED_COLUMNS.into()),
        _ => classify(error),
    }
}

/// Inserts `rows` (binds per row, same names and order in each) with one
/// array DML round trip per thousand rows.
fn array_insert(
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
fn bind_values(binds: &[(String, Bind)]) -> oracle::Result<Vec<(String, Box<dyn ToSql>)>> {
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

fn named(values: &[(String, Box<dyn ToSql>)]) -> Vec<(&str, &dyn ToSql)> {
    values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_ref()))
        .collect()
}

fn text_or_null(row: &Row, index: usize) -> oracle::Result<Value> {
    Ok(row
        .get::<usize, Option<String>>(index)?
        .map(Value::String)
        .unwrap_or(Value::Null))
}

fn time_value(row: &Row, index: usize) -> oracle::Result<Value> {
    Ok(row
        .get::<usize, Option<Timestamp>>(index)?
        .as_ref()
        .and_then(from_timestamp)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null))
}

/// A selected row (columns in `FIELD_NAMES` order) back into a record,
/// through the same validation every other record passes.
fn record_from_row(row: &Row) -> Result<PipelineInfo, RepositoryError> {
    let mut fields = Map::new();
    let column_error = |e: oracle::Error| RepositoryError::Database(e.to_string());
    for (index, field) in FIELD_NAMES.iter().enumerate() {
        let value = match *field {
            "start_local" | "end_local" | "start_utc" | "end_utc" => time_value(row, index),
            "elapsed_seconds" => row.get::<usize, f64>(index).map(Value::from),
            "rowcount" | "pid" => row.get::<usize, i64>(index).map(Value::from),
            _ => text_or_null(row, index),
        }
        .map_err(column_error)?;
        fields.insert((*field).to_owned(), value);
    }
    PipelineInfo::parse_stored(&Value::Object(fields))
        .map_err(|e| RepositoryError::Database(format!("stored row is not a valid record: {e}")))
}

impl OraclePipelineRepository {
    /// Creates the session pool and checks one session. Blocks; call it from
    /// a blocking context. The connect timeout bounds the whole attempt.
    pub async fn connect(settings: &OracleSettings) -> Result<Self, OracleStartError> {
        let owned = settings.clone();
        let attempt = tokio::task::spawn_blocking(move || Self::connect_blocking(&owned));
        match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(OracleStartError::Connect(join.to_string())),
            Err(_) => Err(OracleStartError::ConnectTimeout(settings.connect_timeout)),
        }
    }

    fn connect_blocking(settings: &OracleSettings) -> Result<Self, OracleStartError> {
        use_utc_sessions();
        let start_error = |e: oracle::Error| {
            if is_client_missing(&e) {
                OracleStartError::ClientMissing(e.to_string())
            } else {
                OracleStartError::Connect(e.to_string())
            }
        };
        let mut builder = PoolBuilder::new(
            settings.user.as_str(),
            settings.password.expose(),
            settings.dsn.as_str(),
        );
        builder
            .min_connections(settings.pool_min)
            .max_connections(settings.pool_max)
            .connection_increment(1)
            .get_mode(GetMode::TimedWait(settings.pool_timeout))
            .stmt_cache_size(64);
        let pool = builder.build().map_err(start_error)?;
        let repository = Self {
            key_retention: settings.key_retention,
            pool: Arc::new(pool),
            schema: Arc::new(settings.schema.clone()),
            call_timeout: settings.call_timeout,
        };
        repository
            .with_session("connect", false, |conn| {
                conn.query_row(sql::PING, &[]).map(|_| ())
            })
            .map_err(|e| OracleStartError::Connect(e.to_string()))?;
        Ok(repository)
    }

    fn session(&self) -> Result<Connection, RepositoryError> {
        // Timed out waiting for a free session, or cannot connect at all.
        let conn = self
            .pool
            .get()
            .map_err(|e| RepositoryError::Unavailable(format!("no database session: {e}")))?;
        conn.set_call_timeout(Some(self.call_timeout))
            .map_err(|e| classify(&e))?;
        Ok(conn)
    }

    fn record_pool_gauges(&self) {
        if let Ok(open) = self.pool.open_count() {
            METRICS.oracle_pool_open.set(i64::from(open));
        }
        if let Ok(busy) = self.pool.busy_count() {
            METRICS.oracle_pool_busy.set(i64::from(busy));
        }
    }

    /// Runs `work` on a pooled session; a read that fails because its
    /// session died is retried once on a fresh session.
    fn with_session<T>(
        &self,
        operation: &'static str,
        retry: bool,
        mut work: impl FnMut(&Connection) -> oracle::Result<T>,
    ) -> Result<T, RepositoryError> {
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let conn = self.session()?;
            match work(&conn) {
                Ok(value) => break Ok(value),
                Err(error) if retry && attempt == 0 && is_dead_session(&error) => {
                    tracing::warn!(%error, operation, "database session died; retrying once");
                    attempt += 1;
                    // Dropping the session returns it to the pool, which
                    // discards it because it is dead.
                    drop(conn);
                }
                Err(error) => break Err(classify(&error)),
            }
        };
        METRICS
            .oracle_query_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        self.record_pool_gauges();
        result
    }

    /// Runs blocking work on tokio's blocking pool inside the caller's span.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, RepositoryError> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let this = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&this)))
            .await
            .map_err(|e| RepositoryError::Task(e.to_string()))?
    }

    /// The rows of a read (retried once on a dead session).
    fn query_rows(&self, statement: &Statement) -> Result<Vec<Row>, RepositoryError> {
        self.with_session("select", true, |conn| {
            let values = bind_values(&statement.binds)?;
            let result = conn.query_named(&statement.sql, &named(&values))?;
            result.collect::<oracle::Result<Vec<Row>>>()
        })
    }

    fn query_records(
        &self,
        statement: &Statement,
    ) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError> {
        self.query_rows(statement)?
            .iter()
            .map(|row| record_from_row(row).map(Arc::new))
            .collect()
    }

    fn query_count(&self, statement: &Statement) -> Result<u64, RepositoryError> {
        self.with_session("count", true, |conn| {
            let values = bind_values(&statement.binds)?;
            conn.query_row_named(&statement.sql, &named(&values))?
                .get::<usize, i64>(0)
        })
        .map(|n| n.max(0) as u64)
    }

    /// Keyed inserts in one transaction: look each key up (freeing expired
    /// ones), decide with `insert::plan`, then store the rest with array DML.
    /// The unique index on the key column settles races with other sessions.
    fn insert_keyed_blocking(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
        cutoff_micros: i64,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        let lookup = sql::key_lookup(&self.schema);
        let release = sql::key_release(&self.schema);
        let text = sql::insert_keyed_sql(&self.schema);
        let conn = self.session()?;
        let fail = |e: oracle::Error| classify_keyed(&e);
        let result = (|| {
            let plan = insert::plan(&runs, atomic, |key| {
                let rows = conn.query_named(&lookup, &[("key", &key)]).map_err(fail)?;
                let Some(row) = rows.into_iter().next().transpose().map_err(fail)? else {
                    return Ok::<_, RepositoryError>(KnownKey::Absent);
                };
                let at = row
                    .get::<usize, Option<Timestamp>>(FIELD_NAMES.len() + 1)
                    .map_err(fail)?
                    .as_ref()
                    .and_then(from_timestamp)
                    .map_or(i64::MIN, |t| t.instant_micros());
                if at < cutoff_micros {
                    conn.execute_named(&release, &[("key", &key)])
                        .map_err(fail)?;
                    return Ok(KnownKey::Absent);
                }
                let fingerprint: String = row.get(FIELD_NAMES.len()).map_err(fail)?;
                Ok(KnownKey::Stored {
                    fingerprint,
                    record: Arc::new(record_from_row(&row)?),
                })
            })?;
            let now = FlexDateTime::from_instant_micros(chrono::Utc::now().timestamp_micros());
            let rows: Vec<Vec<(String, Bind)>> = plan
                .to_store()
                .map(|i| {
                    let mut binds = sql::insert_binds(&runs[i].record);
                    binds.extend(sql::key_binds(runs[i].key.as_ref(), now));
                    binds
                })
                .collect();
            array_insert(&conn, &text, rows).map_err(fail)?;
            conn.commit().map_err(fail)?;
            Ok::<_, RepositoryError>(plan)
        })();
        match result {
            Ok(plan) => {
                let stored = plan.to_store().count();
                METRICS.inserts.inc_by(stored as u64);
                Ok(plan.finish(runs))
            }
            Err(error) => {
                let _ = conn.rollback();
                Err(error)
            }
        }
    }

    /// Retention: counts, optionally archives (as JSON Lines, synced) and
    /// deletes in committed batches the runs older than `cutoff`. Blocks.
    pub fn compact_blocking(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&std::path::Path>,
        dry_run: bool,
    ) -> Result<crate::compact::CompactReport, RepositoryError> {
        use std::io::Write;
        const BATCH: i64 = 10_000;
        let cutoff_bind = timestamp(&cutoff, true).map_err(|e| classify(&e))?;
        let conn = self.session()?;
        let fail = |e: oracle::Error| classify(&e);
        let row = conn
            .query_row_named(&sql::count_older(&self.schema), &[("cutoff", &cutoff_bind)])
            .map_err(fail)?;
        let old: i64 = row.get(0).map_err(fail)?;
        let total: i64 = row.get(1).map_err(fail)?;
        let max_id: Option<i64> = row.get(2).map_err(fail)?;
        let report = crate::compact::CompactReport {
            kept: (total - old).max(0) as u64,
            old: old.max(0) as u64,
            archive: archive.map(std::path::Path::to_path_buf),
            dry_run,
            ..Default::default()
        };
        let Some(max_id) = max_id.filter(|_| !dry_run && old > 0) else {
            return Ok(report);
        };
        if let Some(path) = archive {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let mut out = std::io::BufWriter::new(file);
            let rows = conn
                .query_named(
                    &sql::select_older(&self.schema),
                    &[("cutoff", &cutoff_bind)],
                )
                .map_err(fail)?;
            for row in rows {
                let row = row.map_err(fail)?;
                let id: i64 = row.get(FIELD_NAMES.len()).map_err(fail)?;
                if id > max_id {
                    continue;
                }
                serde_json::to_writer(&mut out, &record_from_row(&row)?)?;
                out.write_all(b"\n")?;
            }
            out.into_inner()
                .map_err(|e| RepositoryError::Io(e.into_error()))?
                .sync_all()?;
        }
        let delete = sql::delete_older_batch(&self.schema);
        loop {
            let statement = conn
                .execute_named(
                    &delete,
                    &[
                        ("cutoff", &cutoff_bind),
                        ("max_id", &max_id),
                        ("batch", &BATCH),
                    ],
                )
                .map_err(fail)?;
            let deleted = statement.row_count().map_err(fail)?;
            conn.commit().map_err(fail)?;
            if deleted == 0 {
                break;
            }
        }
        Ok(report)
    }

    /// Runs `;`-separated statements such as the output of `sql::ddl`.
    /// Blocks; used by the test suite to create and drop its tables.
    pub fn execute_script_blocking(&self, script: &str) -> Result<(), RepositoryError> {
        self.with_session("ddl", false, |conn| {
            for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                conn.execute(statement, &[])?;
            }
            Ok(())
        })
    }

    pub fn schema(&self) -> &OracleSchema {
        &self.schema
    }
}

#[async_trait]
impl PipelineInfoRepository for OraclePipelineRepository {
    fn backend_name(&self) -> &'static str {
        "oracle"
    }

    async fn get_pipeline_info(
        &self,
        filter: &RunFilter,
        page: Page,
    ) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError> {
        let statement = sql::select_page(&self.schema, filter, page);
        self.blocking(move |this| this.query_records(&statement))
            .await
    }

    async fn get_after(
        &self,
        filter: &RunFilter,
        after: Option<RunKey>,
        limit: usize,
    ) -> Result<KeysetPage, RepositoryError> {
        let statement = sql::select_after(&self.schema, filter, after, limit.saturating_add(1));
        self.blocking(move |this| {
            let rows = this.query_rows(&statement)?;
            let more = rows.len() > limit;
            let mut records = Vec::with_capacity(rows.len().min(limit));
            let mut next = None;
            for row in rows.iter().take(limit) {
                let record = record_from_row(row)?;
                let id: i64 = row
                    .get(FIELD_NAMES.len())
                    .map_err(|e| RepositoryError::Database(e.to_string()))?;
                next = Some(RunKey {
                    start_micros: record.start_utc().instant_micros(),
                    seq: id,
                });
                records.push(Arc::new(record));
            }
            Ok(KeysetPage {
                records,
                next: next.filter(|_| more),
            })
        })
        .await
    }

    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError> {
        // One more row than asked: NULL (no file) is one of the distinct values.
        let statement = sql::archived_files(&self.schema, date_code, limit.saturating_add(1));
        let rows = self
            .blocking(move |this| this.query_rows(&statement))
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::new();
        for row in &rows {
            let file = row
                .get::<usize, Option<String>>(0)
                .map_err(|e| RepositoryError::Database(e.to_string()))?;
            files.extend(file.filter(|f| !f.is_empty()));
        }
        files.truncate(limit);
        Ok(Some(files))
    }

    async fn count_pipeline_info(&self, filter: &RunFilter) -> Result<u64, RepositoryError> {
        let statement = sql::count(&self.schema, filter);
        self.blocking(move |this| this.query_count(&statement))
            .await
    }

    async fn get_pipelines_summary(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError> {
        let statement = sql::summary(&self.schema);
        self.blocking(move |this| {
            this.with_session("summary", true, |conn| {
                let rows = conn.query(&statement.sql, &[])?;
                let mut summaries = Vec::new();
                for row in rows {
                    let row = row?;
                    summaries.push(PipelineSummary {
                        pipeline_name: row.get(0)?,
                        script_name: row.get(1)?,
                        pipeline_type: row.get(2)?,
                        environment: row.get(3)?,
                        total_runs: row.get::<usize, i64>(4)?.max(0) as u64,
                        last_run: row
                            .get::<usize, Option<Timestamp>>(5)?
                            .as_ref()
                            .and_then(from_timestamp),
                        avg_duration: row.get(6)?,
                        avg_rowcount: row.get(7)?,
                    });
                }
                Ok(Arc::from(summaries))
            })
        })
        .await
    }

    async fn get_pipeline_activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError> {
        let statement = sql::activity(&self.schema);
        self.blocking(move |this| {
            this.with_session("activity", true, |conn| {
                let rows = conn.query(&statement.sql, &[])?;
                let mut activity = Vec::new();
                for row in rows {
                    let row = row?;
                    let Some(last_run) = row
                        .get::<usize, Option<Timestamp>>(5)?
                        .as_ref()
                        .and_then(from_timestamp)
                    else {
                        continue;
                    };
                    activity.push(PipelineActivity {
                        key: [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?],
                        total_runs: row.get::<usize, i64>(4)?.max(0) as u64,
                        last_run,
                        last_elapsed_seconds: row.get(6)?,
                        last_rowcount: row.get(7)?,
                    });
                }
                Ok(activity)
            })
        })
        .await
    }

    async fn insert_pipeline_info(
        &self,
        record: PipelineInfo,
    ) -> Result<Arc<PipelineInfo>, RepositoryError> {
        let statement = sql::insert(&self.schema, &record);
        let record = Arc::new(record);
        let stored = record.clone();
        self.blocking(move |this| {
            let mut refused = None;
            let result = this.with_session("insert", false, |conn| {
                let values = bind_values(&statement.binds)?;
                if let Err(error) = conn.execute_named(&statement.sql, &named(&values)) {
                    refused = too_large_for_column(&error, &this.schema, &stored);
                    return Err(error);
                }
                // Committed before the 201.
                conn.commit()
            });
            match refused {
                Some(invalid) => Err(invalid),
                None => result,
            }
        })
        .await?;
        METRICS.inserts.inc();
        Ok(record)
    }

    async fn insert_many(&self, records: Vec<PipelineInfo>) -> Result<usize, RepositoryError> {
        let count = records.len();
        if count == 0 {
            return Ok(0);
        }
        let text = sql::insert_sql(&self.schema);
        self.blocking(move |this| {
            this.with_session("insert_many", false, |conn| {
                let rows = records.iter().map(sql::insert_binds).collect();
                array_insert(conn, &text, rows)?;
                conn.commit()
            })
        })
        .await?;
        METRICS.inserts.inc_by(count as u64);
        Ok(count)
    }

    async fn insert_runs(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        if runs.iter().all(|r| r.key.is_none()) {
            let outcomes = runs
                .iter()
                .map(|r| InsertOutcome::Created(Arc::new(r.record.clone())))
                .collect();
            self.insert_many(runs.into_iter().map(|r| r.record).collect())
                .await?;
            return Ok(outcomes);
        }
        let cutoff = insert::key_cutoff_micros(self.key_retention);
        self.blocking(move |this| this.insert_keyed_blocking(runs, atomic, cutoff))
            .await
    }

    async fn ready(&self) -> Result<(), RepositoryError> {
        self.blocking(|this| {
            this.with_session("ping", false, |conn| {
                conn.query_row(sql::PING, &[]).map(|_| ())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_too_large_names_the_column_and_its_limit() {
        let message = r#"ORA-12899: value too large for column "APP"."PIPELINE_RUNS"."OUTPUT_FILE" (actual: 4100, maximum: 4000)"#;
        assert_eq!(column_limit(message), Some(("OUTPUT_FILE", 4000)));
        assert_eq!(
            column_limit("ORA-00942: table or view does not exist"),
            None
        );
    }

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
}

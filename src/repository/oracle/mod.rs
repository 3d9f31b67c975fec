//! The Oracle backend: the production store. Runs on tokio's blocking pool
//! (ODPI-C calls block), with a session pool, call timeouts, a retry on a
//! dead session for reads, and 503-class errors when the database is out of
//! reach. Its parts: `session` (the pool and running work on a session),
//! `errors` (what the driver's errors mean), `rows` (binds in, records
//! out), `compact` (retention) and `sql` (every statement, built as text
//! so it can be checked without a database).

mod compact;
mod errors;
mod rows;
mod session;
pub mod sql;

pub use self::errors::KEYS_NEED_COLUMNS;
pub use self::session::{OracleSettings, OracleStartError, Secret};

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use oracle::pool::Pool;
use oracle::{Connection, Row};

use self::errors::{is_key_taken, keys_unsupported, too_large_for_column};
use self::rows::{
    array_insert, as_kept, bind_values, check_storable, named, record_from_row, record_params,
    stored_instant_micros, text_at, time_from,
};
use self::session::{rolled_back_on_failure, Failure};
use self::sql::{params, Layout, OracleSchema, Param, Statement};
use super::insert::{self, InsertOutcome, InsertPlan, KnownKey, NewRun};
use super::{
    CompactReport, PipelineInfoRepository, Position, QueryPage, RepositoryError, RunFilter, RunKey,
};
use crate::domain::{FlexDateTime, PipelineActivity, PipelineSummary};
use crate::metrics::METRICS;

#[derive(Clone)]
pub struct OraclePipelineRepository {
    /// How long an idempotency key protects against repeats.
    key_retention: Duration,
    pool: Arc<Pool>,
    schema: Arc<OracleSchema>,
    /// The table's layout, found on first use (`layout`).
    layout: Arc<OnceLock<Arc<Layout>>>,
    call_timeout: Duration,
}

impl OraclePipelineRepository {
    pub fn schema(&self) -> &OracleSchema {
        &self.schema
    }

    /// The table's layout: found from the table itself the first time it
    /// is needed (at startup when the table exists, otherwise at the first
    /// request, so a table created after the service started is found),
    /// then kept, and written to the log. A table the service cannot use
    /// is a fault answered 500 (and not ready), the reason in the log.
    pub fn layout_blocking(&self) -> Result<Arc<Layout>, RepositoryError> {
        if let Some(layout) = self.layout.get() {
            return Ok(layout.clone());
        }
        let detected = self.with_session("describe", true, |conn| {
            let rows = conn.query(&sql::describe_table(&self.schema), &[])?;
            let described: Vec<(String, oracle::sql_type::OracleType)> = rows
                .column_info()
                .iter()
                .map(|column| (column.name().to_owned(), column.oracle_type().clone()))
                .collect();
            Layout::detect(&self.schema, &described)
                .map_err(|why| Failure::Decided(RepositoryError::Database(why)))
        });
        let layout = match detected {
            Ok(layout) => Arc::new(layout),
            Err(error) => {
                tracing::warn!(%error, table = self.schema.table(), "the Oracle table's layout is not usable");
                return Err(error);
            }
        };
        if self.layout.set(layout.clone()).is_ok() {
            tracing::info!(layout = %layout.describe(), "Oracle table layout");
        }
        Ok(layout)
    }

    /// The rows of a read (retried once on a dead session).
    fn query_rows(&self, statement: &Statement) -> Result<Vec<Row>, RepositoryError> {
        let layout = self.layout_blocking()?;
        self.with_session("select", true, |conn| {
            let values = bind_values(&params(&layout, statement))?;
            let result = conn.query_named(&statement.sql, &named(&values))?;
            Ok(result.collect::<oracle::Result<Vec<Row>>>()?)
        })
    }

    /// A page, and with `count` its total, read on one session. A counted
    /// page is read in a read-only transaction, in which both statements
    /// see the database as it was when the transaction began.
    fn query_blocking(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> Result<QueryPage, RepositoryError> {
        let layout = self.layout_blocking()?;
        // One row more than asked tells whether another page follows.
        let select = sql::select_runs(&layout, filter, position, limit.checked_add(1));
        let count = counting.then(|| sql::count(&layout, filter));
        let (total, rows) = self.with_session("query", true, |conn| {
            let read = |statement: &Statement| -> Result<Vec<Row>, Failure> {
                let values = bind_values(&params(&layout, statement))?;
                let rows = conn.query_named(&statement.sql, &named(&values))?;
                Ok(rows.collect::<oracle::Result<Vec<Row>>>()?)
            };
            let Some(count) = &count else {
                return Ok((None, read(&select)?));
            };
            rolled_back_on_failure(conn, || {
                conn.execute("SET TRANSACTION READ ONLY", &[])?;
                let values = bind_values(&params(&layout, count))?;
                let total: i64 = conn.query_row_named(&count.sql, &named(&values))?.get(0)?;
                let rows = read(&select)?;
                // Ends the read-only transaction before the session goes back.
                conn.rollback()?;
                Ok((Some(total.max(0) as u64), rows))
            })
        })?;
        let more = rows.len() > limit;
        let mut records = Vec::with_capacity(rows.len().min(limit));
        let mut next = None;
        for row in rows.iter().take(limit) {
            let record = record_from_row(row, &layout)?;
            let id: i64 = row
                .get(layout.select_width())
                .map_err(|e| RepositoryError::Database(e.to_string()))?;
            next = Some(RunKey {
                start_micros: record.start_utc().instant_micros(),
                seq: id,
            });
            records.push(Arc::new(record));
        }
        Ok(QueryPage {
            total,
            records,
            next: next.filter(|_| more),
        })
    }

    /// One transaction: keys looked up (expired ones freed), each run's
    /// outcome decided with `insert::plan`, the runs to store written with
    /// array DML and committed. The unique index on the key column settles
    /// races with other sessions: an attempt that meets a key another
    /// session committed meanwhile is rolled back and decided again, now
    /// finding that key stored, so it replays or refuses like any later
    /// retry. Each attempt has at least one key fewer to store than the one
    /// before, which bounds them.
    fn insert_blocking(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
        cutoff_micros: i64,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        let layout = self.layout_blocking()?;
        for (i, run) in runs.iter().enumerate() {
            check_storable(i, &run.record, &layout)?;
        }
        // Without offset columns the table keeps less than was written;
        // each created run is answered as it is kept, as a read returns it.
        let runs = match layout.offsets() {
            true => runs,
            false => runs
                .into_iter()
                .map(|run| {
                    let record = as_kept(&run.record, &layout).ok_or_else(|| {
                        RepositoryError::Database(
                            "a time checked as storable cannot be kept".into(),
                        )
                    })?;
                    Ok(NewRun { record, ..run })
                })
                .collect::<Result<Vec<NewRun>, RepositoryError>>()?,
        };
        let keys = runs.iter().filter(|run| run.key.is_some()).count();
        let plan = self.with_session("insert", false, |conn| {
            for _ in 0..=keys {
                let attempt = rolled_back_on_failure(conn, || {
                    self.insert_once(conn, &layout, &runs, atomic, keys > 0, cutoff_micros)
                });
                match attempt {
                    Err(Failure::Driver(error)) if is_key_taken(&error) => continue,
                    Err(Failure::Driver(error)) if keys > 0 => {
                        return Err(keys_unsupported(&error).map_or(error.into(), Failure::Decided))
                    }
                    other => return other,
                }
            }
            Err(Failure::Decided(RepositoryError::Unavailable(
                "idempotency keys kept being taken by other sessions".into(),
            )))
        })?;
        METRICS.inserts.inc_by(plan.to_store().count() as u64);
        Ok(plan.finish(runs))
    }

    /// One attempt of `insert_blocking`, committed when it succeeds.
    fn insert_once(
        &self,
        conn: &Connection,
        layout: &Layout,
        runs: &[NewRun],
        atomic: bool,
        keyed: bool,
        cutoff_micros: i64,
    ) -> Result<InsertPlan, Failure> {
        let text = match keyed {
            false => sql::insert_sql(layout),
            true => sql::insert_keyed_sql(layout),
        };
        let plan = insert::plan(runs, atomic, |key| {
            self.known_key(conn, layout, key, cutoff_micros)
        })?;
        let now = FlexDateTime::from_instant_micros(chrono::Utc::now().timestamp_micros());
        let rows: Vec<Vec<(String, Param)>> = plan
            .to_store()
            .map(|i| {
                let mut params = record_params(&runs[i].record, layout);
                if keyed {
                    params.extend(sql::key_params(layout, runs[i].key.as_ref(), now));
                }
                params
            })
            .collect();
        if let Err(error) = array_insert(conn, &text, &rows) {
            return Err(
                match too_large_for_column(&error, &self.schema, runs, plan.to_store()) {
                    Some(refused) => Failure::Decided(refused),
                    None => Failure::Driver(error),
                },
            );
        }
        conn.commit()?;
        Ok(plan)
    }

    /// What the table knows about `key`; an expired key is freed (its run
    /// stays) so it can be used again.
    fn known_key(
        &self,
        conn: &Connection,
        layout: &Layout,
        key: &str,
        cutoff_micros: i64,
    ) -> Result<KnownKey, Failure> {
        let key_param = bind_values(&[("key".to_owned(), Param::Text(Some(key.to_owned())))])?;
        let rows = conn.query_named(&sql::key_lookup(layout), &named(&key_param))?;
        let Some(row) = rows.into_iter().next().transpose()? else {
            return Ok(KnownKey::Absent);
        };
        let width = layout.select_width();
        let at = row
            .get::<usize, Option<oracle::sql_type::Timestamp>>(width + 1)?
            .as_ref()
            .and_then(stored_instant_micros)
            .unwrap_or(i64::MIN);
        if at < cutoff_micros {
            conn.execute_named(&sql::key_release(layout), &named(&key_param))?;
            return Ok(KnownKey::Absent);
        }
        let fingerprint: String = row.get(width)?;
        Ok(KnownKey::Stored {
            fingerprint,
            record: Arc::new(record_from_row(&row, layout)?),
        })
    }
}

#[async_trait]
impl PipelineInfoRepository for OraclePipelineRepository {
    fn backend_name(&self) -> &'static str {
        "oracle"
    }

    async fn query(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> Result<QueryPage, RepositoryError> {
        let filter = filter.clone();
        self.blocking(move |this| this.query_blocking(&filter, position, limit, counting))
            .await
    }

    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError> {
        let date_code = date_code.to_owned();
        let rows = self
            .blocking(move |this| {
                // One more row than asked: NULL (no file) is one of the distinct values.
                let statement = sql::archived_files(
                    &*this.layout_blocking()?,
                    &date_code,
                    limit.saturating_add(1),
                );
                this.query_rows(&statement)
            })
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::new();
        for row in &rows {
            let file = text_at(row, 0).map_err(|e| RepositoryError::Database(e.to_string()))?;
            files.extend(file.filter(|f| !f.is_empty()));
        }
        files.truncate(limit);
        Ok(Some(files))
    }

    async fn summaries(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError> {
        self.blocking(move |this| {
            let layout = this.layout_blocking()?;
            let statement = sql::summary(&layout);
            this.with_session("summary", true, |conn| {
                let rows = conn.query(&statement.sql, &[])?;
                let mut summaries = Vec::new();
                for row in rows {
                    let row = row?;
                    // The latest start's offset is the last column.
                    let offset_at = layout.offsets().then_some(8);
                    let last_run = time_from(&row, "start_utc", 5, offset_at)?;
                    summaries.push(PipelineSummary {
                        pipeline_name: text_at(&row, 0)?,
                        script_name: text_at(&row, 1)?,
                        pipeline_type: text_at(&row, 2)?,
                        environment: text_at(&row, 3)?,
                        total_runs: row.get::<usize, i64>(4)?.max(0) as u64,
                        last_run,
                        avg_duration: row.get(6)?,
                        avg_rowcount: row.get(7)?,
                    });
                }
                Ok(Arc::from(summaries))
            })
        })
        .await
    }

    async fn activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError> {
        self.blocking(move |this| {
            let layout = this.layout_blocking()?;
            let statement = sql::activity(&layout);
            this.with_session("activity", true, |conn| {
                let rows = conn.query(&statement.sql, &[])?;
                let mut activity = Vec::new();
                for row in rows {
                    let row = row?;
                    // The start's offset is the last column.
                    let offset_at = layout.offsets().then_some(8);
                    let Some(last_run) = time_from(&row, "start_utc", 5, offset_at)? else {
                        continue;
                    };
                    activity.push(PipelineActivity {
                        key: [
                            text_at(&row, 0)?,
                            text_at(&row, 1)?,
                            text_at(&row, 2)?,
                            text_at(&row, 3)?,
                        ],
                        total_runs: row.get::<usize, i64>(4)?.max(0) as u64,
                        last_run,
                        last_elapsed_seconds: sql::read_elapsed(row.get(6)?),
                        last_rowcount: row.get(7)?,
                    });
                }
                Ok(activity)
            })
        })
        .await
    }

    async fn insert(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let cutoff = insert::key_cutoff_micros(self.key_retention);
        self.blocking(move |this| this.insert_blocking(runs, atomic, cutoff))
            .await
    }

    /// Ready when the table has a layout the service can use and still
    /// answers a query naming every column of it: a table the service
    /// cannot use (a column map that does not match it, a column missing
    /// or of another type, some of the offset columns only) keeps the
    /// replica out of service instead of failing its requests.
    async fn ready(&self) -> Result<(), RepositoryError> {
        self.blocking(move |this| {
            let probe = sql::table_probe(&*this.layout_blocking()?);
            this.with_session("ping", false, |conn| {
                conn.query(&probe, &[])?;
                Ok(())
            })
        })
        .await
    }

    async fn compact(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&Path>,
        dry_run: bool,
    ) -> Result<CompactReport, RepositoryError> {
        let archive = archive.map(Path::to_path_buf);
        self.blocking(move |this| this.compact_blocking(cutoff, archive.as_deref(), dry_run))
            .await
    }
}

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
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oracle::pool::Pool;
use oracle::sql_type::Timestamp;
use oracle::{Connection, Row};

use self::errors::{is_key_taken, keys_unsupported, too_large_for_column};
use self::rows::{array_insert, bind_values, from_timestamp, named, record_from_row};
use self::session::{rolled_back_on_failure, Failure};
use self::sql::{Bind, OracleSchema, Statement};
use super::insert::{self, InsertOutcome, InsertPlan, KnownKey, NewRun};
use super::{
    CompactReport, PipelineInfoRepository, Position, QueryPage, RepositoryError, RunFilter, RunKey,
};
use crate::domain::{FlexDateTime, PipelineActivity, PipelineSummary, FIELD_NAMES};
use crate::metrics::METRICS;

#[derive(Clone)]
pub struct OraclePipelineRepository {
    /// How long an idempotency key protects against repeats.
    key_retention: Duration,
    pool: Arc<Pool>,
    schema: Arc<OracleSchema>,
    call_timeout: Duration,
}

impl OraclePipelineRepository {
    pub fn schema(&self) -> &OracleSchema {
        &self.schema
    }

    /// The rows of a read (retried once on a dead session).
    fn query_rows(&self, statement: &Statement) -> Result<Vec<Row>, RepositoryError> {
        self.with_session("select", true, |conn| {
            let values = bind_values(&statement.binds)?;
            let result = conn.query_named(&statement.sql, &named(&values))?;
            Ok(result.collect::<oracle::Result<Vec<Row>>>()?)
        })
    }

    /// A page, and with `count` its total, read on one session. A counted
    /// page is read in a read-only transaction, in which both statements
    /// see the database as it was when the transaction began.
    fn query_blocking(
        &self,
        select: &Statement,
        count: Option<&Statement>,
        limit: usize,
    ) -> Result<QueryPage, RepositoryError> {
        let (total, rows) = self.with_session("query", true, |conn| {
            let read = |statement: &Statement| -> Result<Vec<Row>, Failure> {
                let values = bind_values(&statement.binds)?;
                let rows = conn.query_named(&statement.sql, &named(&values))?;
                Ok(rows.collect::<oracle::Result<Vec<Row>>>()?)
            };
            let Some(count) = count else {
                return Ok((None, read(select)?));
            };
            rolled_back_on_failure(conn, || {
                conn.execute("SET TRANSACTION READ ONLY", &[])?;
                let values = bind_values(&count.binds)?;
                let total: i64 = conn.query_row_named(&count.sql, &named(&values))?.get(0)?;
                let rows = read(select)?;
                // Ends the read-only transaction before the session goes back.
                conn.rollback()?;
                Ok((Some(total.max(0) as u64), rows))
            })
        })?;
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
        let keys = runs.iter().filter(|run| run.key.is_some()).count();
        let text = match keys {
            0 => sql::insert_sql(&self.schema),
            _ => sql::insert_keyed_sql(&self.schema),
        };
        let plan = self.with_session("insert", false, |conn| {
            for _ in 0..=keys {
                let attempt = rolled_back_on_failure(conn, || {
                    self.insert_once(conn, &runs, atomic, &text, keys > 0, cutoff_micros)
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
        runs: &[NewRun],
        atomic: bool,
        text: &str,
        keyed: bool,
        cutoff_micros: i64,
    ) -> Result<InsertPlan, Failure> {
        let plan = insert::plan(runs, atomic, |key| self.known_key(conn, key, cutoff_micros))?;
        let now = FlexDateTime::from_instant_micros(chrono::Utc::now().timestamp_micros());
        let rows: Vec<Vec<(String, Bind)>> = plan
            .to_store()
            .map(|i| {
                let mut binds = sql::insert_binds(&runs[i].record);
                if keyed {
                    binds.extend(sql::key_binds(runs[i].key.as_ref(), now));
                }
                binds
            })
            .collect();
        if let Err(error) = array_insert(conn, text, rows) {
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
        key: &str,
        cutoff_micros: i64,
    ) -> Result<KnownKey, Failure> {
        let rows = conn.query_named(&sql::key_lookup(&self.schema), &[("key", &key)])?;
        let Some(row) = rows.into_iter().next().transpose()? else {
            return Ok(KnownKey::Absent);
        };
        let at = row
            .get::<usize, Option<Timestamp>>(FIELD_NAMES.len() + 1)?
            .as_ref()
            .and_then(from_timestamp)
            .map_or(i64::MIN, |t| t.instant_micros());
        if at < cutoff_micros {
            conn.execute_named(&sql::key_release(&self.schema), &[("key", &key)])?;
            return Ok(KnownKey::Absent);
        }
        let fingerprint: String = row.get(FIELD_NAMES.len())?;
        Ok(KnownKey::Stored {
            fingerprint,
            record: Arc::new(record_from_row(&row)?),
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
        // One row more than asked tells whether another page follows.
        let select = sql::select_runs(&self.schema, filter, position, limit.checked_add(1));
        let count = counting.then(|| sql::count(&self.schema, filter));
        self.blocking(move |this| this.query_blocking(&select, count.as_ref(), limit))
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

    async fn summaries(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError> {
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

    async fn activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError> {
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

    async fn ready(&self) -> Result<(), RepositoryError> {
        self.blocking(|this| {
            this.with_session("ping", false, |conn| {
                Ok(conn.query_row(sql::PING, &[]).map(|_| ())?)
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

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
pub use self::session::{OracleStartError, INSTANT_CLIENT_HELP};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oracle::pool::Pool;
use oracle::sql_type::Timestamp;
use oracle::Row;

use self::errors::{classify_keyed, too_large_for_column};
use self::rows::{array_insert, bind_values, from_timestamp, named, record_from_row};
use self::session::{rolled_back_on_failure, Failure};
use self::sql::{Bind, OracleSchema, Statement};
use super::insert::{self, InsertOutcome, KnownKey, NewRun};
use super::{KeysetPage, Page, PipelineInfoRepository, RepositoryError, RunFilter, RunKey};
use crate::domain::{FlexDateTime, PipelineActivity, PipelineInfo, PipelineSummary, FIELD_NAMES};
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
            Ok(conn
                .query_row_named(&statement.sql, &named(&values))?
                .get::<usize, i64>(0)?)
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
        let fail = |e: oracle::Error| Failure::Decided(classify_keyed(&e));
        let plan = self.with_session("insert", false, |conn| {
            rolled_back_on_failure(conn, || {
                let plan = insert::plan(&runs, atomic, |key| {
                    let rows = conn.query_named(&lookup, &[("key", &key)]).map_err(fail)?;
                    let Some(row) = rows.into_iter().next().transpose().map_err(fail)? else {
                        return Ok::<_, Failure>(KnownKey::Absent);
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
                array_insert(conn, &text, rows).map_err(fail)?;
                conn.commit().map_err(fail)?;
                Ok(plan)
            })
        })?;
        METRICS.inserts.inc_by(plan.to_store().count() as u64);
        Ok(plan.finish(runs))
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
                    return Err(error.into());
                }
                // Committed before the 201.
                Ok(conn.commit()?)
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
                Ok(conn.commit()?)
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
                Ok(conn.query_row(sql::PING, &[]).map(|_| ())?)
            })
        })
        .await
    }
}

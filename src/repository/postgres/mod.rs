//! The PostgreSQL backend: a pool of async connections (no blocking call on
//! the runtime), every query from the shared SQL layer, inserts through
//! one writer task that commits concurrent inserts together, `COPY` for
//! imports. It implements the repository trait exactly; what it has
//! beyond the trait is the per-group distribution computed in SQL.

mod error;
pub mod migrate;
pub mod rows;
pub mod settings;
mod stats;
pub mod tls;
mod writer;

pub use self::settings::{PostgresSettings, PostgresSettingsError, PostgresValues, TlsMode};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::IsolationLevel;

use self::error::from_pool;
use self::rows::column;
use super::insert::{InsertOutcome, NewRun};
use super::sql::{self as shared, Dialect, Statement, Table};
use super::{
    CompactReport, PipelineInfoRepository, Position, QueryPage, RepositoryError, RunFilter, RunKey,
};
use crate::domain::digest::GroupDigest;
use crate::domain::{FlexDateTime, PipelineActivity, PipelineInfo, PipelineSummary, FIELD_NAMES};
use crate::metrics::METRICS;
use async_trait::async_trait;

/// The runs table (fixed names: the schema is this service's own).
pub const TABLE: &str = "pipeline_runs";

/// One row per group with its run count, averages' sums and latest run,
/// kept by triggers in the transaction of every change to the runs
/// (`sql/postgres/0002_pipeline_summaries.sql`).
pub const SUMMARY_TABLE: &str = "pipeline_summaries";

/// `/pipelines` from the per-group table, in the columns of
/// `sql::summary` (which computes the same from every run, and which a
/// test holds this equal to).
const SUMMARIES: &str = "SELECT pipeline_name, script_name, pipeline_type, environment, runs, \
last_start, CAST(elapsed_sum / NULLIF(elapsed_runs, 0) AS double precision), \
CAST(rowcount_sum / NULLIF(rowcount_runs, 0) AS double precision), last_start_offset \
FROM pipeline_summaries ORDER BY last_start DESC, first_seq ASC";

/// Each group's latest run and run count, in the columns of
/// `sql::activity`: the per-group table joined to its latest run.
const ACTIVITY: &str = "SELECT s.pipeline_name, s.script_name, s.pipeline_type, s.environment, \
s.runs, r.start_utc, r.elapsed_seconds, r.rowcount, r.start_utc_offset \
FROM pipeline_summaries s JOIN pipeline_runs r ON r.seq = s.last_seq";

/// The table as the shared SQL layer sees it.
pub fn table() -> Table {
    Table::new(
        TABLE.to_owned(),
        FIELD_NAMES.iter().map(|f| (*f).to_owned()).collect(),
        "seq".to_owned(),
        true,
    )
    .with_backwards(SUMMARY_TABLE)
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum PostgresStartError {
    #[error("cannot reach PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
}

struct Shared {
    pool: Pool,
    table: Table,
    settings: PostgresSettings,
    /// For cancel requests, which open a connection of their own.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    kept_digests: tokio::sync::Mutex<stats::KeptDigests>,
}

#[derive(Clone)]
pub struct PostgresRepository {
    shared: Arc<Shared>,
    /// What opening did to the schema.
    migrated: migrate::Migrated,
    writer: mpsc::UnboundedSender<writer::WriteRequest>,
}

impl PostgresRepository {
    /// Opens the pool, checks one connection and brings the schema up to
    /// date (refusing a newer one).
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, PostgresStartError> {
        let owned = settings.clone();
        let tls = tokio::task::spawn_blocking(move || tls::connector(&owned))
            .await
            .map_err(|e| PostgresStartError::Tls(e.to_string()))?
            .map_err(PostgresStartError::Tls)?;
        let manager = Manager::from_config(
            settings.config().clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect_error = |reason: String| PostgresStartError::Connect {
            target: settings.redacted(),
            reason,
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_max)
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.acquire_timeout))
            .recycle_timeout(Some(settings.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| connect_error(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| connect_error(from_pool(e).to_string()))?;
        let migrated = migrate::migrate(&mut client).await?;
        if migrated.from != migrated.to {
            tracing::info!(
                from = migrated.from,
                to = migrated.to,
                "PostgreSQL schema migrated"
            );
        }
        drop(client);
        let shared = Arc::new(Shared {
            pool,
            table: table(),
            settings: settings.clone(),
            tls,
            kept_digests: Default::default(),
        });
        let writer = writer::spawn(shared.clone());
        Ok(Self {
            shared,
            migrated,
            writer,
        })
    }

    /// The schema version found on opening and the one it is at now.
    pub fn migrated(&self) -> &migrate::Migrated {
        &self.migrated
    }

    /// The settings this repository was opened with.
    pub fn settings(&self) -> &PostgresSettings {
        &self.shared.settings
    }

    /// The connection pool's state now: connections open, idle, and
    /// requests waiting for one (for `/metrics`).
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.shared.pool.status()
    }

    /// Per-group distribution of the matching runs, computed by the
    /// database (`sql::percentiles`).
    pub async fn distributions(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<Distribution>, RepositoryError> {
        let statement = shared::percentiles(Dialect::Postgres, &self.shared.table, filter);
        let rows = self.shared.fetch(&statement).await?;
        rows.iter()
            .map(|row| {
                Ok(Distribution {
                    key: group_key(row)?,
                    runs: row.try_get::<_, i64>(4)?.max(0) as u64,
                    elapsed_seconds: [row.try_get(5)?, row.try_get(6)?, row.try_get(7)?],
                    max_elapsed_seconds: row.try_get(8)?,
                    median_rowcount: row.try_get(9)?,
                    zero_row_runs: row.try_get::<_, i64>(10)?.max(0) as u64,
                })
            })
            .collect()
    }
}

#[async_trait]
impl PipelineInfoRepository for PostgresRepository {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    /// Matching records from `position`, at most `limit`, with the total
    /// count of matches when `counting` (from the same snapshot).
    async fn query(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> Result<QueryPage, RepositoryError> {
        let table = &self.shared.table;
        // One row more than asked tells whether another page follows.
        let page = shared::select_runs(
            Dialect::Postgres,
            table,
            filter,
            position,
            limit.checked_add(1),
        );
        let count = counting.then(|| {
            shared::count_from_groups(Dialect::Postgres, SUMMARY_TABLE, filter)
                .unwrap_or_else(|| shared::count(Dialect::Postgres, table, filter))
        });
        let (rows, total) = self
            .shared
            .bounded(async |client| {
                let Some(count) = count else {
                    return Ok((run_query(&*client, &page).await?, None));
                };
                // Both statements in one snapshot, sent together.
                let transaction = snapshot(client).await?;
                let (rows, counted) = tokio::join!(
                    run_query(&transaction, &page),
                    run_query(&transaction, &count)
                );
                // The page's error first: the count's may only say that the
                // transaction was already aborted.
                let (rows, counted) = (rows?, counted?);
                transaction.commit().await?;
                let total = match counted.first() {
                    Some(row) => row.try_get::<_, i64>(0)?,
                    None => 0,
                };
                Ok((rows, Some(total.max(0) as u64)))
            })
            .await?;
        let more = rows.len() > limit;
        let mut records = Vec::with_capacity(rows.len().min(limit));
        let mut next = None;
        for row in rows.iter().take(limit) {
            let record = rows::record(row)?;
            next = Some(RunKey {
                start_micros: record.start_utc().instant_micros(),
                seq: row.try_get(column::AFTER)?,
            });
            records.push(Arc::new(record));
        }
        Ok(QueryPage {
            total,
            records,
            next: next.filter(|_| more),
        })
    }

    /// Stores runs, deciding each keyed run's outcome with `insert::plan`.
    /// Concurrent calls share one transaction (group commit); an
    /// acknowledged run is committed. With `atomic`, any failure stores none.
    async fn insert(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        for (i, run) in runs.iter().enumerate() {
            rows::check_storable(i, &run.record)?;
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::WriteRequest {
                runs,
                atomic,
                reply,
            })
            .map_err(|_| RepositoryError::Task("the PostgreSQL writer stopped".into()))?;
        answer
            .await
            .map_err(|_| RepositoryError::Task("the PostgreSQL writer stopped".into()))?
    }

    /// One summary per group, latest run first.
    async fn summaries(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError> {
        let statement = without_binds(SUMMARIES);
        let rows = self.shared.fetch(&statement).await?;
        let mut summaries = Vec::with_capacity(rows.len());
        for row in rows {
            let latest: Option<chrono::DateTime<chrono::Utc>> = row.try_get(5)?;
            summaries.push(PipelineSummary {
                pipeline_name: row.try_get(0)?,
                script_name: row.try_get(1)?,
                pipeline_type: row.try_get(2)?,
                environment: row.try_get(3)?,
                total_runs: row.try_get::<_, i64>(4)?.max(0) as u64,
                last_run: latest.and_then(|at| rows::flex_time(at, row.try_get(8).ok()?)),
                avg_duration: row.try_get(6)?,
                avg_rowcount: row.try_get(7)?,
            });
        }
        Ok(Arc::from(summaries))
    }

    /// The latest run of every group, with the group's run count.
    async fn activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError> {
        let statement = without_binds(ACTIVITY);
        let rows = self.shared.fetch(&statement).await?;
        rows.iter()
            .map(|row| {
                Ok(PipelineActivity {
                    key: group_key(row)?,
                    total_runs: row.try_get::<_, i64>(4)?.max(0) as u64,
                    last_run: rows::flex_time(row.try_get(5)?, row.try_get(8)?).ok_or_else(
                        || RepositoryError::Database("a stored time is out of range".into()),
                    )?,
                    last_elapsed_seconds: row.try_get(6)?,
                    last_rowcount: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// The distinct non-empty `archived_file` values of the runs with this
    /// `date_code`, at most `limit`; `None` when no run has it.
    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError> {
        // One more row than asked: NULL (no file) is one of the values.
        let statement = shared::archived_files(
            Dialect::Postgres,
            &self.shared.table,
            date_code,
            limit.saturating_add(1),
        );
        let rows = self.shared.fetch(&statement).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::new();
        for row in &rows {
            let file: Option<String> = row.try_get(0)?;
            files.extend(file.filter(|f| !f.is_empty()));
        }
        files.sort();
        files.truncate(limit);
        Ok(Some(files))
    }

    /// Exact statistics whose cost follows what changed since the last
    /// call (`stats.rs`).
    async fn stats(
        &self,
        filter: &RunFilter,
        latest: usize,
    ) -> Result<Vec<GroupDigest>, RepositoryError> {
        self.shared.stats(filter, latest).await
    }

    /// Whether the database answers a trivial query now, within the
    /// acquire timeout (at most 2 s).
    async fn ready(&self) -> Result<(), RepositoryError> {
        let bound = self
            .shared
            .settings
            .acquire_timeout
            .min(Duration::from_secs(2));
        let check = async {
            let client = self.shared.acquire().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        };
        tokio::time::timeout(bound, check)
            .await
            .unwrap_or_else(|_| {
                Err(RepositoryError::Unavailable(format!(
                    "no answer within {bound:?}"
                )))
            })
    }

    /// Retention: deletes the runs that started before `cutoff`, in
    /// committed batches; with `archive`, each batch's deleted rows (read
    /// back by `DELETE … RETURNING`, so exactly those) are appended there
    /// and synced before the batch commits.
    async fn compact(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&Path>,
        dry_run: bool,
    ) -> Result<CompactReport, RepositoryError> {
        const BATCH: i64 = 10_000;
        let cutoff_at = rows::instant(&cutoff);
        let mut client = self.shared.acquire().await?;
        let counts = client
            .query_one(
                &format!("SELECT COUNT(*) FILTER (WHERE start_utc < $1), COUNT(*) FROM {TABLE}"),
                &[&cutoff_at],
            )
            .await?;
        let mut report = CompactReport {
            archive: archive.map(Path::to_path_buf),
            dry_run,
            ..Default::default()
        };
        if dry_run {
            let old: i64 = counts.try_get(0)?;
            let total: i64 = counts.try_get(1)?;
            report.old = old.max(0) as u64;
            report.kept = (total - old).max(0) as u64;
            return Ok(report);
        }
        let mut out = match archive {
            Some(path) => Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
            None => None,
        };
        let delete = format!(
            "DELETE FROM {TABLE} WHERE seq IN (SELECT seq FROM {TABLE} WHERE start_utc < $1 \
ORDER BY seq LIMIT $2) RETURNING {}",
            self.shared.table.select_list()
        );
        loop {
            let transaction = client.transaction().await?;
            let deleted = transaction.query(&delete, &[&cutoff_at, &BATCH]).await?;
            if deleted.is_empty() {
                break;
            }
            if let Some(file) = out.as_mut() {
                use tokio::io::AsyncWriteExt;
                let mut lines = Vec::new();
                for row in &deleted {
                    rows::record(row)?.write_json(&mut lines);
                    lines.push(b'\n');
                }
                file.write_all(&lines).await?;
                file.sync_data().await?;
            }
            transaction.commit().await?;
            report.old += deleted.len() as u64;
        }
        let kept: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {TABLE}"), &[])
            .await?
            .try_get(0)?;
        report.kept = kept.max(0) as u64;
        Ok(report)
    }

    /// Loads records with `COPY … FROM STDIN (FORMAT binary)`, all in one
    /// transaction. Returns how many were stored.
    async fn load(&self, records: Vec<PipelineInfo>) -> Result<u64, RepositoryError> {
        for (i, record) in records.iter().enumerate() {
            rows::check_storable(i, record)?;
        }
        let count = records.len() as u64;
        self.shared
            .bounded(async |client| writer::copy_in(client, &records).await)
            .await?;
        Ok(count)
    }
}

/// What the database computes about one group's runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub key: [Option<String>; 4],
    pub runs: u64,
    /// p50, p95, p99.
    pub elapsed_seconds: [f64; 3],
    pub max_elapsed_seconds: f64,
    pub median_rowcount: f64,
    pub zero_row_runs: u64,
}

/// Runs a shared-layer statement (prepared once per connection).
async fn run_query(
    client: &impl deadpool_postgres::GenericClient,
    statement: &Statement,
) -> Result<Vec<tokio_postgres::Row>, RepositoryError> {
    let values = rows::values(statement);
    let prepared = client.prepare_cached(&statement.sql).await?;
    Ok(client.query(&prepared, &rows::params(&values)).await?)
}

/// A read-only transaction that sees one snapshot for all its statements.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, RepositoryError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// A fixed statement of this backend's own.
fn without_binds(sql: &str) -> Statement {
    Statement {
        sql: sql.to_owned(),
        binds: Vec::new(),
    }
}

/// The four group values at the start of a summary-shaped row.
fn group_key(row: &tokio_postgres::Row) -> Result<[Option<String>; 4], RepositoryError> {
    Ok([
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ])
}

/// A pooled connection lent to one piece of work. Given back to the pool
/// only when the work ended; dropped before that (the caller gave up: its
/// request timed out, its client went away) or past the bound, it leaves
/// the pool for good, its statement is cancelled on the server and the
/// connection closed — so the cancel can never reach the statement of
/// whoever would have used the connection next.
struct Lent {
    client: Option<deadpool_postgres::Client>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Lent {
    /// The work ended: the connection goes back to the pool.
    fn give_back(mut self) {
        drop(self.client.take());
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let token = client.cancel_token();
        let connection = deadpool_postgres::Object::take(client);
        // Outside a runtime (the process is ending) nothing can be sent;
        // closing the connection ends the session, and the server's
        // statement timeout bounds the statement meanwhile.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tls = self.tls.clone();
            runtime.spawn(async move {
                if let Err(error) = token.cancel_query(tls).await {
                    tracing::warn!(%error, "could not ask PostgreSQL to cancel a statement");
                }
                drop(connection);
            });
        }
    }
}

impl Shared {
    /// Runs `work` on a pooled connection within the client-side bound
    /// (the server's statement timeout plus a margin). A connection whose
    /// work ran past the bound is closed rather than reused, so nothing of
    /// it stays running on the server.
    async fn bounded<T>(
        &self,
        work: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T, RepositoryError>,
    ) -> Result<T, RepositoryError> {
        let mut lent = Lent {
            client: Some(self.acquire().await?),
            tls: self.tls.clone(),
        };
        let bound = self.settings.client_timeout();
        let Some(client) = lent.client.as_mut() else {
            return Err(RepositoryError::Task("no connection was lent".into()));
        };
        let result = tokio::time::timeout(bound, work(client)).await;
        if result.is_ok() {
            lent.give_back();
        } else {
            drop(lent);
        }
        self.observe_pool();
        result.unwrap_or_else(|_| {
            Err(RepositoryError::Unavailable(format!(
                "the database did not answer within {bound:?}"
            )))
        })
    }

    /// The rows `statement` answers, within the bounds of `bounded`.
    async fn fetch(
        &self,
        statement: &Statement,
    ) -> Result<Vec<tokio_postgres::Row>, RepositoryError> {
        self.bounded(async |client| run_query(&*client, statement).await)
            .await
    }

    /// A pooled connection, within the acquire timeout.
    async fn acquire(&self) -> Result<deadpool_postgres::Client, RepositoryError> {
        let client = self.pool.get().await.map_err(from_pool);
        self.observe_pool();
        client
    }

    /// The pool's state into the `postgres_pool_*` gauges.
    fn observe_pool(&self) {
        let status = self.pool.status();
        let open = status.size as i64;
        METRICS.postgres_pool_open.set(open);
        METRICS
            .postgres_pool_busy
            .set(open - status.available as i64);
        METRICS.postgres_pool_waiting.set(status.waiting as i64);
    }
}

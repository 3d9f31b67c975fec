//! The backends the shared behaviour tests run against.

use std::sync::Arc;

use std::sync::atomic::{AtomicU32, Ordering};

use pipeline_service::config::{RawSettings, Settings};
use pipeline_service::domain::PipelineInfo;
use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::oracle::sql::ddl;
use pipeline_service::repository::oracle::OraclePipelineRepository;
use pipeline_service::repository::postgres::{PostgresRepository, PostgresSettings};
use pipeline_service::repository::PipelineInfoRepository;
use pipeline_service::repository::{InsertOutcome, NewRun, Position, RepositoryError, RunFilter};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::postgres::{fresh_database, FreshDatabase};

/// A fresh, empty store and whatever keeps it alive; an Oracle test table
/// is dropped when this is.
pub struct Fresh {
    pub repository: Arc<dyn PipelineInfoRepository>,
    _dir: Option<TempDir>,
    oracle: Option<(OraclePipelineRepository, String)>,
    /// A PostgreSQL store's database, dropped after the test.
    _database: Option<FreshDatabase>,
    /// How to open the same store again, as a restarted service would.
    reopen: Reopen,
}

enum Reopen {
    Jsonl(std::path::PathBuf),
    Oracle(Box<pipeline_service::repository::oracle::OracleSettings>),
    Postgres(Box<PostgresSettings>),
}

impl Fresh {
    /// The same store opened anew (a new file reader, a new session pool).
    pub async fn reopen(&self) -> Arc<dyn PipelineInfoRepository> {
        match &self.reopen {
            Reopen::Jsonl(path) => Arc::new(JsonlRepository::open(path).await.unwrap()),
            Reopen::Oracle(settings) => Arc::new(
                OraclePipelineRepository::connect(settings)
                    .await
                    .expect("the Oracle test database is reachable"),
            ),
            Reopen::Postgres(settings) => Arc::new(
                PostgresRepository::connect(settings)
                    .await
                    .expect("the PostgreSQL test database is reachable"),
            ),
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some((oracle, table)) = self.oracle.take() {
            if let Err(error) = oracle.execute_script_blocking(&format!("DROP TABLE {table} PURGE"))
            {
                eprintln!("could not drop Oracle test table {table}: {error}");
            }
        }
    }
}

/// A JSON Lines store in `dir` that does not sync its inserts (for tests
/// that store many runs and observe nothing of durability).
pub async fn unsynced_jsonl(dir: &tempfile::TempDir) -> JsonlRepository {
    JsonlRepository::open_with(
        dir.path().join("runs.jsonl"),
        pipeline_service::repository::jsonl::JsonlOptions {
            fsync: false,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

pub async fn fresh_jsonl() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let repository = JsonlRepository::open(&path).await.unwrap();
    Fresh {
        repository: Arc::new(repository),
        _dir: Some(dir),
        oracle: None,
        _database: None,
        reopen: Reopen::Jsonl(path),
    }
}

/// A fresh table in the database named by ORACLE_TEST_DSN, ORACLE_TEST_USER
/// and ORACLE_TEST_PASSWORD, or `None` (with a visible note) when unset.
pub async fn fresh_oracle() -> Option<Fresh> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(dsn), Some(user), Some(password)) = (
        var("ORACLE_TEST_DSN"),
        var("ORACLE_TEST_USER"),
        var("ORACLE_TEST_PASSWORD"),
    ) else {
        // Written past the test harness's capture, once, so the skip is seen.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED on Oracle: set ORACLE_TEST_DSN, ORACLE_TEST_USER and ORACLE_TEST_PASSWORD \
to run the repository behaviour tests against a database too"
            );
        });
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let table = format!(
        "PS_TEST_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let raw = RawSettings {
        backend: Some("oracle".into()),
        oracle_dsn: Some(dsn),
        oracle_user: Some(user),
        oracle_password: Some(password),
        oracle_table: Some(table.clone()),
        ..Default::default()
    };
    let settings = Settings::from_raw(raw).expect("valid Oracle test settings");
    let oracle_settings = settings.oracle.expect("oracle settings");
    let repository = OraclePipelineRepository::connect(&oracle_settings)
        .await
        .expect("the Oracle test database is reachable");
    repository
        .execute_script_blocking(&ddl(repository.schema()))
        .expect("test table created");
    Some(Fresh {
        repository: Arc::new(repository.clone()),
        _dir: None,
        oracle: Some((repository, table)),
        _database: None,
        reopen: Reopen::Oracle(Box::new(oracle_settings)),
    })
}

/// A fresh database of its own on the test PostgreSQL server (see
/// `tests/support/postgres.rs`), or `None` with a visible note when no
/// server can be had.
pub async fn fresh_postgres() -> Option<Fresh> {
    let database = fresh_database().await?;
    let repository = PostgresRepository::connect(&database.settings)
        .await
        .expect("the PostgreSQL test database is reachable");
    Some(Fresh {
        repository: Arc::new(repository),
        _dir: None,
        oracle: None,
        reopen: Reopen::Postgres(Box::new(database.settings.clone())),
        _database: Some(database),
    })
}

/// One fresh store per available backend.
pub async fn every_backend() -> Vec<Fresh> {
    let mut stores = vec![fresh_jsonl().await];
    stores.extend(fresh_postgres().await);
    stores.extend(fresh_oracle().await);
    stores
}

/// What the tests do often on any store, through its trait.
#[async_trait::async_trait]
pub trait Shortcuts {
    /// Stores one run without a key, as a plain `POST /pipelines` does, and
    /// returns it as stored.
    async fn store(&self, record: PipelineInfo) -> Result<Arc<PipelineInfo>, RepositoryError>;

    /// Stores runs without keys together, as an import does; how many.
    async fn store_all(&self, records: Vec<PipelineInfo>) -> Result<usize, RepositoryError>;

    /// Every match, in answer order.
    async fn all(&self, filter: &RunFilter) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError>;

    /// `limit` matches after skipping `offset`.
    async fn window(
        &self,
        filter: &RunFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError>;

    /// How many records match.
    async fn count(&self, filter: &RunFilter) -> Result<u64, RepositoryError>;
}

#[async_trait::async_trait]
impl<R: PipelineInfoRepository + ?Sized> Shortcuts for R {
    async fn store(&self, record: PipelineInfo) -> Result<Arc<PipelineInfo>, RepositoryError> {
        match self.insert(vec![record.into()], true).await?.pop() {
            Some(InsertOutcome::Created(stored)) => Ok(stored),
            other => panic!("a run without a key is stored: {other:?}"),
        }
    }

    async fn store_all(&self, records: Vec<PipelineInfo>) -> Result<usize, RepositoryError> {
        let runs = records.into_iter().map(NewRun::from).collect();
        Ok(self.insert(runs, true).await?.len())
    }

    async fn all(&self, filter: &RunFilter) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError> {
        self.window(filter, usize::MAX, 0).await
    }

    async fn window(
        &self,
        filter: &RunFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError> {
        let page = self
            .query(filter, Position::Offset(offset), limit, false)
            .await?;
        Ok(page.records)
    }

    async fn count(&self, filter: &RunFilter) -> Result<u64, RepositoryError> {
        let page = self.query(filter, Position::Offset(0), 0, true).await?;
        Ok(page.total.unwrap_or_default())
    }
}

/// A valid record starting `minutes` after 2025-08-01T00:00Z.
pub fn record(minutes: i64, changes: Value) -> PipelineInfo {
    let start = chrono::DateTime::from_timestamp(1_754_006_400 + minutes * 60, 0).unwrap();
    let end = start + chrono::Duration::seconds(90);
    let mut body = json!({
        "start_local": start.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "end_local": end.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "start_utc": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "end_utc": end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "elapsed_seconds": 90.0,
        "elapsed_human": "1m 30s",
        "output_file": "/data/out.csv",
        "log_file": "/data/run.log",
        "rowcount": 10,
        "pid": 1,
        "date_code": format!("m{minutes}"),
        "pipeline_name": "etl",
        "script_name": "etl.py",
        "pipeline_type": "batch",
        "environment": "prod",
    });
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), changes) {
        target.extend(extra);
    }
    PipelineInfo::parse(&body, "body").unwrap()
}

/// Takes the data file's exclusive lock as another process would (`flock
/// FILE sleep …`), creating the file if needed; held until unlocked or
/// dropped.
pub fn hold_lock(path: &std::path::Path) -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    file
}

//! The backends the shared behaviour tests run against.

use std::sync::Arc;

use pipeline_service::config::Settings;
use pipeline_service::domain::PipelineInfo;
use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::oracle::sql::{add_offset_columns, ddl};
use pipeline_service::repository::oracle::OraclePipelineRepository;
use pipeline_service::repository::postgres::{PostgresRepository, PostgresSettings};
use pipeline_service::repository::PipelineInfoRepository;
use pipeline_service::repository::{InsertOutcome, NewRun, Position, RepositoryError, RunFilter};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::oracle as oracle_test;
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
    /// Which layout an Oracle table has (none for JSON Lines).
    layout: Option<OracleTable>,
}

/// The layouts of Oracle table the shared tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OracleTable {
    /// As `pipeline-service ddl` creates it.
    Full,
    /// The Python service's: no offset columns, UTC times WITH TIME ZONE.
    Original,
    /// The original one after `pipeline-service ddl --add-offsets`.
    Upgraded,
}

enum Reopen {
    Jsonl(std::path::PathBuf),
    Oracle(Box<pipeline_service::repository::oracle::OracleSettings>),
    Postgres(Box<PostgresSettings>),
}

impl Fresh {
    /// The Oracle repository and its test table, on Oracle.
    pub fn oracle(&self) -> Option<(&OraclePipelineRepository, &str)> {
        self.oracle
            .as_ref()
            .map(|(repo, table)| (repo, table.as_str()))
    }

    /// Which store this is, for messages.
    pub fn name(&self) -> &'static str {
        match self.layout {
            None => self.repository.backend_name(),
            Some(OracleTable::Full) => "oracle",
            Some(OracleTable::Original) => "oracle (original layout)",
            Some(OracleTable::Upgraded) => "oracle (original layout with offset columns)",
        }
    }

    /// What reading `record` back gives on this store: the record itself,
    /// or on a table of the original layout what that layout keeps;
    /// `None` when the store refuses it.
    pub fn kept(&self, record: &PipelineInfo) -> Option<PipelineInfo> {
        if self.layout != Some(OracleTable::Original) {
            return Some(record.clone());
        }
        let json = serde_json::to_value(record).unwrap();
        let kept = oracle_test::kept_by_the_original_layout(&json)?;
        Some(PipelineInfo::parse(&kept, "body").unwrap())
    }

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
        layout: None,
    }
}

/// A fresh table, of the layout `pipeline-service ddl` creates, in the
/// database named by ORACLE_TEST_DSN, ORACLE_TEST_USER and
/// ORACLE_TEST_PASSWORD, or `None` (with a visible note) when unset.
pub async fn fresh_oracle() -> Option<Fresh> {
    fresh_oracle_table(OracleTable::Full).await
}

/// A fresh table of the original layout (the Python service's), or `None`.
pub async fn fresh_oracle_original() -> Option<Fresh> {
    fresh_oracle_table(OracleTable::Original).await
}

async fn fresh_oracle_table(layout: OracleTable) -> Option<Fresh> {
    let table = oracle_test::table_name(match layout {
        OracleTable::Full => "PS_TEST",
        OracleTable::Original => "PS_ORIG",
        OracleTable::Upgraded => "PS_UPGR",
    });
    let raw = oracle_test::settings(&table)?;
    let settings = Settings::from_raw(raw).expect("valid Oracle test settings");
    let oracle_settings = settings.oracle.expect("oracle settings");
    let repository = OraclePipelineRepository::connect(&oracle_settings)
        .await
        .expect("the Oracle test database is reachable");
    let create = match layout {
        OracleTable::Full => ddl(repository.schema()),
        OracleTable::Original => oracle_test::original_table_ddl(&table),
        OracleTable::Upgraded => {
            oracle_test::original_table_ddl(&table) + &add_offset_columns(repository.schema())
        }
    };
    repository
        .execute_script_blocking(&create)
        .expect("test table created");
    Some(Fresh {
        repository: Arc::new(repository.clone()),
        _dir: None,
        oracle: Some((repository, table)),
        _database: None,
        reopen: Reopen::Oracle(Box::new(oracle_settings)),
        layout: Some(layout),
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
        layout: None,
    })
}

/// One fresh store per available backend: JSON Lines, PostgreSQL, and
/// with a test database an Oracle table of each layout (as `ddl` creates
/// it, the original one, and the original one upgraded with
/// `ddl --add-offsets`).
pub async fn every_backend() -> Vec<Fresh> {
    let mut stores = vec![fresh_jsonl().await];
    stores.extend(fresh_postgres().await);
    for layout in [
        OracleTable::Full,
        OracleTable::Original,
        OracleTable::Upgraded,
    ] {
        stores.extend(fresh_oracle_table(layout).await);
    }
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

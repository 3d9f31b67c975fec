//! Building and running the server. `Application` binds its own listener so
//! tests can ask for port 0 and learn the port afterwards.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::api::{app, budget, guard, AppState};
use crate::config::{Backend, Settings};
use crate::repository::jsonl::{JsonlOptions, JsonlRepository};
use crate::repository::oracle::{OraclePipelineRepository, OracleStartError};
use crate::repository::postgres::{PostgresRepository, PostgresStartError, TABLE};
use crate::repository::{PipelineInfoRepository, Position, RepositoryError, RunFilter};
use crate::server::ConnectionLimits;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the JSON Lines store: {0}")]
    Storage(#[from] RepositoryError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("PIPELINE_BACKEND=oracle: {0}")]
    Oracle(#[from] OracleStartError),
    #[error("PIPELINE_BACKEND=postgres: {0}")]
    Postgres(#[from] PostgresStartError),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    connections: ConnectionLimits,
    serving: Serving,
}

/// What the startup line tells a person starting the service, besides
/// where it listens: which store, where its data is, how much it holds.
struct Serving {
    backend: &'static str,
    data: String,
    /// `None` when the store could not say (the line goes out without it).
    runs: Option<u64>,
}

/// The repository the settings ask for, its JSON Lines file read into
/// memory. Never falls back to another backend.
pub async fn build_repository(
    settings: &Settings,
) -> Result<Arc<dyn PipelineInfoRepository>, StartupError> {
    open_repository(settings, true).await
}

/// As `build_repository`, for commands that only rewrite the store (a
/// compaction): a JSON Lines file is not read into memory first.
pub async fn build_repository_for_rewrite(
    settings: &Settings,
) -> Result<Arc<dyn PipelineInfoRepository>, StartupError> {
    open_repository(settings, false).await
}

async fn open_repository(
    settings: &Settings,
    load_on_open: bool,
) -> Result<Arc<dyn PipelineInfoRepository>, StartupError> {
    match settings.backend {
        Backend::Jsonl => Ok(Arc::new(
            JsonlRepository::open_with(
                &settings.jsonl_path,
                JsonlOptions {
                    fsync: settings.jsonl_fsync,
                    key_retention: settings.key_retention,
                    load_on_open,
                },
            )
            .await?,
        )),
        Backend::Oracle => match &settings.oracle {
            Some(oracle) => Ok(Arc::new(OraclePipelineRepository::connect(oracle).await?)),
            None => Err(StartupError::Oracle(OracleStartError::Connect(
                "Oracle settings are missing".into(),
            ))),
        },
        Backend::Postgres => match &settings.postgres {
            Some(postgres) => Ok(Arc::new(PostgresRepository::connect(postgres).await?)),
            None => Err(StartupError::Postgres(PostgresStartError::Connect {
                target: String::new(),
                reason: "PostgreSQL settings are missing".into(),
            })),
        },
    }
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let repository = build_repository(settings).await?;
        Self::with_repository(settings, repository).await
    }

    /// Serves `repository` with the rest of `settings`.
    pub async fn with_repository(
        settings: &Settings,
        repository: Arc<dyn PipelineInfoRepository>,
    ) -> Result<Self, StartupError> {
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        // Built now so that a bad metric definition fails at startup, not on a request.
        std::sync::LazyLock::force(&crate::metrics::METRICS);
        let serving = Serving {
            backend: repository.backend_name(),
            data: data_location(settings),
            runs: stored_runs(repository.as_ref()).await,
        };
        let router = app(app_state(repository, settings), &settings.cors);
        Ok(Self {
            listener,
            router,
            connections: settings.connections,
            serving,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then lets requests in flight finish
    /// within the shutdown deadline.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // One line for a person starting the service (and fields for a log
        // shipper): the build, the store, its data, how many runs it holds,
        // and the addresses to open.
        let url = format!("http://{}", self.listener.local_addr()?);
        tracing::info!(
            version = %env!("CARGO_PKG_VERSION"),
            backend = %self.serving.backend,
            data = %self.serving.data,
            runs = self.serving.runs,
            url = %url,
            docs = %format_args!("{url}/docs"),
            "serving"
        );
        let connections = ConnectionLimits {
            max_connections: crate::server::fit_descriptor_limit(self.connections.max_connections),
            ..self.connections
        };
        crate::server::serve(self.listener, self.router, connections, signal).await;
        Ok(())
    }
}

/// Where the data is: the JSON Lines file's full path, or the database
/// user, connect string (without any password) and table.
fn data_location(settings: &Settings) -> String {
    match (settings.backend, &settings.oracle) {
        (Backend::Jsonl, _) => std::path::absolute(&settings.jsonl_path)
            .unwrap_or_else(|_| settings.jsonl_path.clone())
            .display()
            .to_string(),
        (Backend::Oracle, Some(oracle)) => format!(
            "{}@{} table {}",
            oracle.user,
            without_password(&oracle.dsn),
            oracle.schema.table()
        ),
        (Backend::Oracle, None) => String::new(),
        (Backend::Postgres, _) => settings
            .postgres
            .as_ref()
            .map(|postgres| format!("{} table {}", postgres.redacted(), TABLE))
            .unwrap_or_default(),
    }
}

/// A connect string fit to print: the password of `scheme://user:password@host…`
/// or `user/password@host…` left out.
fn without_password(dsn: &str) -> String {
    let (scheme, rest) = match dsn.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), dsn),
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split([':', '/']).next().unwrap_or_default();
            format!("{scheme}{user}@{host}")
        }
        None => dsn.to_owned(),
    }
}

/// How many runs the store holds, for the startup line; a store that
/// cannot count now still serves (`/ready` reports on it).
async fn stored_runs(repository: &dyn PipelineInfoRepository) -> Option<u64> {
    match repository
        .query(&RunFilter::default(), Position::Offset(0), 0, true)
        .await
    {
        Ok(page) => page.total,
        Err(error) => {
            tracing::warn!(%error, "cannot count the stored runs");
            None
        }
    }
}

/// What the handlers share, built from the settings.
fn app_state(repository: Arc<dyn PipelineInfoRepository>, settings: &Settings) -> AppState {
    AppState {
        repository,
        auth: Arc::new(guard::ApiKeyCheck::new(&settings.auth)),
        metrics_max_series: settings.metrics_max_series,
        summary_json: Arc::default(),
        limits: settings.limits,
        stale_factor: settings.stale_factor,
        baseline_runs: settings.baseline_runs,
        validation: Arc::new(settings.validation.clone()),
        archive: Arc::new(settings.archive.clone()),
        metric_flags: Arc::default(),
        csv_neutralise_formulas: settings.csv_neutralise_formulas,
        bulk_budget: Arc::new(budget::BodyBudget::new(settings.limits.bulk_memory_bytes)),
        exposition: Arc::default(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn printed_connect_strings_never_hold_a_password() {
        for (dsn, shown) in [
            ("db:1521/FREEPDB1", "db:1521/FREEPDB1"),
            ("app/s3cret@db:1521/FREEPDB1", "app@db:1521/FREEPDB1"),
            (
                "postgres://app:s3cret@db:5432/runs",
                "postgres://app@db:5432/runs",
            ),
            ("postgres://app@db/runs", "postgres://app@db/runs"),
            ("postgres://app:p@ss@db/runs", "postgres://app@db/runs"),
        ] {
            assert_eq!(without_password(dsn), shown);
        }
    }
}

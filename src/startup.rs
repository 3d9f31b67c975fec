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
use crate::repository::postgres::{PostgresRepository, PostgresStartError};
use crate::repository::{PipelineInfoRepository, RepositoryError};
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
        let router = app(app_state(repository, settings), &settings.cors);
        Ok(Self {
            listener,
            router,
            connections: settings.connections,
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
        tracing::info!(address = %self.listener.local_addr()?, "serving");
        let connections = ConnectionLimits {
            max_connections: crate::server::fit_descriptor_limit(self.connections.max_connections),
            ..self.connections
        };
        crate::server::serve(self.listener, self.router, connections, signal).await;
        Ok(())
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

//! Sessions: where the database is and how to reach it, the pool, opening
//! it, and running work on one session with a call timeout, metrics, and
//! one retry of a read whose session died.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oracle::pool::{GetMode, PoolBuilder};
use oracle::Connection;

use super::errors::{classify, is_client_missing, is_dead_session};
use super::sql::{self, OracleSchema};
use super::OraclePipelineRepository;
use crate::metrics::METRICS;
use crate::repository::RepositoryError;

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Where the Oracle runs live and how to reach them.
#[derive(Debug, Clone)]
pub struct OracleSettings {
    pub dsn: String,
    pub user: String,
    pub password: Secret,
    pub schema: OracleSchema,
    pub pool_min: u32,
    pub pool_max: u32,
    pub pool_timeout: std::time::Duration,
    pub call_timeout: std::time::Duration,
    pub connect_timeout: std::time::Duration,
    /// How long an Idempotency-Key protects against repeats.
    pub key_retention: std::time::Duration,
}

/// What to install when the Oracle client libraries cannot be loaded.
pub const INSTANT_CLIENT_HELP: &str = "the Oracle client library (libclntsh) could not be loaded. \
Install Oracle Instant Client (Basic or Basic Light, 19c or newer) from Oracle's download page, \
then point the service at it: LD_LIBRARY_PATH=/opt/oracle/instantclient_23_5 (or register the folder \
with ldconfig). The Dockerfile's `oracle` stage builds an image that includes it";

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

/// Why work on a session failed: the driver's error, which `with_session`
/// classifies (and retries once when a read's session died), or an answer
/// the work has already decided on.
pub(super) enum Failure {
    Driver(oracle::Error),
    Decided(RepositoryError),
}

impl From<oracle::Error> for Failure {
    fn from(error: oracle::Error) -> Self {
        Failure::Driver(error)
    }
}

impl From<RepositoryError> for Failure {
    fn from(error: RepositoryError) -> Self {
        Failure::Decided(error)
    }
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

/// Runs `work`, rolling back what it left uncommitted when it fails, so
/// the session goes back to the pool without an open transaction.
pub(super) fn rolled_back_on_failure<T>(
    conn: &Connection,
    work: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let result = work();
    if result.is_err() {
        // The failure is what matters; a session that cannot roll back is
        // dead and the pool discards it.
        let _ = conn.rollback();
    }
    result
}

impl OraclePipelineRepository {
    /// Creates the session pool and checks one session. The connect
    /// timeout bounds the whole attempt.
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
                Ok(conn.query_row(sql::PING, &[]).map(|_| ())?)
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

    /// Runs `work` on a pooled session; with `retry`, work that fails
    /// because its session died is run once more on a fresh session.
    pub(super) fn with_session<T>(
        &self,
        operation: &'static str,
        retry: bool,
        mut work: impl FnMut(&Connection) -> Result<T, Failure>,
    ) -> Result<T, RepositoryError> {
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let conn = self.session()?;
            match work(&conn) {
                Ok(value) => break Ok(value),
                Err(Failure::Driver(error)) if retry && attempt == 0 && is_dead_session(&error) => {
                    tracing::warn!(%error, operation, "database session died; retrying once");
                    attempt += 1;
                    // Dropping the session returns it to the pool, which
                    // discards it because it is dead.
                    drop(conn);
                }
                Err(Failure::Driver(error)) => break Err(classify(&error)),
                Err(Failure::Decided(error)) => break Err(error),
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
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, RepositoryError> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let this = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&this)))
            .await
            .map_err(|e| RepositoryError::Task(e.to_string()))?
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
}

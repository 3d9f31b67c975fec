//! Sessions: where the database is and how to reach it, the pool, opening
//! it, and running work on one session with a call timeout, metrics, and
//! one retry of a read whose session died.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oracle::pool::{GetMode, PoolBuilder};
use oracle::Connection;

use super::errors::{classify, is_client_missing, is_dead_session};
use super::rows::{bind_values, named};
use super::sql::{self, OracleSchema, Statement};
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

/// `dsn` with `timeout` as its connect timeout, so that opening a new
/// session (at startup, or when the pool grows or replaces a dead one)
/// gives up instead of waiting for the operating system's TCP timeout: an
/// Easy Connect string gets `?connect_timeout=…` (Oracle Client 19c and
/// later read it), a connect descriptor gets `(CONNECT_TIMEOUT=…)`. A
/// TNS alias is left as it is (its descriptor lives in tnsnames.ora,
/// where the operator sets the timeout), and so is a DSN that sets one.
pub fn dsn_with_connect_timeout(dsn: &str, timeout: Duration) -> String {
    let seconds = timeout.as_secs().max(1);
    let trimmed = dsn.trim();
    if trimmed.to_ascii_uppercase().contains("CONNECT_TIMEOUT") {
        return dsn.to_owned();
    }
    if let Some(rest) = trimmed.strip_prefix('(') {
        // `(DESCRIPTION=` … : the parameter goes right inside DESCRIPTION.
        if let Some(open) = rest.find('=').filter(|_| {
            rest.get(..11)
                .is_some_and(|head| head.eq_ignore_ascii_case("DESCRIPTION"))
        }) {
            let (head, tail) = trimmed.split_at(open + 2);
            return format!("{head}(CONNECT_TIMEOUT={seconds}){tail}");
        }
        return dsn.to_owned();
    }
    let easy_connect = trimmed.contains('/') || trimmed.contains(':');
    if !easy_connect {
        return dsn.to_owned();
    }
    let joiner = if trimmed.contains('?') { '&' } else { '?' };
    format!("{trimmed}{joiner}connect_timeout={seconds}")
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
        let start_error = |e: oracle::Error| {
            if is_client_missing(&e) {
                OracleStartError::ClientMissing(e.to_string())
            } else {
                OracleStartError::Connect(e.to_string())
            }
        };
        let dsn = dsn_with_connect_timeout(&settings.dsn, settings.connect_timeout);
        let mut builder = PoolBuilder::new(
            settings.user.as_str(),
            settings.password.expose(),
            dsn.as_str(),
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
            layout: Arc::default(),
            call_timeout: settings.call_timeout,
        };
        repository
            .with_session("connect", false, |conn| {
                Ok(conn.query_row(sql::PING, &[]).map(|_| ())?)
            })
            .map_err(|e| OracleStartError::Connect(e.to_string()))?;
        // Logs the layout, or why the table cannot be used yet (it may be
        // created later: the first request looks again).
        let _ = repository.layout_blocking();
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

    /// A session that answers a ping. After a session died, the others
    /// the pool holds may have died with it (a database restart ends them
    /// all), so each is checked before use and a dead one discarded, at
    /// most as many as the pool can hold, before one is opened anew.
    fn live_session(&self) -> Result<Connection, RepositoryError> {
        let mut tries = self.pool.open_count().unwrap_or(0) + 1;
        loop {
            let conn = self.session()?;
            tries -= 1;
            match conn.ping() {
                Ok(()) => return Ok(conn),
                // A failed ping marks the session dead; the pool drops it
                // when it comes back.
                Err(error) if tries > 0 && is_dead_session(&error) => drop(conn),
                Err(error) => return Err(classify(&error)),
            }
        }
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
    /// because its session died is run once more, on a session that has
    /// answered a ping.
    pub(super) fn with_session<T>(
        &self,
        operation: &'static str,
        retry: bool,
        mut work: impl FnMut(&Connection) -> Result<T, Failure>,
    ) -> Result<T, RepositoryError> {
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let conn = match attempt {
                0 => self.session()?,
                _ => self.live_session()?,
            };
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

    /// The optimizer's plan for `statement` (`EXPLAIN PLAN`, then
    /// `DBMS_XPLAN.DISPLAY`), a line per row: which index serves a query,
    /// and whether it sorts. Blocks; used by the test suite.
    pub fn explain_blocking(&self, statement: &Statement) -> Result<Vec<String>, RepositoryError> {
        let layout = self.layout_blocking()?;
        self.with_session("explain", false, |conn| {
            let values = bind_values(&sql::params(&layout, statement))?;
            conn.execute_named(
                &format!("EXPLAIN PLAN FOR {}", statement.sql),
                &named(&values),
            )?;
            let rows = conn.query(
                "SELECT plan_table_output FROM TABLE(DBMS_XPLAN.DISPLAY(NULL, NULL, 'BASIC'))",
                &[],
            )?;
            let mut lines = Vec::new();
            for row in rows {
                lines.push(row?.get::<usize, Option<String>>(0)?.unwrap_or_default());
            }
            Ok(lines)
        })
    }

    /// The rows of a query of text columns, as the table holds them (no
    /// stored form undone). Blocks; used by the test suite to read the
    /// table as its other readers do.
    pub fn texts_blocking(&self, query: &str) -> Result<Vec<Vec<Option<String>>>, RepositoryError> {
        self.with_session("texts", false, |conn| {
            let mut rows = Vec::new();
            for row in conn.query(query, &[])? {
                let row = row?;
                let width = row.column_info().len();
                let mut texts = Vec::with_capacity(width);
                for at in 0..width {
                    texts.push(row.get::<usize, Option<String>>(at)?);
                }
                rows.push(texts);
            }
            Ok(rows)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_timeout_goes_into_the_dsn_where_it_can() {
        let ten = Duration::from_secs(10);
        let cases = [
            (
                "db.example.com:1521/FREEPDB1",
                "db.example.com:1521/FREEPDB1?connect_timeout=10",
            ),
            ("localhost/XE", "localhost/XE?connect_timeout=10"),
            (
                "tcps://db:2484/svc?wallet_location=/w",
                "tcps://db:2484/svc?wallet_location=/w&connect_timeout=10",
            ),
            (
                "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=s)))",
                "(DESCRIPTION=(CONNECT_TIMEOUT=10)(ADDRESS=(PROTOCOL=TCP)(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=s)))",
            ),
            (
                "(description=(address=(protocol=tcp)(host=db)(port=1521)))",
                "(description=(CONNECT_TIMEOUT=10)(address=(protocol=tcp)(host=db)(port=1521)))",
            ),
            // A TNS alias, and DSNs that set their own timeout, stay as they are.
            ("PRODDB", "PRODDB"),
            ("db:1521/s?connect_timeout=3", "db:1521/s?connect_timeout=3"),
            (
                "(DESCRIPTION=(CONNECT_TIMEOUT=3)(ADDRESS=(HOST=db)))",
                "(DESCRIPTION=(CONNECT_TIMEOUT=3)(ADDRESS=(HOST=db)))",
            ),
            ("(ADDRESS_LIST=(ADDRESS=(HOST=db)))", "(ADDRESS_LIST=(ADDRESS=(HOST=db)))"),
        ];
        for (dsn, expected) in cases {
            assert_eq!(dsn_with_connect_timeout(dsn, ten), expected, "{dsn}");
        }
        assert_eq!(
            dsn_with_connect_timeout("db/s", Duration::from_millis(200)),
            "db/s?connect_timeout=1",
            "at least a second"
        );
    }
}

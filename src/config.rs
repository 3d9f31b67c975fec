//! Typed settings, read once at startup from flags and environment variables
//! (flags win). Every value is checked here, so a bad one stops the process
//! before it serves anything, with a message naming the variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::repository::oracle::sql::OracleSchema;

/// Command line; each flag can also come from the environment variable shown.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline-service",
    version,
    about = "Records and serves metadata about data-pipeline runs. Without a command, serves the HTTP API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: RawSettings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Exit 0 when the server at HOST:PORT answers /health with 200
    /// (for container health checks; needs no curl).
    Healthcheck,
    /// Load a JSON Lines file into the configured backend.
    Import {
        /// The file to load (same format and inference as the JSONL store).
        file: PathBuf,
    },
    /// Remove runs that started more than DAYS ago (and bad lines) from the
    /// configured store, keeping everything else; safe while the service runs.
    Compact {
        /// Age in days (fractions allowed) beyond which runs are removed.
        #[arg(long, value_name = "DAYS")]
        older_than: f64,
        /// Append the removed runs (and bad lines) to this JSON Lines file.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the Oracle DDL (table, identity, indexes) for ORACLE_TABLE and
    /// ORACLE_COLUMN_MAP.
    Ddl {
        /// Print only what adds the idempotency columns to an existing table.
        #[arg(long)]
        add_idempotency: bool,
    },
    /// Write a realistic JSON Lines data file (for benchmarks and trials).
    Gen {
        /// How many lines to write.
        #[arg(long)]
        records: u64,
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
        /// Seed for reproducible data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// How many pipelines (name and environment pairs) the runs are
        /// spread over.
        #[arg(long, default_value_t = crate::generate::DEFAULT_PIPELINES, value_parser = clap::value_parser!(u64).range(1..))]
        pipelines: u64,
    },
}

/// Settings as given, before validation.
#[derive(Debug, Default, Clone, Args)]
pub struct RawSettings {
    /// Address to listen on.
    #[arg(long, env = "HOST")]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT")]
    pub port: Option<String>,
    /// Storage backend: jsonl or oracle.
    #[arg(long, env = "PIPELINE_BACKEND")]
    pub backend: Option<String>,
    /// Path of the JSON Lines data file.
    #[arg(long, env = "PIPELINE_JSONL_PATH")]
    pub jsonl_path: Option<String>,
    /// Comma-separated origins allowed by CORS.
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Allow every origin (development only).
    #[arg(long, env = "CORS_ALLOW_ALL")]
    pub cors_allow_all: Option<String>,
    /// Log line format: text or json.
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Sync the data file to disk before acknowledging an insert (true/false).
    #[arg(long, env = "PIPELINE_JSONL_FSYNC")]
    pub jsonl_fsync: Option<String>,
    /// Comma-separated API keys; when set, writes need an X-API-Key header.
    #[arg(long, env = "PIPELINE_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// File with one API key per line (blank lines and # comments ignored).
    #[arg(long, env = "PIPELINE_API_KEYS_FILE")]
    pub api_keys_file: Option<String>,
    /// Require an API key for reads too (true/false).
    #[arg(long, env = "PIPELINE_API_KEYS_FOR_READS")]
    pub api_keys_for_reads: Option<String>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "PIPELINE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<String>,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "PIPELINE_REQUEST_TIMEOUT_S")]
    pub request_timeout_s: Option<String>,
    /// API requests served at once; more are refused with 503 and Retry-After.
    #[arg(long, env = "PIPELINE_MAX_CONCURRENCY")]
    pub max_concurrency: Option<String>,
    /// Most label sets the per-pipeline metrics export.
    #[arg(long, env = "PIPELINE_METRICS_MAX_SERIES")]
    pub metrics_max_series: Option<String>,
    /// Reject records with reversed times, negative numbers or unknown fields (true/false).
    #[arg(long, env = "PIPELINE_STRICT_VALIDATION")]
    pub strict_validation: Option<String>,
    /// Comma-separated values allowed for pipeline_type (unset: any).
    #[arg(long, env = "PIPELINE_ALLOWED_TYPES")]
    pub allowed_types: Option<String>,
    /// Comma-separated values allowed for environment (unset: any).
    #[arg(long, env = "PIPELINE_ALLOWED_ENVIRONMENTS")]
    pub allowed_environments: Option<String>,
    /// Comma-separated folders archived files may be served from (unset: none).
    #[arg(long, env = "PIPELINE_ARCHIVE_ROOTS")]
    pub archive_roots: Option<String>,
    /// Archived files up to this many MB are shown inline when they are
    /// text, images or JSON; larger ones are downloads.
    #[arg(long, env = "MAX_FILE_SIZE_MB")]
    pub max_file_size_mb: Option<String>,
    /// Typical intervals without a run after which a pipeline is stale.
    #[arg(long, env = "PIPELINE_STALE_FACTOR")]
    pub stale_factor: Option<String>,
    /// Runs before the latest that form its anomaly baseline.
    #[arg(long, env = "PIPELINE_BASELINE_RUNS")]
    pub baseline_runs: Option<String>,
    /// Most records one `POST /pipelines/bulk` may carry.
    #[arg(long, env = "PIPELINE_MAX_BULK")]
    pub max_bulk: Option<String>,
    /// Largest accepted bulk request body in bytes.
    #[arg(long, env = "PIPELINE_MAX_BULK_BYTES")]
    pub max_bulk_bytes: Option<String>,
    /// Bytes of bulk bodies held at once across requests; more answer 503.
    #[arg(long, env = "PIPELINE_BULK_MEMORY_BYTES")]
    pub bulk_memory_bytes: Option<String>,
    /// Seconds a client has to send a complete request head.
    #[arg(long, env = "PIPELINE_HEADER_READ_TIMEOUT_S")]
    pub header_read_timeout_s: Option<String>,
    /// Seconds an idle kept-alive connection stays open (0: no keep-alive).
    #[arg(long, env = "PIPELINE_KEEP_ALIVE_TIMEOUT_S")]
    pub keep_alive_timeout_s: Option<String>,
    /// Most connections open at once; more are answered 503 and closed.
    #[arg(long, env = "PIPELINE_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Seconds a graceful shutdown waits for open connections.
    #[arg(long, env = "PIPELINE_SHUTDOWN_TIMEOUT_S")]
    pub shutdown_timeout_s: Option<String>,
    /// Prefix CSV export cells that a spreadsheet would run as a formula (true/false).
    #[arg(long, env = "PIPELINE_CSV_NEUTRALISE_FORMULAS")]
    pub csv_neutralise_formulas: Option<String>,
    /// Seconds an Idempotency-Key protects against repeats (default 7 days).
    #[arg(long, env = "PIPELINE_IDEMPOTENCY_RETENTION_S")]
    pub idempotency_retention_s: Option<String>,
    /// Oracle connect string, e.g. host:1521/SERVICE.
    #[arg(long, env = "ORACLE_DSN")]
    pub oracle_dsn: Option<String>,
    /// Oracle user name.
    #[arg(long, env = "ORACLE_USER")]
    pub oracle_user: Option<String>,
    /// Oracle password.
    #[arg(long, env = "ORACLE_PASSWORD", hide_env_values = true)]
    pub oracle_password: Option<String>,
    /// Table holding the runs: TABLE or SCHEMA.TABLE.
    #[arg(long, env = "ORACLE_TABLE")]
    pub oracle_table: Option<String>,
    /// JSON object mapping record fields (and "id") to column names.
    #[arg(long, env = "ORACLE_COLUMN_MAP")]
    pub oracle_column_map: Option<String>,
    /// Sessions the pool keeps open.
    #[arg(long, env = "ORACLE_POOL_MIN")]
    pub oracle_pool_min: Option<String>,
    /// Most sessions the pool opens.
    #[arg(long, env = "ORACLE_POOL_MAX")]
    pub oracle_pool_max: Option<String>,
    /// Seconds a request waits for a free session before answering 503.
    #[arg(long, env = "ORACLE_POOL_TIMEOUT_S")]
    pub oracle_pool_timeout_s: Option<String>,
    /// Seconds one database call may take before it is cancelled.
    #[arg(long, env = "ORACLE_CALL_TIMEOUT_S")]
    pub oracle_call_timeout_s: Option<String>,
    /// Seconds startup waits for the first sessions.
    #[arg(long, env = "ORACLE_CONNECT_TIMEOUT_S")]
    pub oracle_connect_timeout_s: Option<String>,
}

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_JSONL_PATH: &str = "pipeline_data.jsonl";
pub const DEFAULT_CORS_ORIGINS: &[&str] = &[
    "http://localhost:3000",
    "http://localhost:5173",
    "http://localhost:8080",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:5173",
    "http://127.0.0.1:8080",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Jsonl,
    Oracle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Any origin, without credentials.
    AllowAll,
    /// Exactly these origins, with credentials.
    Origins(Vec<String>),
}

/// API keys. Never printed: `Debug` shows only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub fn new(keys: Vec<String>) -> Self {
        Self(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} redacted)", self.0.len())
    }
}

/// Who must present an API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Empty: no authentication at all.
    pub keys: ApiKeys,
    /// Reads need a key too, not only writes.
    pub protect_reads: bool,
}

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

pub const DEFAULT_ORACLE_TABLE: &str = "PIPELINE_RUNS";

/// The table and column map alone (all `pipeline-service ddl` needs).
pub fn oracle_schema(raw: &RawSettings) -> Result<OracleSchema, ConfigError> {
    let table = raw
        .oracle_table
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_ORACLE_TABLE);
    crate::repository::oracle::sql::validate_table(table)
        .map_err(|e| ConfigError::new("ORACLE_TABLE", e.0))?;
    OracleSchema::new(table, raw.oracle_column_map.as_deref())
        .map_err(|e| ConfigError::new("ORACLE_COLUMN_MAP", e.0))
}

fn oracle_settings(raw: &RawSettings) -> Result<OracleSettings, ConfigError> {
    let missing: Vec<&str> = [
        ("ORACLE_DSN", &raw.oracle_dsn),
        ("ORACLE_USER", &raw.oracle_user),
        ("ORACLE_PASSWORD", &raw.oracle_password),
    ]
    .iter()
    .filter(|(_, value)| value.as_deref().is_none_or(|v| v.trim().is_empty()))
    .map(|(name, _)| *name)
    .collect();
    if let Some(first) = missing.first() {
        return Err(ConfigError::new(
            first,
            format!(
                "required for PIPELINE_BACKEND=oracle; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    let schema = oracle_schema(raw)?;
    let pool_min = bounded(
        "ORACLE_POOL_MIN",
        raw.oracle_pool_min.as_deref(),
        1,
        0,
        10_000,
    )? as u32;
    let pool_max = bounded(
        "ORACLE_POOL_MAX",
        raw.oracle_pool_max.as_deref(),
        8,
        1,
        10_000,
    )? as u32;
    if pool_min > pool_max {
        return Err(ConfigError::new(
            "ORACLE_POOL_MIN",
            format!("{pool_min} is above ORACLE_POOL_MAX ({pool_max})"),
        ));
    }
    let seconds = |variable, value: &Option<String>, default| {
        bounded(variable, value.as_deref(), default, 1, 3600).map(std::time::Duration::from_secs)
    };
    Ok(OracleSettings {
        dsn: raw.oracle_dsn.clone().unwrap_or_default(),
        user: raw.oracle_user.clone().unwrap_or_default(),
        password: Secret::new(raw.oracle_password.clone().unwrap_or_default()),
        schema,
        pool_min,
        pool_max,
        pool_timeout: seconds("ORACLE_POOL_TIMEOUT_S", &raw.oracle_pool_timeout_s, 5)?,
        call_timeout: seconds("ORACLE_CALL_TIMEOUT_S", &raw.oracle_call_timeout_s, 30)?,
        connect_timeout: seconds(
            "ORACLE_CONNECT_TIMEOUT_S",
            &raw.oracle_connect_timeout_s,
            15,
        )?,
        key_retention: key_retention(raw)?,
    })
}

/// Bounds that keep one client from exhausting the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    pub max_concurrency: usize,
    pub max_bulk: usize,
    pub max_bulk_bytes: usize,
    /// Bulk body bytes held at once across all requests.
    pub bulk_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: DEFAULT_MAX_BULK,
            max_bulk_bytes: DEFAULT_MAX_BULK_BYTES,
            bulk_memory_bytes: DEFAULT_BULK_MEMORY_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: std::time::Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_S),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;
pub const DEFAULT_MAX_CONCURRENCY: usize = 512;
pub const DEFAULT_METRICS_MAX_SERIES: usize = 1000;
pub const DEFAULT_MAX_BULK: usize = 10_000;
pub const DEFAULT_MAX_BULK_BYTES: usize = 64 << 20;
/// Room for one bulk body of the largest default size, or many smaller.
pub const DEFAULT_BULK_MEMORY_BYTES: usize = 64 << 20;

/// How connections are held: timeouts for clients that are slow to send a
/// request or idle between requests, a cap on open connections, and how
/// long a graceful shutdown waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: std::time::Duration,
    /// `None`: every connection closes after one answer.
    pub keep_alive_timeout: Option<std::time::Duration>,
    pub max_connections: usize,
    pub shutdown_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_S),
            keep_alive_timeout: Some(std::time::Duration::from_secs(DEFAULT_KEEP_ALIVE_TIMEOUT_S)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: std::time::Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_S),
        }
    }
}

pub const DEFAULT_HEADER_READ_TIMEOUT_S: u64 = 10;
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_S: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 25;

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub backend: Backend,
    pub jsonl_path: PathBuf,
    pub jsonl_fsync: bool,
    pub cors: CorsPolicy,
    pub log_format: LogFormat,
    pub auth: AuthPolicy,
    pub limits: Limits,
    pub connections: ConnectionLimits,
    /// CSV export cells that could run as spreadsheet formulas are prefixed.
    pub csv_neutralise_formulas: bool,
    pub metrics_max_series: usize,
    /// How long an Idempotency-Key protects against repeats.
    pub key_retention: std::time::Duration,
    pub stale_factor: f64,
    pub baseline_runs: usize,
    /// Rules for client records beyond the contract's.
    pub validation: crate::domain::policy::ValidationPolicy,
    /// Where archived files may be served from.
    pub archive: ArchivePolicy,
    /// Present exactly when the backend is Oracle.
    pub oracle: Option<OracleSettings>,
}

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case.
pub fn parse_flag(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(ConfigError::new(
            variable,
            format!("{other:?} is not a boolean (use true or false)"),
        )),
    }
}

impl Settings {
    /// Checks every raw value.
    pub fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let host = raw.host.clone().unwrap_or_else(|| DEFAULT_HOST.to_owned());
        if host.trim().is_empty() {
            return Err(ConfigError::new("HOST", "must not be empty"));
        }
        let port = match raw.port.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_PORT,
            Some(text) => text.parse::<u16>().map_err(|_| {
                ConfigError::new("PORT", format!("{text:?} is not a port number (0-65535)"))
            })?,
        };
        let backend = match raw
            .backend
            .as_deref()
            .map(|b| b.trim().to_ascii_lowercase())
        {
            None => Backend::Jsonl,
            Some(b) if b.is_empty() || b == "jsonl" => Backend::Jsonl,
            Some(b) if b == "oracle" => Backend::Oracle,
            Some(other) => {
                return Err(ConfigError::new(
                    "PIPELINE_BACKEND",
                    format!("{other:?} is not a backend (use jsonl or oracle)"),
                ))
            }
        };
        let jsonl_path = match raw.jsonl_path.as_deref() {
            None | Some("") => PathBuf::from(DEFAULT_JSONL_PATH),
            Some(path) => PathBuf::from(path),
        };
        let allow_all = match raw.cors_allow_all.as_deref() {
            None => false,
            Some(value) => parse_flag("CORS_ALLOW_ALL", value)?,
        };
        let cors = if allow_all {
            CorsPolicy::AllowAll
        } else {
            CorsPolicy::Origins(parse_origins(raw.cors_origins.as_deref())?)
        };
        let log_format = match raw
            .log_format
            .as_deref()
            .map(|f| f.trim().to_ascii_lowercase())
        {
            None => LogFormat::Text,
            Some(f) if f.is_empty() || f == "text" => LogFormat::Text,
            Some(f) if f == "json" => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("{other:?} is not a log format (use text or json)"),
                ))
            }
        };
        let jsonl_fsync = match raw.jsonl_fsync.as_deref() {
            None => true,
            Some(value) if value.trim().is_empty() => true,
            Some(value) => parse_flag("PIPELINE_JSONL_FSYNC", value)?,
        };
        let auth = parse_auth(&raw)?;
        let max_bulk_bytes = bounded(
            "PIPELINE_MAX_BULK_BYTES",
            raw.max_bulk_bytes.as_deref(),
            DEFAULT_MAX_BULK_BYTES as u64,
            1,
            1 << 32,
        )? as usize;
        let limits = Limits {
            max_body_bytes: bounded(
                "PIPELINE_MAX_BODY_BYTES",
                raw.max_body_bytes.as_deref(),
                DEFAULT_MAX_BODY_BYTES as u64,
                1,
                1 << 30,
            )? as usize,
            request_timeout: std::time::Duration::from_secs(bounded(
                "PIPELINE_REQUEST_TIMEOUT_S",
                raw.request_timeout_s.as_deref(),
                DEFAULT_REQUEST_TIMEOUT_S,
                1,
                86_400,
            )?),
            max_concurrency: bounded(
                "PIPELINE_MAX_CONCURRENCY",
                raw.max_concurrency.as_deref(),
                DEFAULT_MAX_CONCURRENCY as u64,
                1,
                1_000_000,
            )? as usize,
            max_bulk: bounded(
                "PIPELINE_MAX_BULK",
                raw.max_bulk.as_deref(),
                DEFAULT_MAX_BULK as u64,
                1,
                1_000_000,
            )? as usize,
            max_bulk_bytes,
            bulk_memory_bytes: bulk_memory_bytes(&raw, max_bulk_bytes)?,
        };
        let connections = connection_limits(&raw)?;
        let csv_neutralise_formulas = match raw.csv_neutralise_formulas.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(value) => parse_flag("PIPELINE_CSV_NEUTRALISE_FORMULAS", value)?,
        };
        let key_retention = key_retention(&raw)?;
        let archive = ArchivePolicy {
            roots: raw
                .archive_roots
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(PathBuf::from)
                .collect(),
            inline_max_bytes: bounded(
                "MAX_FILE_SIZE_MB",
                raw.max_file_size_mb.as_deref(),
                DEFAULT_MAX_FILE_SIZE_MB,
                0,
                1 << 20,
            )? << 20,
        };
        let validation = crate::domain::policy::ValidationPolicy {
            strict: match raw.strict_validation.as_deref().map(str::trim) {
                None | Some("") => false,
                Some(value) => parse_flag("PIPELINE_STRICT_VALIDATION", value)?,
            },
            allowed_types: choice_list(raw.allowed_types.as_deref()),
            allowed_environments: choice_list(raw.allowed_environments.as_deref()),
        };
        let stale_factor = match raw.stale_factor.as_deref().map(str::trim) {
            None | Some("") => crate::stats::DEFAULT_STALE_FACTOR,
            Some(text) => match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => {
                    return Err(ConfigError::new(
                        "PIPELINE_STALE_FACTOR",
                        format!("{text:?} is not a positive number"),
                    ))
                }
            },
        };
        let baseline_runs = bounded(
            "PIPELINE_BASELINE_RUNS",
            raw.baseline_runs.as_deref(),
            crate::stats::DEFAULT_BASELINE_RUNS as u64,
            crate::stats::MIN_BASELINE as u64,
            100_000,
        )? as usize;
        let metrics_max_series = bounded(
            "PIPELINE_METRICS_MAX_SERIES",
            raw.metrics_max_series.as_deref(),
            DEFAULT_METRICS_MAX_SERIES as u64,
            0,
            1_000_000,
        )? as usize;
        let oracle = match backend {
            Backend::Oracle => Some(oracle_settings(&raw)?),
            Backend::Jsonl => None,
        };
        Ok(Self {
            host,
            port,
            backend,
            jsonl_path,
            jsonl_fsync,
            cors,
            log_format,
            auth,
            limits,
            connections,
            csv_neutralise_formulas,
            metrics_max_series,
            key_retention,
            stale_factor,
            baseline_runs,
            validation,
            archive,
            oracle,
        })
    }
}

/// Archived-file serving: only below `roots` (after resolving symlinks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePolicy {
    pub roots: Vec<PathBuf>,
    /// Larger files are always attachments.
    pub inline_max_bytes: u64,
}

pub const DEFAULT_MAX_FILE_SIZE_MB: u64 = 50;

/// A comma list of allowed values; unset or empty means no restriction.
fn choice_list(value: Option<&str>) -> Option<Vec<String>> {
    let values: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    (!values.is_empty()).then_some(values)
}

/// The bulk memory budget: at least one bulk body of the largest size, or
/// it could never be read.
fn bulk_memory_bytes(raw: &RawSettings, max_bulk_bytes: usize) -> Result<usize, ConfigError> {
    let budget = bounded(
        "PIPELINE_BULK_MEMORY_BYTES",
        raw.bulk_memory_bytes.as_deref(),
        DEFAULT_BULK_MEMORY_BYTES.max(max_bulk_bytes) as u64,
        1,
        1 << 40,
    )? as usize;
    if budget < max_bulk_bytes {
        return Err(ConfigError::new(
            "PIPELINE_BULK_MEMORY_BYTES",
            format!("{budget} is below PIPELINE_MAX_BULK_BYTES ({max_bulk_bytes})"),
        ));
    }
    Ok(budget)
}

fn connection_limits(raw: &RawSettings) -> Result<ConnectionLimits, ConfigError> {
    let seconds = |variable, value: &Option<String>, default, min| {
        bounded(variable, value.as_deref(), default, min, 3600).map(std::time::Duration::from_secs)
    };
    let keep_alive = seconds(
        "PIPELINE_KEEP_ALIVE_TIMEOUT_S",
        &raw.keep_alive_timeout_s,
        DEFAULT_KEEP_ALIVE_TIMEOUT_S,
        0,
    )?;
    Ok(ConnectionLimits {
        header_read_timeout: seconds(
            "PIPELINE_HEADER_READ_TIMEOUT_S",
            &raw.header_read_timeout_s,
            DEFAULT_HEADER_READ_TIMEOUT_S,
            1,
        )?,
        keep_alive_timeout: (!keep_alive.is_zero()).then_some(keep_alive),
        max_connections: bounded(
            "PIPELINE_MAX_CONNECTIONS",
            raw.max_connections.as_deref(),
            DEFAULT_MAX_CONNECTIONS as u64,
            1,
            1_000_000,
        )? as usize,
        shutdown_timeout: seconds(
            "PIPELINE_SHUTDOWN_TIMEOUT_S",
            &raw.shutdown_timeout_s,
            DEFAULT_SHUTDOWN_TIMEOUT_S,
            0,
        )?,
    })
}

fn key_retention(raw: &RawSettings) -> Result<std::time::Duration, ConfigError> {
    let default = crate::repository::insert::DEFAULT_KEY_RETENTION.as_secs();
    bounded(
        "PIPELINE_IDEMPOTENCY_RETENTION_S",
        raw.idempotency_retention_s.as_deref(),
        default,
        1,
        10 * 365 * 86_400,
    )
    .map(std::time::Duration::from_secs)
}

/// A whole number in `min..=max`, or `default` when unset.
fn bounded(
    variable: &'static str,
    value: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(ConfigError::new(
            variable,
            format!("{text:?} is not a whole number from {min} to {max}"),
        )),
    }
}

fn parse_auth(raw: &RawSettings) -> Result<AuthPolicy, ConfigError> {
    let mut keys: Vec<String> = raw
        .api_keys
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(path) = raw
        .api_keys_file
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "PIPELINE_API_KEYS_FILE",
                format!("cannot read {path:?}: {e}"),
            )
        })?;
        let before = keys.len();
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if keys.len() == before {
            return Err(ConfigError::new(
                "PIPELINE_API_KEYS_FILE",
                format!("{path:?} holds no key"),
            ));
        }
    }
    if keys
        .iter()
        .any(|k| !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ConfigError::new(
            "PIPELINE_API_KEYS",
            "keys must be printable ASCII without spaces",
        ));
    }
    let protect_reads = match raw.api_keys_for_reads.as_deref() {
        None => false,
        Some(value) => parse_flag("PIPELINE_API_KEYS_FOR_READS", value)?,
    };
    if protect_reads && keys.is_empty() {
        return Err(ConfigError::new(
            "PIPELINE_API_KEYS_FOR_READS",
            "needs PIPELINE_API_KEYS or PIPELINE_API_KEYS_FILE",
        ));
    }
    Ok(AuthPolicy {
        keys: ApiKeys::new(keys),
        protect_reads,
    })
}

fn parse_origins(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_CORS_ORIGINS
            .iter()
            .map(|s| (*s).to_owned())
            .collect());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = origin.bytes().all(|b| b.is_ascii_graphic()) && origin.contains("://");
            if valid {
                Ok(origin.trim_end_matches('/').to_owned())
            } else {
                Err(ConfigError::new(
                    "CORS_ORIGINS",
                    format!("{origin:?} is not an origin like https://dashboard.example.com"),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(raw: RawSettings) -> Result<Settings, ConfigError> {
        Settings::from_raw(raw)
    }

    #[test]
    fn defaults_serve_jsonl_on_port_8000() {
        let s = settings(RawSettings::default()).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.backend, Backend::Jsonl);
        assert_eq!(s.jsonl_path, PathBuf::from("pipeline_data.jsonl"));
        assert!(
            matches!(s.cors, CorsPolicy::Origins(ref o) if o.contains(&"http://localhost:5173".to_string()))
        );
    }

    #[test]
    fn backend_is_case_insensitive_and_unknown_values_stop_startup() {
        let raw = |b: &str| RawSettings {
            backend: Some(b.into()),
            ..Default::default()
        };
        let oracle = |b: &str| RawSettings {
            backend: Some(b.into()),
            oracle_dsn: Some("db:1521/FREEPDB1".into()),
            oracle_user: Some("app".into()),
            oracle_password: Some("pw".into()),
            ..Default::default()
        };
        assert_eq!(settings(oracle("ORACLE")).unwrap().backend, Backend::Oracle);
        assert_eq!(settings(raw("Jsonl")).unwrap().backend, Backend::Jsonl);
        let err = settings(raw("postgres")).unwrap_err();
        assert_eq!(err.variable, "PIPELINE_BACKEND");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let port = RawSettings {
            port: Some("eighty".into()),
            ..Default::default()
        };
        assert_eq!(settings(port).unwrap_err().variable, "PORT");
        let allow = RawSettings {
            cors_allow_all: Some("sure".into()),
            ..Default::default()
        };
        assert_eq!(settings(allow).unwrap_err().variable, "CORS_ALLOW_ALL");
        let origins = RawSettings {
            cors_origins: Some("not an origin".into()),
            ..Default::default()
        };
        assert_eq!(settings(origins).unwrap_err().variable, "CORS_ORIGINS");
        let log = RawSettings {
            log_format: Some("xml".into()),
            ..Default::default()
        };
        assert_eq!(settings(log).unwrap_err().variable, "LOG_FORMAT");
    }

    #[test]
    fn limits_and_flags_are_checked() {
        let s = settings(RawSettings::default()).unwrap();
        assert!(s.jsonl_fsync);
        assert_eq!(s.limits, Limits::default());
        let raw = RawSettings {
            jsonl_fsync: Some("false".into()),
            max_body_bytes: Some("2048".into()),
            request_timeout_s: Some("5".into()),
            max_concurrency: Some("8".into()),
            ..Default::default()
        };
        let s = settings(raw).unwrap();
        assert!(!s.jsonl_fsync);
        assert_eq!(s.limits.max_body_bytes, 2048);
        assert_eq!(s.limits.request_timeout.as_secs(), 5);
        assert_eq!(s.limits.max_concurrency, 8);
        for (raw, variable) in [
            (
                RawSettings {
                    max_body_bytes: Some("0".into()),
                    ..Default::default()
                },
                "PIPELINE_MAX_BODY_BYTES",
            ),
            (
                RawSettings {
                    request_timeout_s: Some("-1".into()),
                    ..Default::default()
                },
                "PIPELINE_REQUEST_TIMEOUT_S",
            ),
            (
                RawSettings {
                    max_concurrency: Some("lots".into()),
                    ..Default::default()
                },
                "PIPELINE_MAX_CONCURRENCY",
            ),
            (
                RawSettings {
                    jsonl_fsync: Some("maybe".into()),
                    ..Default::default()
                },
                "PIPELINE_JSONL_FSYNC",
            ),
            (
                RawSettings {
                    strict_validation: Some("maybe".into()),
                    ..Default::default()
                },
                "PIPELINE_STRICT_VALIDATION",
            ),
            (
                RawSettings {
                    stale_factor: Some("-1".into()),
                    ..Default::default()
                },
                "PIPELINE_STALE_FACTOR",
            ),
            (
                RawSettings {
                    baseline_runs: Some("2".into()),
                    ..Default::default()
                },
                "PIPELINE_BASELINE_RUNS",
            ),
            (
                RawSettings {
                    max_bulk: Some("0".into()),
                    ..Default::default()
                },
                "PIPELINE_MAX_BULK",
            ),
            (
                RawSettings {
                    idempotency_retention_s: Some("0".into()),
                    ..Default::default()
                },
                "PIPELINE_IDEMPOTENCY_RETENTION_S",
            ),
        ] {
            assert_eq!(settings(raw).unwrap_err().variable, variable);
        }
    }

    #[test]
    fn connection_limits_bulk_budget_and_csv_rule() {
        let s = settings(RawSettings::default()).unwrap();
        assert_eq!(s.connections, ConnectionLimits::default());
        assert_eq!(s.limits.bulk_memory_bytes, DEFAULT_BULK_MEMORY_BYTES);
        assert!(s.csv_neutralise_formulas);
        let raw = RawSettings {
            header_read_timeout_s: Some("3".into()),
            keep_alive_timeout_s: Some("0".into()),
            max_connections: Some("7".into()),
            shutdown_timeout_s: Some("0".into()),
            csv_neutralise_formulas: Some("off".into()),
            ..Default::default()
        };
        let s = settings(raw).unwrap();
        assert_eq!(
            s.connections,
            ConnectionLimits {
                header_read_timeout: std::time::Duration::from_secs(3),
                keep_alive_timeout: None,
                max_connections: 7,
                shutdown_timeout: std::time::Duration::ZERO,
            }
        );
        assert!(!s.csv_neutralise_formulas);
        let large_bulks = RawSettings {
            max_bulk_bytes: Some((200u64 << 20).to_string()),
            ..Default::default()
        };
        assert_eq!(
            settings(large_bulks).unwrap().limits.bulk_memory_bytes,
            200 << 20,
            "the budget holds at least one bulk of the largest size"
        );
        for (raw, variable) in [
            (
                RawSettings {
                    bulk_memory_bytes: Some("1000".into()),
                    max_bulk_bytes: Some("2000".into()),
                    ..Default::default()
                },
                "PIPELINE_BULK_MEMORY_BYTES",
            ),
            (
                RawSettings {
                    header_read_timeout_s: Some("0".into()),
                    ..Default::default()
                },
                "PIPELINE_HEADER_READ_TIMEOUT_S",
            ),
            (
                RawSettings {
                    keep_alive_timeout_s: Some("-1".into()),
                    ..Default::default()
                },
                "PIPELINE_KEEP_ALIVE_TIMEOUT_S",
            ),
            (
                RawSettings {
                    max_connections: Some("0".into()),
                    ..Default::default()
                },
                "PIPELINE_MAX_CONNECTIONS",
            ),
            (
                RawSettings {
                    shutdown_timeout_s: Some("soon".into()),
                    ..Default::default()
                },
                "PIPELINE_SHUTDOWN_TIMEOUT_S",
            ),
            (
                RawSettings {
                    csv_neutralise_formulas: Some("maybe".into()),
                    ..Default::default()
                },
                "PIPELINE_CSV_NEUTRALISE_FORMULAS",
            ),
        ] {
            assert_eq!(settings(raw).unwrap_err().variable, variable);
        }
    }

    #[test]
    fn api_keys_come_from_the_variable_and_the_file_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# ops team\nfile-key-1\n\n  file-key-2  \n").unwrap();
        let raw = RawSettings {
            api_keys: Some("env-key, other-key".into()),
            api_keys_file: Some(file.display().to_string()),
            api_keys_for_reads: Some("yes".into()),
            ..Default::default()
        };
        let s = settings(raw).unwrap();
        assert_eq!(
            s.auth.keys.keys(),
            ["env-key", "other-key", "file-key-1", "file-key-2"]
        );
        assert!(s.auth.protect_reads);
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("env-key") && !printed.contains("file-key"),
            "{printed}"
        );
        let missing = RawSettings {
            api_keys_file: Some(dir.path().join("nope").display().to_string()),
            ..Default::default()
        };
        assert_eq!(
            settings(missing).unwrap_err().variable,
            "PIPELINE_API_KEYS_FILE"
        );
        let reads_without_keys = RawSettings {
            api_keys_for_reads: Some("true".into()),
            ..Default::default()
        };
        assert_eq!(
            settings(reads_without_keys).unwrap_err().variable,
            "PIPELINE_API_KEYS_FOR_READS"
        );
    }

    fn oracle_raw() -> RawSettings {
        RawSettings {
            backend: Some("oracle".into()),
            oracle_dsn: Some("db:1521/FREEPDB1".into()),
            oracle_user: Some("app".into()),
            oracle_password: Some("hunter2-secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn oracle_needs_dsn_user_and_password_and_names_each_missing_one() {
        let raw = RawSettings {
            backend: Some("oracle".into()),
            oracle_user: Some("app".into()),
            ..Default::default()
        };
        let error = settings(raw).unwrap_err();
        assert_eq!(error.variable, "ORACLE_DSN");
        assert!(
            error.reason.contains("ORACLE_DSN, ORACLE_PASSWORD"),
            "{}",
            error.reason
        );
        let s = settings(oracle_raw()).unwrap();
        let oracle = s.oracle.as_ref().unwrap();
        assert_eq!(oracle.schema.table(), "PIPELINE_RUNS");
        assert_eq!((oracle.pool_min, oracle.pool_max), (1, 8));
        assert_eq!(oracle.pool_timeout.as_secs(), 5);
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(settings(RawSettings::default()).unwrap().oracle.is_none());
    }

    #[test]
    fn oracle_table_column_map_and_pool_errors_name_their_variable() {
        let cases = [
            (
                RawSettings {
                    oracle_table: Some("RUNS; DROP TABLE X".into()),
                    ..oracle_raw()
                },
                "ORACLE_TABLE",
            ),
            (
                RawSettings {
                    oracle_table: Some("A.B.C".into()),
                    ..oracle_raw()
                },
                "ORACLE_TABLE",
            ),
            (
                RawSettings {
                    oracle_column_map: Some("{bad".into()),
                    ..oracle_raw()
                },
                "ORACLE_COLUMN_MAP",
            ),
            (
                RawSettings {
                    oracle_column_map: Some(r#"{"nope": "X"}"#.into()),
                    ..oracle_raw()
                },
                "ORACLE_COLUMN_MAP",
            ),
            (
                RawSettings {
                    oracle_column_map: Some(r#"{"rowcount": "A B"}"#.into()),
                    ..oracle_raw()
                },
                "ORACLE_COLUMN_MAP",
            ),
            (
                RawSettings {
                    oracle_pool_min: Some("9".into()),
                    oracle_pool_max: Some("2".into()),
                    ..oracle_raw()
                },
                "ORACLE_POOL_MIN",
            ),
            (
                RawSettings {
                    oracle_pool_max: Some("0".into()),
                    ..oracle_raw()
                },
                "ORACLE_POOL_MAX",
            ),
            (
                RawSettings {
                    oracle_pool_timeout_s: Some("x".into()),
                    ..oracle_raw()
                },
                "ORACLE_POOL_TIMEOUT_S",
            ),
        ];
        for (raw, variable) in cases {
            assert_eq!(settings(raw).unwrap_err().variable, variable);
        }
        let ok = RawSettings {
            oracle_table: Some("OPS.RUNS".into()),
            oracle_column_map: Some(r#"{"rowcount": "ROW_COUNT", "id": "RUN_ID"}"#.into()),
            ..oracle_raw()
        };
        let schema = settings(ok).unwrap().oracle.unwrap().schema;
        assert_eq!(schema.column("rowcount"), "ROW_COUNT");
        assert_eq!(schema.table(), "OPS.RUNS");
    }

    #[test]
    fn cors_lists_and_allow_all() {
        let raw = RawSettings {
            cors_origins: Some(" https://a.example , https://b.example/ ".into()),
            ..Default::default()
        };
        assert_eq!(
            settings(raw).unwrap().cors,
            CorsPolicy::Origins(vec!["https://a.example".into(), "https://b.example".into()])
        );
        let raw = RawSettings {
            cors_allow_all: Some("TRUE".into()),
            ..Default::default()
        };
        assert_eq!(settings(raw).unwrap().cors, CorsPolicy::AllowAll);
    }
}

//! Typed settings, read once at startup from flags and environment variables
//! (flags win, `cli.rs`). Every value is checked here, so a bad one stops the
//! process before it serves anything, with a message naming the variable.
//! The types checked values become belong to the parts that use them (the
//! API's policies, the Oracle repository's settings, the server's
//! connection limits); configuration only builds them.

mod cli;

pub use self::cli::{
    Cli, Command, PostgresFlags, RawSettings, API_KEYS_VARIABLE, DATABASE_URL_VARIABLE,
    ORACLE_PASSWORD_VARIABLE,
};

use std::path::PathBuf;

use crate::api::archive::ArchivePolicy;
use crate::api::guard::{
    ApiKeys, AuthPolicy, CorsPolicy, Limits, DEFAULT_BULK_MEMORY_BYTES, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_BULK, DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT_S,
};
use crate::repository::oracle::sql::OracleSchema;
use crate::repository::oracle::{OracleSettings, Secret};
use crate::repository::postgres::{PostgresSettings, PostgresValues};
use crate::server::{
    ConnectionLimits, DEFAULT_HEADER_READ_TIMEOUT_S, DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_TIMEOUT_S,
};

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
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub const DEFAULT_ORACLE_TABLE: &str = "PIPELINE_RUNS";
pub const DEFAULT_ORACLE_POOL_MIN: u32 = 1;
pub const DEFAULT_ORACLE_POOL_MAX: u32 = 8;
pub const DEFAULT_ORACLE_POOL_TIMEOUT_S: u64 = 5;
pub const DEFAULT_ORACLE_CALL_TIMEOUT_S: u64 = 30;
pub const DEFAULT_ORACLE_CONNECT_TIMEOUT_S: u64 = 15;
pub const DEFAULT_METRICS_MAX_SERIES: usize = 1000;
pub const DEFAULT_MAX_FILE_SIZE_MB: u64 = 50;

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
    let password = oracle_password(raw)?;
    let missing: Vec<&str> = [
        ("ORACLE_DSN", raw.oracle_dsn.as_deref()),
        ("ORACLE_USER", raw.oracle_user.as_deref()),
        (ORACLE_PASSWORD_VARIABLE, password.as_deref()),
    ]
    .iter()
    .filter(|(_, value)| value.is_none_or(|v| v.trim().is_empty()))
    .map(|(name, _)| *name)
    .collect();
    if let Some(first) = missing.first() {
        let password_file = if missing.contains(&ORACLE_PASSWORD_VARIABLE) {
            " (or ORACLE_PASSWORD_FILE)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            first,
            format!(
                "required for PIPELINE_BACKEND=oracle; missing: {}{password_file}",
                missing.join(", ")
            ),
        ));
    }
    let schema = oracle_schema(raw)?;
    let pool_min = bounded(
        "ORACLE_POOL_MIN",
        raw.oracle_pool_min.as_deref(),
        DEFAULT_ORACLE_POOL_MIN.into(),
        0,
        10_000,
    )? as u32;
    let pool_max = bounded(
        "ORACLE_POOL_MAX",
        raw.oracle_pool_max.as_deref(),
        DEFAULT_ORACLE_POOL_MAX.into(),
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
        password: Secret::new(password.unwrap_or_default()),
        schema,
        pool_min,
        pool_max,
        pool_timeout: seconds(
            "ORACLE_POOL_TIMEOUT_S",
            &raw.oracle_pool_timeout_s,
            DEFAULT_ORACLE_POOL_TIMEOUT_S,
        )?,
        call_timeout: seconds(
            "ORACLE_CALL_TIMEOUT_S",
            &raw.oracle_call_timeout_s,
            DEFAULT_ORACLE_CALL_TIMEOUT_S,
        )?,
        connect_timeout: seconds(
            "ORACLE_CONNECT_TIMEOUT_S",
            &raw.oracle_connect_timeout_s,
            DEFAULT_ORACLE_CONNECT_TIMEOUT_S,
        )?,
        key_retention: key_retention(raw)?,
    })
}

/// The Oracle password from ORACLE_PASSWORD or the file ORACLE_PASSWORD_FILE
/// names (one of them: two sources could disagree unseen).
fn oracle_password(raw: &RawSettings) -> Result<Option<String>, ConfigError> {
    let Some(path) = raw
        .oracle_password_file
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(raw.oracle_password.clone());
    };
    if raw.oracle_password.is_some() {
        return Err(ConfigError::new(
            "ORACLE_PASSWORD_FILE",
            "set either ORACLE_PASSWORD or ORACLE_PASSWORD_FILE, not both",
        ));
    }
    let text = read_setting_file("ORACLE_PASSWORD_FILE", path)?;
    // The newline an editor or `echo` ends the file with is not part of it.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(ConfigError::new(
            "ORACLE_PASSWORD_FILE",
            format!("{path:?} holds no password"),
        ));
    }
    Ok(Some(password.to_owned()))
}

/// The text of the file a setting names.
fn read_setting_file(variable: &'static str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(variable, format!("cannot read {path:?}: {e}")))
}

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
    /// Present exactly when the backend is PostgreSQL.
    pub postgres: Option<PostgresSettings>,
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
        let backend = backend(&raw)?;
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
            Backend::Jsonl | Backend::Postgres => None,
        };
        let postgres = match backend {
            Backend::Postgres => Some(postgres_settings(&raw.postgres, key_retention)?),
            Backend::Jsonl | Backend::Oracle => None,
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
            postgres,
        })
    }
}

/// The storage backend PIPELINE_BACKEND names (any case; unset or empty:
/// JSON Lines).
pub fn backend(raw: &RawSettings) -> Result<Backend, ConfigError> {
    let named = raw
        .backend
        .as_deref()
        .map(|b| b.trim().to_ascii_lowercase());
    Ok(match named.as_deref() {
        None | Some("" | "jsonl") => Backend::Jsonl,
        Some("oracle") => Backend::Oracle,
        Some("postgres" | "postgresql") => Backend::Postgres,
        Some(other) => {
            return Err(ConfigError::new(
                "PIPELINE_BACKEND",
                format!("{other:?} is not a backend (use jsonl, postgres or oracle)"),
            ))
        }
    })
}

/// The variables the PostgreSQL settings come from; a refusal names one.
const POSTGRES_VARIABLES: [&str; 5] = [
    "DATABASE_URL_FILE",
    "DATABASE_URL",
    "PIPELINE_PG_POOL_MAX",
    "PIPELINE_PG_ACQUIRE_TIMEOUT_S",
    "PIPELINE_PG_STATEMENT_TIMEOUT_S",
];

/// The PostgreSQL connection, pool and timeouts (also all `migrate` needs).
pub fn postgres_settings(
    flags: &PostgresFlags,
    key_retention: std::time::Duration,
) -> Result<PostgresSettings, ConfigError> {
    let values = PostgresValues {
        database_url: flags.database_url.clone().filter(|u| !u.trim().is_empty()),
        database_url_file: flags
            .database_url_file
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        pool_max: flags.pg_pool_max.clone(),
        acquire_timeout_s: flags.pg_acquire_timeout_s.clone(),
        statement_timeout_s: flags.pg_statement_timeout_s.clone(),
        key_retention: Some(key_retention),
    };
    PostgresSettings::from_values(&values).map_err(|error| {
        let named = POSTGRES_VARIABLES
            .iter()
            .find_map(|v| Some((*v, error.0.strip_prefix(v)?.strip_prefix(": ")?)));
        match named {
            Some((variable, reason)) => ConfigError::new(variable, reason),
            None => ConfigError::new("DATABASE_URL", error.0),
        }
    })
}

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
        let text = read_setting_file("PIPELINE_API_KEYS_FILE", path)?;
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
            API_KEYS_VARIABLE,
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
mod tests;

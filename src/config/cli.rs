//! The command line: commands and every setting as a flag or an environment
//! variable (flags win), as given, before validation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Print the DDL: Oracle's table, identity and indexes for ORACLE_TABLE
    /// and ORACLE_COLUMN_MAP, or PostgreSQL's migrations.
    Ddl {
        /// Print only what adds the idempotency columns to an existing
        /// Oracle table.
        #[arg(long)]
        add_idempotency: bool,
        /// Which database: oracle (the default) or postgres.
        #[arg(long, value_name = "BACKEND", default_value = "oracle")]
        backend: DdlBackend,
    },
    /// Bring the PostgreSQL schema at DATABASE_URL up to date (the service
    /// also does this when it starts) and print its version.
    Migrate,
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

/// The databases `ddl` prints for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DdlBackend {
    Oracle,
    Postgres,
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
    /// Storage backend: jsonl, postgres or oracle.
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
    #[command(flatten, next_help_heading = "PostgreSQL (PIPELINE_BACKEND=postgres)")]
    pub postgres: PostgresFlags,
}

/// The PostgreSQL backend's settings, as given.
#[derive(Default, Clone, Args)]
pub struct PostgresFlags {
    /// The connection, `postgres://user:password@host:port/dbname?sslmode=…`
    /// or `host=… dbname=…`. It may hold a password, so it is read from the
    /// environment only (never a flag, which `ps` would show) and never
    /// printed.
    #[arg(skip = std::env::var("DATABASE_URL").ok())]
    pub database_url: Option<String>,
    /// A file holding the connection string (postgres://… or host=… dbname=…),
    /// so the password need not sit in the environment; or set DATABASE_URL.
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<String>,
    /// Most connections one replica opens to PostgreSQL.
    #[arg(long, env = "PIPELINE_PG_POOL_MAX")]
    pub pg_pool_max: Option<String>,
    /// Seconds a request waits for a database connection before answering 503.
    #[arg(long, env = "PIPELINE_PG_ACQUIRE_TIMEOUT_S")]
    pub pg_acquire_timeout_s: Option<String>,
    /// Seconds PostgreSQL lets one statement run before cancelling it.
    #[arg(long, env = "PIPELINE_PG_STATEMENT_TIMEOUT_S")]
    pub pg_statement_timeout_s: Option<String>,
}

impl std::fmt::Debug for PostgresFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFlags")
            .field("database_url", &self.database_url.as_ref().map(|_| "…"))
            .field("database_url_file", &self.database_url_file)
            .field("pg_pool_max", &self.pg_pool_max)
            .field("pg_acquire_timeout_s", &self.pg_acquire_timeout_s)
            .field("pg_statement_timeout_s", &self.pg_statement_timeout_s)
            .finish()
    }
}

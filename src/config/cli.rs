//! The command line: commands and every setting as a flag or an environment
//! variable (flags win), as given, before validation.
//!
//! Settings are global, so they may stand before or after the command, and
//! every command's `--help` lists them. Each value reaches configuration as
//! text, so a wrong one is refused there, in one line naming its variable,
//! whether it came from a flag or from the environment. On/off settings are
//! plain flags on the command line while their variables keep taking
//! true/false. Secrets have no flag (`ps` and shell history would show
//! them): `Cli::read` takes them from the environment.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand};

use super::{
    DEFAULT_CORS_ORIGINS, DEFAULT_HOST, DEFAULT_JSONL_PATH, DEFAULT_MAX_FILE_SIZE_MB,
    DEFAULT_METRICS_MAX_SERIES, DEFAULT_ORACLE_CALL_TIMEOUT_S, DEFAULT_ORACLE_CONNECT_TIMEOUT_S,
    DEFAULT_ORACLE_POOL_MAX, DEFAULT_ORACLE_POOL_MIN, DEFAULT_ORACLE_POOL_TIMEOUT_S,
    DEFAULT_ORACLE_TABLE, DEFAULT_PORT,
};
use crate::api::guard::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BULK, DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_CONCURRENCY,
    DEFAULT_REQUEST_TIMEOUT_S,
};
use crate::repository::insert::DEFAULT_KEY_RETENTION;
use crate::repository::postgres::settings::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_POOL_MAX, DEFAULT_STATEMENT_TIMEOUT,
};
use crate::server::{
    DEFAULT_HEADER_READ_TIMEOUT_S, DEFAULT_KEEP_ALIVE_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SHUTDOWN_TIMEOUT_S,
};
use crate::stats::{DEFAULT_BASELINE_RUNS, DEFAULT_STALE_FACTOR};

/// The variable holding the API keys; it has no flag.
pub const API_KEYS_VARIABLE: &str = "PIPELINE_API_KEYS";
/// The variable holding the Oracle password; it has no flag.
pub const ORACLE_PASSWORD_VARIABLE: &str = "ORACLE_PASSWORD";
/// The variable holding the PostgreSQL connection string, which may carry
/// a password; it has no flag.
pub const DATABASE_URL_VARIABLE: &str = "DATABASE_URL";

// The headings of `--help`, in the order they are listed (the order of the
// fields below).
const SERVER: &str = "Server";
const JSONL: &str = "JSON Lines store";
const ORACLE: &str = "Oracle";
const POSTGRES: &str = "PostgreSQL";
const SECURITY: &str = "Security";
const RECORDS: &str = "Records";
const LIMITS: &str = "Limits";
const STATISTICS: &str = "Statistics";
const OBSERVABILITY: &str = "Observability";

/// Command line; each flag can also come from the environment variable shown.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline-service",
    version,
    about = "Records and serves metadata about data-pipeline runs. Without a command, serves the HTTP API.",
    long_about = "Records and serves metadata about data-pipeline runs. Without a command, serves the HTTP API.\n\n\
        Every setting is a flag or the environment variable shown beside it (a flag wins), before or after \
        the command. On/off settings are flags; their variables take true or false (also 1/0, yes/no, on/off). \
        Secrets are read only from the environment or a file, never from a flag: PIPELINE_API_KEYS or \
        --api-keys-file, ORACLE_PASSWORD or --oracle-password-file, DATABASE_URL or --database-url-file. RUST_LOG sets the log filter \
        (default: info)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: RawSettings,
}

/// Secrets' flags that do not exist, and where the secret goes instead.
const SECRET_FLAGS: [(&str, &str); 3] = [
    ("--api-keys", "PIPELINE_API_KEYS or --api-keys-file"),
    (
        "--oracle-password",
        "ORACLE_PASSWORD or --oracle-password-file",
    ),
    ("--database-url", "DATABASE_URL or --database-url-file"),
];

impl Cli {
    /// The command line, with the secrets only the environment may carry;
    /// exits with status 2 and the reason when it does not parse.
    pub fn read() -> Self {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some((flag, instead)) = secret_flag(&args) {
            let reason = format!(
                "{flag} is not taken on the command line, where ps and shell history would show it; set {instead}"
            );
            Self::command()
                .error(clap::error::ErrorKind::UnknownArgument, reason)
                .exit();
        }
        let mut cli = Self::parse_from(args);
        cli.settings.api_keys = secret_from_env(API_KEYS_VARIABLE);
        cli.settings.oracle_password = secret_from_env(ORACLE_PASSWORD_VARIABLE);
        cli.settings.postgres.database_url = secret_from_env(DATABASE_URL_VARIABLE);
        cli
    }
}

/// The first secret flag among the options (before any `--`), with where
/// the secret belongs instead; said plainly rather than clap's "unexpected
/// argument".
fn secret_flag(args: &[std::ffi::OsString]) -> Option<(&'static str, &'static str)> {
    args.iter()
        .skip(1)
        .take_while(|arg| arg.as_os_str() != OsStr::new("--"))
        .filter_map(|arg| arg.to_str())
        .find_map(|arg| {
            SECRET_FLAGS.into_iter().find(|(flag, _)| {
                arg.strip_prefix(flag)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            })
        })
}

/// A secret's variable; text that is not UTF-8 is kept (lossily) so that
/// configuration refuses it by name instead of it vanishing.
fn secret_from_env(variable: &str) -> Option<String> {
    std::env::var_os(variable).map(|value| value.to_string_lossy().into_owned())
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
    /// Print the DDL: with --backend postgres, PostgreSQL's migrations (as
    /// one transaction); otherwise Oracle's table, identity and indexes for
    /// ORACLE_TABLE and ORACLE_COLUMN_MAP.
    Ddl {
        /// Print only what adds the idempotency columns to an existing
        /// Oracle table.
        #[arg(long, conflicts_with = "add_offsets")]
        add_idempotency: bool,
        /// Print only what adds the offset columns to a table of the
        /// original layout (kept as it is: existing rows read as before).
        #[arg(long)]
        add_offsets: bool,
    },
    /// Bring the PostgreSQL schema at DATABASE_URL up to date (the service
    /// also does this when it starts) and say from which version to which.
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

/// Lists the allowed values in `--help` but passes any text on, so that
/// configuration refuses a wrong one like every other bad setting: in one
/// line naming the variable.
#[derive(Clone)]
struct ShownChoices(&'static [&'static str]);

impl TypedValueParser for ShownChoices {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(command, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.0.iter().copied().map(PossibleValue::new)))
    }
}

/// Settings as given, before validation. On/off flags arrive as the text
/// `true` or `false`, their variables as written; the secrets (`api_keys`,
/// `oracle_password`, `postgres.database_url`) only from `Cli::read`.
#[derive(Debug, Default, Clone, Args)]
pub struct RawSettings {
    /// Address to listen on (0.0.0.0 in containers).
    #[arg(long, env = "HOST", global = true, help_heading = SERVER, default_value = DEFAULT_HOST)]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", global = true, help_heading = SERVER, default_value = DEFAULT_PORT.to_string())]
    pub port: Option<String>,
    /// Storage backend, any case.
    #[arg(long, env = "PIPELINE_BACKEND", global = true, help_heading = SERVER, default_value = "jsonl", value_parser = ShownChoices(&["jsonl", "postgres", "oracle"]))]
    pub backend: Option<String>,
    /// Seconds a graceful shutdown waits for requests in flight.
    #[arg(long, env = "PIPELINE_SHUTDOWN_TIMEOUT_S", global = true, help_heading = SERVER, default_value = DEFAULT_SHUTDOWN_TIMEOUT_S.to_string())]
    pub shutdown_timeout_s: Option<String>,

    /// Path of the JSON Lines data file.
    #[arg(long, env = "PIPELINE_JSONL_PATH", global = true, help_heading = JSONL, default_value = DEFAULT_JSONL_PATH)]
    pub jsonl_path: Option<String>,
    /// Acknowledge inserts before they are synced to disk (faster; a crash
    /// may lose the latest runs). The same as PIPELINE_JSONL_FSYNC=false.
    #[arg(long = "no-jsonl-fsync", env = "PIPELINE_JSONL_FSYNC", global = true, help_heading = JSONL, num_args = 0, default_missing_value = "false")]
    pub jsonl_fsync: Option<String>,

    /// Oracle connect string, e.g. host:1521/SERVICE.
    #[arg(long, env = "ORACLE_DSN", global = true, help_heading = ORACLE)]
    pub oracle_dsn: Option<String>,
    /// Oracle user name.
    #[arg(long, env = "ORACLE_USER", global = true, help_heading = ORACLE)]
    pub oracle_user: Option<String>,
    /// Oracle password; only from here or ORACLE_PASSWORD_FILE, never a flag.
    #[arg(skip)]
    pub oracle_password: Option<String>,
    /// File holding the Oracle password (a trailing newline is ignored);
    /// or set ORACLE_PASSWORD. There is no password flag: ps would show it.
    #[arg(long, env = "ORACLE_PASSWORD_FILE", global = true, help_heading = ORACLE, value_name = "FILE")]
    pub oracle_password_file: Option<String>,
    /// Table holding the runs: TABLE or SCHEMA.TABLE.
    #[arg(long, env = "ORACLE_TABLE", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_TABLE)]
    pub oracle_table: Option<String>,
    /// JSON object mapping record fields (and "id") to column names.
    #[arg(long, env = "ORACLE_COLUMN_MAP", global = true, help_heading = ORACLE, value_name = "JSON")]
    pub oracle_column_map: Option<String>,
    /// Sessions the pool keeps open.
    #[arg(long, env = "ORACLE_POOL_MIN", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_POOL_MIN.to_string())]
    pub oracle_pool_min: Option<String>,
    /// Most sessions the pool opens.
    #[arg(long, env = "ORACLE_POOL_MAX", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_POOL_MAX.to_string())]
    pub oracle_pool_max: Option<String>,
    /// Seconds a request waits for a free session before answering 503.
    #[arg(long, env = "ORACLE_POOL_TIMEOUT_S", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_POOL_TIMEOUT_S.to_string())]
    pub oracle_pool_timeout_s: Option<String>,
    /// Seconds one database call may take before it is cancelled.
    #[arg(long, env = "ORACLE_CALL_TIMEOUT_S", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_CALL_TIMEOUT_S.to_string())]
    pub oracle_call_timeout_s: Option<String>,
    /// Seconds startup waits for the first sessions.
    #[arg(long, env = "ORACLE_CONNECT_TIMEOUT_S", global = true, help_heading = ORACLE, default_value = DEFAULT_ORACLE_CONNECT_TIMEOUT_S.to_string())]
    pub oracle_connect_timeout_s: Option<String>,

    #[command(flatten)]
    pub postgres: PostgresFlags,

    // The settings of further storage backends go here, after PostgreSQL's,
    // so that `--help` lists the stores together.
    /// Comma-separated origins allowed by CORS.
    #[arg(long, env = "CORS_ORIGINS", global = true, help_heading = SECURITY, default_value = DEFAULT_CORS_ORIGINS.join(","))]
    pub cors_origins: Option<String>,
    /// Allow every origin, without credentials (development only). The same
    /// as CORS_ALLOW_ALL=true.
    #[arg(long, env = "CORS_ALLOW_ALL", global = true, help_heading = SECURITY, num_args = 0, default_missing_value = "true")]
    pub cors_allow_all: Option<String>,
    /// Comma-separated API keys; only from here or the file, never a flag.
    #[arg(skip)]
    pub api_keys: Option<String>,
    /// File with one API key per line (blank lines and # comments ignored),
    /// added to PIPELINE_API_KEYS; with either, writes need an X-API-Key
    /// header. There is no keys flag: ps would show them.
    #[arg(long, env = "PIPELINE_API_KEYS_FILE", global = true, help_heading = SECURITY, value_name = "FILE")]
    pub api_keys_file: Option<String>,
    /// Require an API key for data reads too. The same as
    /// PIPELINE_API_KEYS_FOR_READS=true.
    #[arg(long, env = "PIPELINE_API_KEYS_FOR_READS", global = true, help_heading = SECURITY, num_args = 0, default_missing_value = "true")]
    pub api_keys_for_reads: Option<String>,
    /// Comma-separated folders archived files may be served from (unset: none).
    #[arg(long, env = "PIPELINE_ARCHIVE_ROOTS", global = true, help_heading = SECURITY, value_name = "FOLDERS")]
    pub archive_roots: Option<String>,
    /// Export CSV cells as written, even those a spreadsheet would run as a
    /// formula. The same as PIPELINE_CSV_NEUTRALISE_FORMULAS=false.
    #[arg(long = "no-csv-neutralise-formulas", env = "PIPELINE_CSV_NEUTRALISE_FORMULAS", global = true, help_heading = SECURITY, num_args = 0, default_missing_value = "false")]
    pub csv_neutralise_formulas: Option<String>,

    /// Reject records with reversed times, negative numbers or unknown
    /// fields. The same as PIPELINE_STRICT_VALIDATION=true.
    #[arg(long, env = "PIPELINE_STRICT_VALIDATION", global = true, help_heading = RECORDS, num_args = 0, default_missing_value = "true")]
    pub strict_validation: Option<String>,
    /// Comma-separated values allowed for pipeline_type (unset: any).
    #[arg(long, env = "PIPELINE_ALLOWED_TYPES", global = true, help_heading = RECORDS, value_name = "TYPES")]
    pub allowed_types: Option<String>,
    /// Comma-separated values allowed for environment (unset: any).
    #[arg(long, env = "PIPELINE_ALLOWED_ENVIRONMENTS", global = true, help_heading = RECORDS, value_name = "ENVIRONMENTS")]
    pub allowed_environments: Option<String>,
    /// Seconds an Idempotency-Key protects against repeats (7 days).
    #[arg(long, env = "PIPELINE_IDEMPOTENCY_RETENTION_S", global = true, help_heading = RECORDS, default_value = DEFAULT_KEY_RETENTION.as_secs().to_string())]
    pub idempotency_retention_s: Option<String>,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "PIPELINE_MAX_BODY_BYTES", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_BODY_BYTES.to_string())]
    pub max_body_bytes: Option<String>,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "PIPELINE_REQUEST_TIMEOUT_S", global = true, help_heading = LIMITS, default_value = DEFAULT_REQUEST_TIMEOUT_S.to_string())]
    pub request_timeout_s: Option<String>,
    /// API requests served at once; more are refused with 503 and Retry-After.
    #[arg(long, env = "PIPELINE_MAX_CONCURRENCY", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_CONCURRENCY.to_string())]
    pub max_concurrency: Option<String>,
    /// Most records one POST /pipelines/bulk may carry.
    #[arg(long, env = "PIPELINE_MAX_BULK", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_BULK.to_string())]
    pub max_bulk: Option<String>,
    /// Largest accepted bulk request body in bytes.
    #[arg(long, env = "PIPELINE_MAX_BULK_BYTES", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_BULK_BYTES.to_string())]
    pub max_bulk_bytes: Option<String>,
    /// Bytes of bulk bodies held at once across requests; more answer 503
    /// (default: 67108864, or PIPELINE_MAX_BULK_BYTES if larger).
    #[arg(long, env = "PIPELINE_BULK_MEMORY_BYTES", global = true, help_heading = LIMITS)]
    pub bulk_memory_bytes: Option<String>,
    /// Seconds a client has to send a complete request head.
    #[arg(long, env = "PIPELINE_HEADER_READ_TIMEOUT_S", global = true, help_heading = LIMITS, default_value = DEFAULT_HEADER_READ_TIMEOUT_S.to_string())]
    pub header_read_timeout_s: Option<String>,
    /// Seconds an idle kept-alive connection stays open (0: no keep-alive).
    #[arg(long, env = "PIPELINE_KEEP_ALIVE_TIMEOUT_S", global = true, help_heading = LIMITS, default_value = DEFAULT_KEEP_ALIVE_TIMEOUT_S.to_string())]
    pub keep_alive_timeout_s: Option<String>,
    /// Most connections open at once; more are answered 503 and closed.
    #[arg(long, env = "PIPELINE_MAX_CONNECTIONS", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_CONNECTIONS.to_string())]
    pub max_connections: Option<String>,
    /// Archived files up to this many MB are shown inline when they are
    /// text, images or JSON; larger ones are downloads.
    #[arg(long, env = "MAX_FILE_SIZE_MB", global = true, help_heading = LIMITS, default_value = DEFAULT_MAX_FILE_SIZE_MB.to_string())]
    pub max_file_size_mb: Option<String>,

    /// Typical intervals without a run after which a pipeline is stale.
    #[arg(long, env = "PIPELINE_STALE_FACTOR", global = true, help_heading = STATISTICS, default_value = DEFAULT_STALE_FACTOR.to_string())]
    pub stale_factor: Option<String>,
    /// Runs before the latest that form its anomaly baseline (at least 5).
    #[arg(long, env = "PIPELINE_BASELINE_RUNS", global = true, help_heading = STATISTICS, default_value = DEFAULT_BASELINE_RUNS.to_string())]
    pub baseline_runs: Option<String>,

    /// Log line format (the filter is RUST_LOG's, default info).
    #[arg(long, env = "LOG_FORMAT", global = true, help_heading = OBSERVABILITY, default_value = "text", value_parser = ShownChoices(&["text", "json"]))]
    pub log_format: Option<String>,
    /// Most pipelines the per-pipeline metrics export.
    #[arg(long, env = "PIPELINE_METRICS_MAX_SERIES", global = true, help_heading = OBSERVABILITY, default_value = DEFAULT_METRICS_MAX_SERIES.to_string())]
    pub metrics_max_series: Option<String>,
}

/// The PostgreSQL backend's settings, as given.
#[derive(Default, Clone, Args)]
pub struct PostgresFlags {
    /// The connection, `postgres://user:password@host:port/dbname?sslmode=…`
    /// or `host=… dbname=…`; only from DATABASE_URL or the file, never a
    /// flag, and never printed.
    #[arg(skip)]
    pub database_url: Option<String>,
    /// File holding the connection string (postgres://… or host=… dbname=…),
    /// so the password need not sit in the environment; or set
    /// DATABASE_URL. There is no connection flag: ps would show the password.
    #[arg(long, env = "DATABASE_URL_FILE", global = true, help_heading = POSTGRES, value_name = "FILE")]
    pub database_url_file: Option<String>,
    /// Most connections one replica opens to PostgreSQL.
    #[arg(long, env = "PIPELINE_PG_POOL_MAX", global = true, help_heading = POSTGRES, default_value = DEFAULT_POOL_MAX.to_string())]
    pub pg_pool_max: Option<String>,
    /// Seconds a request waits for (or to open) a database connection
    /// before answering 503.
    #[arg(long, env = "PIPELINE_PG_ACQUIRE_TIMEOUT_S", global = true, help_heading = POSTGRES, default_value = DEFAULT_ACQUIRE_TIMEOUT.as_secs().to_string())]
    pub pg_acquire_timeout_s: Option<String>,
    /// Seconds PostgreSQL lets one statement run before cancelling it.
    #[arg(long, env = "PIPELINE_PG_STATEMENT_TIMEOUT_S", global = true, help_heading = POSTGRES, default_value = DEFAULT_STATEMENT_TIMEOUT.as_secs().to_string())]
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

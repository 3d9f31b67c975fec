//! How to reach PostgreSQL: the connection string (`postgres://…` or
//! `host=… dbname=…`), TLS, pool size and timeouts. Parsed from values
//! handed in by configuration, never read from the environment here. The
//! password lives only inside `tokio_postgres::Config` and is never shown:
//! `Debug` and `redacted()` leave it out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::repository::insert::DEFAULT_KEY_RETENTION;

/// Connections one replica opens at most unless configured.
pub const DEFAULT_POOL_MAX: usize = 16;
/// How long a request waits for a pooled connection (or a new one).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server lets one statement run before cancelling it.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The client gives up this long after the server should have cancelled a
/// statement: the server's own timeout is the one that normally fires, this
/// one covers a server or network that stopped answering.
pub const CLIENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// The raw configuration values, named after the variables they come from.
#[derive(Default, Clone)]
pub struct PostgresValues {
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `DATABASE_URL_FILE`: a file holding the URL, so the password need
    /// not sit in the environment.
    pub database_url_file: Option<PathBuf>,
    /// `PIPELINE_PG_POOL_MAX`.
    pub pool_max: Option<String>,
    /// `PIPELINE_PG_ACQUIRE_TIMEOUT_S`.
    pub acquire_timeout_s: Option<String>,
    /// `PIPELINE_PG_STATEMENT_TIMEOUT_S`.
    pub statement_timeout_s: Option<String>,
    /// How long an idempotency key protects against repeats.
    pub key_retention: Option<Duration>,
}

impl fmt::Debug for PostgresValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresValues")
            .field("database_url", &self.database_url.as_ref().map(|_| "…"))
            .field("database_url_file", &self.database_url_file)
            .field("pool_max", &self.pool_max)
            .field("acquire_timeout_s", &self.acquire_timeout_s)
            .field("statement_timeout_s", &self.statement_timeout_s)
            .finish()
    }
}

/// Why the PostgreSQL settings are refused; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PostgresSettingsError(pub String);

/// libpq's `sslmode`, all five values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate
    /// (libpq's default).
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS, the certificate chain checked against the trusted roots.
    VerifyCa,
    /// TLS, the chain checked and the certificate naming the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            // libpq's `allow` tries plain first; the nearest safe reading.
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What the driver itself is told: whether to ask for TLS at all.
    fn driver_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => SslMode::Require,
        }
    }
}

/// Everything needed to open the pool.
#[derive(Clone)]
pub struct PostgresSettings {
    config: tokio_postgres::Config,
    /// `options` as given in the connection string.
    given_options: Option<String>,
    pub tls: TlsMode,
    /// `sslrootcert`: a PEM file of trusted roots instead of the system's.
    pub root_cert: Option<PathBuf>,
    pub pool_max: usize,
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout`, set for every connection.
    pub statement_timeout: Duration,
    pub key_retention: Duration,
}

impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("dsn", &self.redacted())
            .field("pool_max", &self.pool_max)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("key_retention", &self.key_retention)
            .finish()
    }
}

impl PostgresSettings {
    pub fn from_values(values: &PostgresValues) -> Result<Self, PostgresSettingsError> {
        let url =
            match (&values.database_url, &values.database_url_file) {
                (Some(_), Some(_)) => {
                    return Err(PostgresSettingsError(
                        "set DATABASE_URL or DATABASE_URL_FILE, not both".into(),
                    ))
                }
                (Some(url), None) => url.clone(),
                (None, Some(path)) => read_url_file(path)?,
                (None, None) => return Err(PostgresSettingsError(
                    "DATABASE_URL (or DATABASE_URL_FILE) is required for PIPELINE_BACKEND=postgres"
                        .into(),
                )),
            };
        let statement_timeout = seconds(
            "PIPELINE_PG_STATEMENT_TIMEOUT_S",
            &values.statement_timeout_s,
            DEFAULT_STATEMENT_TIMEOUT,
        )?;
        let acquire_timeout = seconds(
            "PIPELINE_PG_ACQUIRE_TIMEOUT_S",
            &values.acquire_timeout_s,
            DEFAULT_ACQUIRE_TIMEOUT,
        )?;
        let pool_max = match values.pool_max.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_POOL_MAX,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    PostgresSettingsError(format!(
                        "PIPELINE_PG_POOL_MAX: {text:?} is not a whole number from 1 to 1000"
                    ))
                })?,
        };
        let Connection {
            mut config,
            tls,
            root_cert,
        } = parse_connection(&url)?;
        config.ssl_mode(tls.driver_mode());
        config.connect_timeout(acquire_timeout);
        config.keepalives(true);
        if config.get_application_name().is_none() {
            config.application_name("pipeline-service");
        }
        let given_options = config.get_options().map(str::to_owned);
        Ok(Self {
            config,
            given_options,
            tls,
            root_cert,
            pool_max,
            acquire_timeout,
            statement_timeout,
            key_retention: values.key_retention.unwrap_or(DEFAULT_KEY_RETENTION),
        }
        .with_statement_timeout(statement_timeout))
    }

    /// The same, with another server-side statement timeout.
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        // The server cancels a statement past this, so an abandoned query
        // never keeps running; set at connection start (no extra round trip).
        let setting = format!("-c statement_timeout={}", timeout.as_millis());
        let options = match self.given_options.as_deref() {
            Some(given) if !given.trim().is_empty() => format!("{given} {setting}"),
            _ => setting,
        };
        self.config.options(options);
        self.statement_timeout = timeout;
        self
    }

    /// The driver's configuration (it holds the password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The same server and credentials, another database (tests make one
    /// database per test this way).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut copy = self.clone();
        copy.config.dbname(dbname);
        copy
    }

    /// The longest the client waits for one statement.
    pub fn client_timeout(&self) -> Duration {
        self.statement_timeout + CLIENT_TIMEOUT_MARGIN
    }

    /// The connection in `key=value` form without the password, for the
    /// startup line and error messages.
    pub fn redacted(&self) -> String {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        let mut parts = Vec::new();
        let mut add = |key: &str, value: String| {
            if !value.is_empty() {
                parts.push(format!("{key}={}", quote(&value)));
            }
        };
        add("host", hosts.join(","));
        add("port", ports.join(","));
        add("user", c.get_user().unwrap_or_default().to_owned());
        if c.get_password().is_some() {
            add("password", "<redacted>".into());
        }
        add("dbname", c.get_dbname().unwrap_or_default().to_owned());
        add("sslmode", self.tls.as_str().to_owned());
        if let Some(path) = &self.root_cert {
            add("sslrootcert", path.display().to_string());
        }
        parts.join(" ")
    }
}

impl fmt::Display for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A value as libpq's `key=value` syntax needs it.
fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\']) {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

fn read_url_file(path: &Path) -> Result<String, PostgresSettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PostgresSettingsError(format!(
            "DATABASE_URL_FILE: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let url = text.trim();
    if url.is_empty() {
        return Err(PostgresSettingsError(format!(
            "DATABASE_URL_FILE: {} is empty",
            path.display()
        )));
    }
    Ok(url.to_owned())
}

fn seconds(
    name: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, PostgresSettingsError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                PostgresSettingsError(format!(
                    "{name}: {text:?} is not a number of seconds above 0 and at most 86400"
                ))
            }),
    }
}

/// The parts of a connection string the driver does not understand itself
/// (`sslmode`'s verify modes and `sslrootcert`) taken out, the rest parsed
/// by the driver.
struct Connection {
    config: tokio_postgres::Config,
    tls: TlsMode,
    root_cert: Option<PathBuf>,
}

fn parse_connection(text: &str) -> Result<Connection, PostgresSettingsError> {
    let text = text.trim();
    let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    let (rest, pairs) = if is_url {
        split_url_params(text)
    } else {
        split_key_values(text)?
    };
    let mut tls = TlsMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => {
                tls = TlsMode::parse(&value).ok_or_else(|| {
                    PostgresSettingsError(format!(
                        "DATABASE_URL: sslmode {value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ))
                })?;
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            _ => kept.push((key, value)),
        }
    }
    let rebuilt = if is_url {
        let query: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
            .collect();
        match query.is_empty() {
            true => rest,
            false => format!("{rest}?{}", query.join("&")),
        }
    } else {
        let pairs: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        pairs.join(" ")
    };
    let config: tokio_postgres::Config = rebuilt.parse().map_err(|e| {
        // The driver's message names the option, never its value.
        PostgresSettingsError(format!(
            "DATABASE_URL is not a valid connection string: {e}"
        ))
    })?;
    if config.get_hosts().is_empty() {
        return Err(PostgresSettingsError(
            "DATABASE_URL names no host (give host=… or postgres://host/…)".into(),
        ));
    }
    Ok(Connection {
        config,
        tls,
        root_cert,
    })
}

/// A URL's part before `?`, and its decoded query parameters.
fn split_url_params(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let pairs = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (base.to_owned(), pairs)
}

fn url_escape(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// libpq's `key=value key='quoted \' value'` syntax.
fn split_key_values(text: &str) -> Result<(String, Vec<(String, String)>), PostgresSettingsError> {
    let bad = |why: &str| PostgresSettingsError(format!("DATABASE_URL: {why}"));
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!(
                "{key:?} has no value (key=value pairs expected)"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(bad(&format!("the quoted value of {key:?} is not closed"))),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok((String::new(), pairs))
}

#[cfg(test)]
mod tests;

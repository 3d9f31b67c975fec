//! Typed settings, read once at startup from flags and environment variables
//! (flags win). Every value is checked here, so a bad one stops the process
//! before it serves anything, with a message naming the variable.

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

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Jsonl => "jsonl",
            Backend::Oracle => "oracle",
        }
    }
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

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub backend: Backend,
    pub jsonl_path: PathBuf,
    pub cors: CorsPolicy,
    pub log_format: LogFormat,
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
        let host = raw.host.unwrap_or_else(|| DEFAULT_HOST.to_owned());
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
        Ok(Self {
            host,
            port,
            backend,
            jsonl_path,
            cors,
            log_format,
        })
    }
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
        assert_eq!(settings(raw("ORACLE")).unwrap().backend, Backend::Oracle);
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

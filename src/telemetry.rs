//! Logging setup. Building the subscriber is separate from installing it so
//! tests can build one without touching the process-wide default.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{fmt, EnvFilter, Registry};

use crate::config::{ConfigError, LogFormat};

/// The variable holding the log filter, as the tracing ecosystem names it.
pub const LOG_FILTER_VARIABLE: &str = "RUST_LOG";

/// The log filter the operator asked for in `RUST_LOG`, checked when the
/// process starts: a filter that does not parse stops startup like any other
/// bad setting, instead of being dropped for the default without a word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// `None` when `RUST_LOG` is unset or blank: each command's default applies.
    directives: Option<String>,
}

impl LogFilter {
    /// Reads and checks `RUST_LOG`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(LOG_FILTER_VARIABLE) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(ConfigError::new(LOG_FILTER_VARIABLE, "is not valid UTF-8"))
            }
        }
    }

    /// Checks a filter such as `info` or `pipeline_service=debug,tower_http=warn`.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::default());
        }
        match EnvFilter::builder().parse(value) {
            Ok(_) => Ok(Self {
                directives: Some(value.to_owned()),
            }),
            Err(error) => Err(ConfigError::new(
                LOG_FILTER_VARIABLE,
                format!("{value:?} is not a log filter ({error}); use e.g. info or pipeline_service=debug"),
            )),
        }
    }

    /// The filter, or `default` when none was given.
    fn env_filter(&self, default: &str) -> EnvFilter {
        // Already checked by `parse`, so nothing is dropped here.
        EnvFilter::builder().parse_lossy(self.directives.as_deref().unwrap_or(default))
    }
}

/// A subscriber writing to stdout in `format`, filtered by `filter` or,
/// when it is empty, by `default_filter`.
pub fn build_subscriber(
    format: LogFormat,
    filter: &LogFilter,
    default_filter: &str,
) -> Box<dyn Subscriber + Send + Sync> {
    let registry = Registry::default().with(filter.env_filter(default_filter));
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stdout().is_terminal()),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ),
        ),
    }
}

/// Makes `subscriber` the process-wide default; later calls are ignored.
pub fn install(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_blank_means_the_default() {
        for good in [
            "info",
            "debug",
            "pipeline_service=debug,tower_http=warn",
            "warn,",
        ] {
            assert!(LogFilter::parse(good).is_ok(), "{good}");
        }
        assert_eq!(LogFilter::parse("  ").unwrap(), LogFilter::default());
        for bad in ["verbose=loud", "info,[[", "pipeline_service=sometimes"] {
            let error = LogFilter::parse(bad).expect_err(bad);
            assert_eq!(error.variable, "RUST_LOG", "{bad}");
        }
    }
}

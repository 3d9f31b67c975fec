//! The PostgreSQL backend.

pub mod migrate;
pub mod settings;
pub mod tls;

pub use self::settings::{PostgresSettings, PostgresSettingsError, PostgresValues, TlsMode};

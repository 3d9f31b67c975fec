//! Which database errors mean "unavailable, retry later" (answered 503)
//! and which are faults (500).

use std::error::Error as _;

use deadpool_postgres::PoolError;

use crate::repository::RepositoryError;

/// SQLSTATE classes and codes that mean the database cannot serve now:
/// connection exceptions (08), shutdown or recovery (57P01–57P03), a
/// statement cancelled by `statement_timeout` (57014), too many
/// connections (53300), and a read-only standby after a failover (25006).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "53300" | "25006"
        )
}

pub fn classify(error: &tokio_postgres::Error) -> RepositoryError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return match is_unavailable_state(code) {
            true => RepositoryError::Unavailable(format!("{code}: {}", db.message())),
            false => RepositoryError::Database(format!("{code}: {}", db.message())),
        };
    }
    // No server error: the connection closed, or an I/O failure (refused,
    // reset, timed out) on the way to the server.
    let io = error
        .source()
        .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
    if error.is_closed() || io {
        RepositoryError::Unavailable(error.to_string())
    } else {
        RepositoryError::Database(error.to_string())
    }
}

pub fn from_pool(error: PoolError) -> RepositoryError {
    match error {
        PoolError::Backend(error) => classify(&error),
        PoolError::Timeout(kind) => {
            RepositoryError::Unavailable(format!("no database connection in time ({kind:?})"))
        }
        other => RepositoryError::Unavailable(other.to_string()),
    }
}

impl From<tokio_postgres::Error> for RepositoryError {
    fn from(error: tokio_postgres::Error) -> Self {
        classify(&error)
    }
}

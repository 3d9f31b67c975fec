//! The PostgreSQL backend against a live server (see `tests/support`).

mod behaviour;
mod explain;
mod schema;
mod stats;
mod summaries;

use pipeline_service::repository::postgres::PostgresRepository;

use crate::support::postgres::{fresh_database, FreshDatabase};

/// A repository on a fresh, migrated database (None: no server, skipped).
pub async fn fresh() -> Option<(PostgresRepository, FreshDatabase)> {
    let db = fresh_database().await?;
    let repository = PostgresRepository::connect(&db.settings)
        .await
        .expect("connect to the test database");
    Some((repository, db))
}

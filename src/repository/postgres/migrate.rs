//! Versioned schema migrations, embedded in the binary. Each runs once, in
//! order, inside one transaction that holds an advisory lock, so replicas
//! starting together apply each migration exactly once and the others wait,
//! then find nothing left to do. A database whose schema is newer than
//! this binary knows is refused: an old binary must not write rows a newer
//! schema may read differently.

use tokio_postgres::Client;

/// The migrations, in order; the version is the position plus one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_pipeline_runs",
        sql: include_str!("../../../sql/postgres/0001_create_pipeline_runs.sql"),
    },
    Migration {
        version: 2,
        name: "pipeline_summaries",
        sql: include_str!("../../../sql/postgres/0002_pipeline_summaries.sql"),
    },
    Migration {
        version: 3,
        name: "pipeline_summaries_changes",
        sql: include_str!("../../../sql/postgres/0003_pipeline_summaries_changes.sql"),
    },
    Migration {
        version: 4,
        name: "covering_indexes",
        sql: include_str!("../../../sql/postgres/0004_covering_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "keyed_runs_only",
        sql: include_str!("../../../sql/postgres/0005_keyed_runs_only.sql"),
    },
];

/// The table recording which migrations have run.
pub const VERSION_TABLE: &str = "pipeline_schema_migrations";

/// Taken for the whole migration transaction (any fixed number will do; it
/// spells "pipeline" in ASCII).
const LOCK_KEY: i64 = 0x7069_7065_6c69_6e65;

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The newest schema version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The version table, created by the first migration run.
fn version_table_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\
version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
}

/// Every migration as one transaction that also records its version, as
/// `ddl --backend postgres` prints it: applied by hand (`psql -f`) to an
/// empty database, it leaves what `migrate` would, so the service then
/// finds nothing to do.
pub fn script() -> String {
    let mut script = format!("BEGIN;\n{};\n", version_table_ddl());
    for m in MIGRATIONS {
        script.push_str(&format!(
            "\n-- {:04}_{}\n{}\nINSERT INTO {VERSION_TABLE} (version, name) VALUES ({}, '{}');\n",
            m.version,
            m.name,
            m.sql.trim_end(),
            m.version,
            m.name
        ));
    }
    script.push_str("\nCOMMIT;\n");
    script
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the database schema is at version {found}, newer than this binary knows ({known}); \
run a release of pipeline-service that knows it"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error("{0}")]
    Database(#[from] tokio_postgres::Error),
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Applies the migrations this database has not had yet.
pub async fn migrate(client: &mut Client) -> Result<Migrated, MigrateError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    transaction.batch_execute(&version_table_ddl()).await?;
    let row = transaction
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"),
            &[],
        )
        .await?;
    let found: i32 = row.try_get(0)?;
    let known = latest_version();
    if found > known {
        return Err(MigrateError::SchemaTooNew { found, known });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                &format!("INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)"),
                &[&migration.version, &migration.name],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(Migrated {
        from: found,
        to: known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{}", migration.name);
        }
        let script = script();
        assert!(script.starts_with("BEGIN;\n"), "{script}");
        assert!(
            script.contains("\n-- 0001_create_pipeline_runs\n"),
            "{script}"
        );
        assert!(script.ends_with("COMMIT;\n"), "{script}");
    }
}

//! Migrations on a live server.

use pipeline_service::repository::postgres::migrate::{
    latest_version, migrate, MigrateError, Migrated, VERSION_TABLE,
};

use crate::support::postgres::{connect, fresh_database};

#[tokio::test]
async fn migrations_apply_once_even_when_replicas_start_together() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let settings = db.settings.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(&settings).await;
            migrate(&mut client).await.unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let known = latest_version();
    let applied = outcomes.iter().filter(|m| m.from == 0).count();
    assert_eq!(applied, 1, "exactly one replica applies: {outcomes:?}");
    assert!(outcomes.contains(&Migrated {
        from: known,
        to: known
    }));
    let client = connect(&db.settings).await;
    let rows = client
        .query(&format!("SELECT version FROM {VERSION_TABLE}"), &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), known as usize);
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let mut client = connect(&db.settings).await;
    migrate(&mut client).await.unwrap();
    let newer = latest_version() + 1;
    client
        .execute(
            &format!("INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, 'from the future')"),
            &[&newer],
        )
        .await
        .unwrap();
    let error = migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(error, MigrateError::SchemaTooNew { found, known } if found == newer && known == newer - 1),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("version {newer}, newer than this binary knows")),
        "{message}"
    );
}

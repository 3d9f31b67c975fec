//! The Oracle database the live tests use: ORACLE_TEST_DSN,
//! ORACLE_TEST_USER and ORACLE_TEST_PASSWORD (`.github/workflows/oracle.yml`
//! sets them).

use pipeline_service::config::RawSettings;

/// Settings for `table` in the test database, or `None` when the variables
/// are unset, said once per test binary past the harness's capture so the
/// skip is seen.
pub fn settings(table: &str) -> Option<RawSettings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(dsn), Some(user), Some(password)) = (
        var("ORACLE_TEST_DSN"),
        var("ORACLE_TEST_USER"),
        var("ORACLE_TEST_PASSWORD"),
    ) else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED on Oracle: set ORACLE_TEST_DSN, ORACLE_TEST_USER and ORACLE_TEST_PASSWORD \
to run the Oracle tests against a database too"
            );
        });
        return None;
    };
    Some(RawSettings {
        backend: Some("oracle".into()),
        oracle_dsn: Some(dsn),
        oracle_user: Some(user),
        oracle_password: Some(password),
        oracle_table: Some(table.to_owned()),
        ..Default::default()
    })
}

/// A table name no other test uses: `prefix`, the process and a counter.
pub fn table_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

use super::PostgresFlags;
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
    let oracle = |b: &str| RawSettings {
        backend: Some(b.into()),
        oracle_dsn: Some("db:1521/FREEPDB1".into()),
        oracle_user: Some("app".into()),
        oracle_password: Some("pw".into()),
        ..Default::default()
    };
    assert_eq!(settings(oracle("ORACLE")).unwrap().backend, Backend::Oracle);
    assert_eq!(settings(raw("Jsonl")).unwrap().backend, Backend::Jsonl);
    let err = settings(raw("mysql")).unwrap_err();
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
fn limits_and_flags_are_checked() {
    let s = settings(RawSettings::default()).unwrap();
    assert!(s.jsonl_fsync);
    assert_eq!(s.limits, Limits::default());
    let raw = RawSettings {
        jsonl_fsync: Some("false".into()),
        max_body_bytes: Some("2048".into()),
        request_timeout_s: Some("5".into()),
        max_concurrency: Some("8".into()),
        ..Default::default()
    };
    let s = settings(raw).unwrap();
    assert!(!s.jsonl_fsync);
    assert_eq!(s.limits.max_body_bytes, 2048);
    assert_eq!(s.limits.request_timeout.as_secs(), 5);
    assert_eq!(s.limits.max_concurrency, 8);
    for (raw, variable) in [
        (
            RawSettings {
                max_body_bytes: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_MAX_BODY_BYTES",
        ),
        (
            RawSettings {
                request_timeout_s: Some("-1".into()),
                ..Default::default()
            },
            "PIPELINE_REQUEST_TIMEOUT_S",
        ),
        (
            RawSettings {
                max_concurrency: Some("lots".into()),
                ..Default::default()
            },
            "PIPELINE_MAX_CONCURRENCY",
        ),
        (
            RawSettings {
                jsonl_fsync: Some("maybe".into()),
                ..Default::default()
            },
            "PIPELINE_JSONL_FSYNC",
        ),
        (
            RawSettings {
                strict_validation: Some("maybe".into()),
                ..Default::default()
            },
            "PIPELINE_STRICT_VALIDATION",
        ),
        (
            RawSettings {
                stale_factor: Some("-1".into()),
                ..Default::default()
            },
            "PIPELINE_STALE_FACTOR",
        ),
        (
            RawSettings {
                baseline_runs: Some("2".into()),
                ..Default::default()
            },
            "PIPELINE_BASELINE_RUNS",
        ),
        (
            RawSettings {
                max_bulk: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_MAX_BULK",
        ),
        (
            RawSettings {
                idempotency_retention_s: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_IDEMPOTENCY_RETENTION_S",
        ),
    ] {
        assert_eq!(settings(raw).unwrap_err().variable, variable);
    }
}

#[test]
fn connection_limits_bulk_budget_and_csv_rule() {
    let s = settings(RawSettings::default()).unwrap();
    assert_eq!(s.connections, ConnectionLimits::default());
    assert_eq!(s.limits.bulk_memory_bytes, DEFAULT_BULK_MEMORY_BYTES);
    assert!(s.csv_neutralise_formulas);
    let raw = RawSettings {
        header_read_timeout_s: Some("3".into()),
        keep_alive_timeout_s: Some("0".into()),
        max_connections: Some("7".into()),
        shutdown_timeout_s: Some("0".into()),
        csv_neutralise_formulas: Some("off".into()),
        ..Default::default()
    };
    let s = settings(raw).unwrap();
    assert_eq!(
        s.connections,
        ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(3),
            keep_alive_timeout: None,
            max_connections: 7,
            shutdown_timeout: std::time::Duration::ZERO,
        }
    );
    assert!(!s.csv_neutralise_formulas);
    let large_bulks = RawSettings {
        max_bulk_bytes: Some((200u64 << 20).to_string()),
        ..Default::default()
    };
    assert_eq!(
        settings(large_bulks).unwrap().limits.bulk_memory_bytes,
        200 << 20,
        "the budget holds at least one bulk of the largest size"
    );
    for (raw, variable) in [
        (
            RawSettings {
                bulk_memory_bytes: Some("1000".into()),
                max_bulk_bytes: Some("2000".into()),
                ..Default::default()
            },
            "PIPELINE_BULK_MEMORY_BYTES",
        ),
        (
            RawSettings {
                header_read_timeout_s: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_HEADER_READ_TIMEOUT_S",
        ),
        (
            RawSettings {
                keep_alive_timeout_s: Some("-1".into()),
                ..Default::default()
            },
            "PIPELINE_KEEP_ALIVE_TIMEOUT_S",
        ),
        (
            RawSettings {
                max_connections: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_MAX_CONNECTIONS",
        ),
        (
            RawSettings {
                shutdown_timeout_s: Some("soon".into()),
                ..Default::default()
            },
            "PIPELINE_SHUTDOWN_TIMEOUT_S",
        ),
        (
            RawSettings {
                csv_neutralise_formulas: Some("maybe".into()),
                ..Default::default()
            },
            "PIPELINE_CSV_NEUTRALISE_FORMULAS",
        ),
    ] {
        assert_eq!(settings(raw).unwrap_err().variable, variable);
    }
}

#[test]
fn api_keys_come_from_the_variable_and_the_file_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# ops team\nfile-key-1\n\n  file-key-2  \n").unwrap();
    let raw = RawSettings {
        api_keys: Some("env-key, other-key".into()),
        api_keys_file: Some(file.display().to_string()),
        api_keys_for_reads: Some("yes".into()),
        ..Default::default()
    };
    let s = settings(raw).unwrap();
    assert_eq!(
        s.auth.keys.keys(),
        ["env-key", "other-key", "file-key-1", "file-key-2"]
    );
    assert!(s.auth.protect_reads);
    let printed = format!("{s:?}");
    assert!(
        !printed.contains("env-key") && !printed.contains("file-key"),
        "{printed}"
    );
    let missing = RawSettings {
        api_keys_file: Some(dir.path().join("nope").display().to_string()),
        ..Default::default()
    };
    assert_eq!(
        settings(missing).unwrap_err().variable,
        "PIPELINE_API_KEYS_FILE"
    );
    let reads_without_keys = RawSettings {
        api_keys_for_reads: Some("true".into()),
        ..Default::default()
    };
    assert_eq!(
        settings(reads_without_keys).unwrap_err().variable,
        "PIPELINE_API_KEYS_FOR_READS"
    );
}

fn oracle_raw() -> RawSettings {
    RawSettings {
        backend: Some("oracle".into()),
        oracle_dsn: Some("db:1521/FREEPDB1".into()),
        oracle_user: Some("app".into()),
        oracle_password: Some("hunter2-secret".into()),
        ..Default::default()
    }
}

#[test]
fn oracle_needs_dsn_user_and_password_and_names_each_missing_one() {
    let raw = RawSettings {
        backend: Some("oracle".into()),
        oracle_user: Some("app".into()),
        ..Default::default()
    };
    let error = settings(raw).unwrap_err();
    assert_eq!(error.variable, "ORACLE_DSN");
    assert!(
        error.reason.contains("ORACLE_DSN, ORACLE_PASSWORD"),
        "{}",
        error.reason
    );
    let s = settings(oracle_raw()).unwrap();
    let oracle = s.oracle.as_ref().unwrap();
    assert_eq!(oracle.schema.table(), "PIPELINE_RUNS");
    assert_eq!((oracle.pool_min, oracle.pool_max), (1, 8));
    assert_eq!(oracle.pool_timeout.as_secs(), 5);
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(settings(RawSettings::default()).unwrap().oracle.is_none());
}

#[test]
fn the_oracle_password_file_gives_the_password_without_its_last_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, " pass word \r\n").unwrap();
    let from_file = |password_file: &std::path::Path| RawSettings {
        oracle_password: None,
        oracle_password_file: Some(password_file.display().to_string()),
        ..oracle_raw()
    };
    let s = settings(from_file(&file)).unwrap();
    assert_eq!(s.oracle.unwrap().password.expose(), " pass word ");
    std::fs::write(&file, "\n").unwrap();
    let error = settings(from_file(&file)).unwrap_err();
    assert_eq!(error.variable, "ORACLE_PASSWORD_FILE");
    assert!(
        error.reason.contains("holds no password"),
        "{}",
        error.reason
    );
}

#[test]
fn oracle_table_column_map_and_pool_errors_name_their_variable() {
    let cases = [
        (
            RawSettings {
                oracle_table: Some("RUNS; DROP TABLE X".into()),
                ..oracle_raw()
            },
            "ORACLE_TABLE",
        ),
        (
            RawSettings {
                oracle_table: Some("A.B.C".into()),
                ..oracle_raw()
            },
            "ORACLE_TABLE",
        ),
        (
            RawSettings {
                oracle_column_map: Some("{bad".into()),
                ..oracle_raw()
            },
            "ORACLE_COLUMN_MAP",
        ),
        (
            RawSettings {
                oracle_column_map: Some(r#"{"nope": "X"}"#.into()),
                ..oracle_raw()
            },
            "ORACLE_COLUMN_MAP",
        ),
        (
            RawSettings {
                oracle_column_map: Some(r#"{"rowcount": "A B"}"#.into()),
                ..oracle_raw()
            },
            "ORACLE_COLUMN_MAP",
        ),
        (
            RawSettings {
                oracle_pool_min: Some("9".into()),
                oracle_pool_max: Some("2".into()),
                ..oracle_raw()
            },
            "ORACLE_POOL_MIN",
        ),
        (
            RawSettings {
                oracle_pool_max: Some("0".into()),
                ..oracle_raw()
            },
            "ORACLE_POOL_MAX",
        ),
        (
            RawSettings {
                oracle_pool_timeout_s: Some("x".into()),
                ..oracle_raw()
            },
            "ORACLE_POOL_TIMEOUT_S",
        ),
    ];
    for (raw, variable) in cases {
        assert_eq!(settings(raw).unwrap_err().variable, variable);
    }
    let ok = RawSettings {
        oracle_table: Some("OPS.RUNS".into()),
        oracle_column_map: Some(r#"{"rowcount": "ROW_COUNT", "id": "RUN_ID"}"#.into()),
        ..oracle_raw()
    };
    let schema = settings(ok).unwrap().oracle.unwrap().schema;
    assert_eq!(schema.column("rowcount"), "ROW_COUNT");
    assert_eq!(schema.table(), "OPS.RUNS");
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

fn postgres_raw(flags: PostgresFlags) -> RawSettings {
    RawSettings {
        backend: Some("postgres".into()),
        postgres: flags,
        ..Default::default()
    }
}

#[test]
fn postgres_needs_a_url_and_each_refusal_names_its_variable() {
    let url = || Some("postgres://app:hunter2-secret@db:5432/runs".to_owned());
    let cases = [
        (PostgresFlags::default(), "DATABASE_URL"),
        (
            PostgresFlags {
                database_url: url(),
                database_url_file: Some("/run/secrets/url".into()),
                ..Default::default()
            },
            "DATABASE_URL",
        ),
        (
            PostgresFlags {
                database_url_file: Some("/nonexistent/url".into()),
                ..Default::default()
            },
            "DATABASE_URL_FILE",
        ),
        (
            PostgresFlags {
                database_url: url(),
                pg_pool_max: Some("0".into()),
                ..Default::default()
            },
            "PIPELINE_PG_POOL_MAX",
        ),
        (
            PostgresFlags {
                database_url: url(),
                pg_acquire_timeout_s: Some("soon".into()),
                ..Default::default()
            },
            "PIPELINE_PG_ACQUIRE_TIMEOUT_S",
        ),
        (
            PostgresFlags {
                database_url: url(),
                pg_statement_timeout_s: Some("-1".into()),
                ..Default::default()
            },
            "PIPELINE_PG_STATEMENT_TIMEOUT_S",
        ),
    ];
    for (flags, variable) in cases {
        let error = settings(postgres_raw(flags)).unwrap_err();
        assert_eq!(error.variable, variable, "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

#[test]
fn postgres_settings_are_built_only_for_the_postgres_backend() {
    let s = settings(postgres_raw(PostgresFlags {
        database_url: Some("host=db dbname=runs user=app password=hunter2-secret".into()),
        pg_pool_max: Some("32".into()),
        pg_statement_timeout_s: Some("7".into()),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(s.backend, Backend::Postgres);
    let postgres = s.postgres.as_ref().unwrap();
    assert_eq!(postgres.pool_max, 32);
    assert_eq!(postgres.statement_timeout.as_secs(), 7);
    assert_eq!(postgres.key_retention, s.key_retention);
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(
        settings(postgres_raw(PostgresFlags::default().clone()))
            .unwrap_err()
            .variable,
        "DATABASE_URL"
    );
    assert!(settings(RawSettings::default()).unwrap().postgres.is_none());
    assert_eq!(
        settings(RawSettings {
            backend: Some("PostgreSQL".into()),
            ..postgres_raw(PostgresFlags {
                database_url: Some("postgres://db/runs".into()),
                ..Default::default()
            })
        })
        .unwrap()
        .backend,
        Backend::Postgres
    );
}

#[test]
fn database_url_is_not_a_flag_and_is_never_printed() {
    use clap::Parser;
    let refused = Cli::try_parse_from(["pipeline-service", "--database-url", "postgres://a:b@h/d"]);
    assert!(
        refused.is_err(),
        "DATABASE_URL must not be accepted as a flag"
    );
    let raw = postgres_raw(PostgresFlags {
        database_url: Some("postgres://app:hunter2-secret@db/runs".into()),
        ..Default::default()
    });
    assert!(!format!("{raw:?}").contains("hunter2"));
    let help = <Cli as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    assert!(help.contains("DATABASE_URL_FILE"), "{help}");
}

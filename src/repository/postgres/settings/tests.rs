use super::*;

fn values(url: &str) -> PostgresValues {
    PostgresValues {
        database_url: Some(url.into()),
        ..Default::default()
    }
}

fn parse(url: &str) -> PostgresSettings {
    PostgresSettings::from_values(&values(url)).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn refused(values: &PostgresValues) -> String {
    PostgresSettings::from_values(values).unwrap_err().0
}

const SECRET: &str = "s3cr#t pässword";

#[test]
fn url_form_with_every_part() {
    let s = parse(
        "postgres://app:s3cr%23t%20p%C3%A4ssword@db.example.com:6543/runs?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
    );
    let c = s.config();
    assert_eq!(c.get_user(), Some("app"));
    assert_eq!(c.get_password(), Some(SECRET.as_bytes()));
    assert_eq!(c.get_dbname(), Some("runs"));
    assert_eq!(c.get_ports(), [6543]);
    assert_eq!(c.get_hosts(), [Host::Tcp("db.example.com".into())]);
    assert_eq!(c.get_application_name(), Some("x"));
    assert_eq!(s.tls, TlsMode::VerifyFull);
    assert_eq!(c.get_ssl_mode(), SslMode::Require);
    assert_eq!(s.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
}

#[test]
fn key_value_form_with_quotes_and_escapes() {
    let s = parse(
        r"host=/run/pg port=5433 user=app password='s3cr#t pässword' dbname='my \'runs\'' sslmode=disable",
    );
    let c = s.config();
    assert_eq!(c.get_hosts(), [Host::Unix("/run/pg".into())]);
    assert_eq!(c.get_ports(), [5433]);
    assert_eq!(c.get_password(), Some(SECRET.as_bytes()));
    assert_eq!(c.get_dbname(), Some("my 'runs'"));
    assert_eq!(s.tls, TlsMode::Disable);
    assert_eq!(c.get_ssl_mode(), SslMode::Disable);
    assert_eq!(c.get_application_name(), Some("pipeline-service"));
}

#[test]
fn every_sslmode_is_honoured() {
    for (given, mode, driver) in [
        ("disable", TlsMode::Disable, SslMode::Disable),
        ("allow", TlsMode::Prefer, SslMode::Prefer),
        ("prefer", TlsMode::Prefer, SslMode::Prefer),
        ("require", TlsMode::Require, SslMode::Require),
        ("verify-ca", TlsMode::VerifyCa, SslMode::Require),
        ("verify-full", TlsMode::VerifyFull, SslMode::Require),
    ] {
        for url in [
            format!("postgres://h/db?sslmode={given}"),
            format!("host=h dbname=db sslmode={given}"),
        ] {
            let s = parse(&url);
            assert_eq!(s.tls, mode, "{url}");
            assert_eq!(s.config().get_ssl_mode(), driver, "{url}");
        }
    }
    assert_eq!(parse("postgres://h/db").tls, TlsMode::Prefer);
    let error = refused(&values("postgres://h/db?sslmode=verify"));
    assert!(error.contains("sslmode \"verify\""), "{error}");
}

#[test]
fn the_server_cancels_statements_past_the_timeout() {
    let mut v = values("host=h options='-c search_path=app'");
    v.statement_timeout_s = Some("2.5".into());
    let s = PostgresSettings::from_values(&v).unwrap();
    assert_eq!(
        s.config().get_options(),
        Some("-c search_path=app -c statement_timeout=2500")
    );
    assert_eq!(s.statement_timeout, Duration::from_millis(2500));
    assert_eq!(s.client_timeout(), Duration::from_millis(4500));
    assert_eq!(
        parse("postgres://h/db").config().get_options(),
        Some("-c statement_timeout=30000")
    );
}

#[test]
fn pool_and_timeouts_are_checked() {
    let s = parse("postgres://h/db");
    assert_eq!(s.pool_max, DEFAULT_POOL_MAX);
    assert_eq!(s.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
    assert_eq!(
        s.config().get_connect_timeout(),
        Some(&DEFAULT_ACQUIRE_TIMEOUT)
    );
    let mut v = values("postgres://h/db");
    v.pool_max = Some("40".into());
    v.acquire_timeout_s = Some("1".into());
    let s = PostgresSettings::from_values(&v).unwrap();
    assert_eq!(
        (s.pool_max, s.acquire_timeout),
        (40, Duration::from_secs(1))
    );
    for (field, bad, name) in [
        (0, "0", "PIPELINE_PG_POOL_MAX"),
        (0, "many", "PIPELINE_PG_POOL_MAX"),
        (1, "-1", "PIPELINE_PG_ACQUIRE_TIMEOUT_S"),
        (2, "NaN", "PIPELINE_PG_STATEMENT_TIMEOUT_S"),
        (2, "0", "PIPELINE_PG_STATEMENT_TIMEOUT_S"),
    ] {
        let mut v = values("postgres://h/db");
        *[
            &mut v.pool_max,
            &mut v.acquire_timeout_s,
            &mut v.statement_timeout_s,
        ][field] = Some(bad.into());
        let error = refused(&v);
        assert!(error.starts_with(name), "{bad}: {error}");
    }
}

#[test]
fn the_url_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, "postgres://app:pw@h/db\n").unwrap();
    let v = PostgresValues {
        database_url_file: Some(path.clone()),
        ..Default::default()
    };
    let s = PostgresSettings::from_values(&v).unwrap();
    assert_eq!(s.config().get_password(), Some(&b"pw"[..]));
    let both = PostgresValues {
        database_url: Some("postgres://h/db".into()),
        database_url_file: Some(path),
        ..Default::default()
    };
    assert!(refused(&both).contains("not both"));
    let missing = PostgresValues {
        database_url_file: Some(dir.path().join("absent")),
        ..Default::default()
    };
    assert!(refused(&missing).starts_with("DATABASE_URL_FILE: cannot read"));
    assert!(refused(&PostgresValues::default()).starts_with("DATABASE_URL"));
}

#[test]
fn malformed_strings_are_refused_without_echoing_them() {
    for url in [
        "postgres://app:s3cr%23t@h:notaport/db",
        "host=h password='s3cr#t",
        "host=h password",
        "postgres://app:s3cr%23t@h/db?bogus=s3cr%23t",
        "dbname=runs password=s3cr#t",
    ] {
        let error = refused(&values(url));
        assert!(error.starts_with("DATABASE_URL"), "{url}: {error}");
        assert!(!error.contains("s3cr"), "{url}: {error}");
    }
}

#[test]
fn the_password_is_never_shown() {
    for url in [
        "postgres://app:s3cr%23t%20p%C3%A4ssword@db:5432/runs?sslmode=require",
        "host=db port=5432 user=app password='s3cr#t pässword' dbname=runs sslmode=require",
    ] {
        let s = parse(url);
        let shown = [
            s.redacted(),
            s.to_string(),
            format!("{s:?}"),
            format!("{:?}", values(url)),
        ];
        for text in shown {
            assert!(!text.contains("s3cr"), "{text}");
            assert!(!text.contains("pässword"), "{text}");
        }
        assert_eq!(
            s.redacted(),
            "host=db port=5432 user=app password=<redacted> dbname=runs sslmode=require"
        );
    }
    assert_eq!(
        parse("host='/tmp/a dir' dbname=x").redacted(),
        "host='/tmp/a dir' dbname=x sslmode=prefer"
    );
}

#[test]
fn another_database_on_the_same_server() {
    let s = parse("postgres://app:pw@h/db").with_dbname("test_1");
    assert_eq!(s.config().get_dbname(), Some("test_1"));
    assert_eq!(s.config().get_password(), Some(&b"pw"[..]));
}

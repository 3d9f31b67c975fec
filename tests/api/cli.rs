//! The command line of the real binary: settings before or after the
//! command, `--help` by heading, on/off flags, secrets kept off the command
//! line, `import`'s input checks and progress, and the startup line.

use std::process::Output;

use crate::helpers::{service, start_command, succeeded, BINARY};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/python_written.jsonl"
);

/// The headings of `--help`, in their order.
const HEADINGS: [&str; 9] = [
    "Server:",
    "JSON Lines store:",
    "Oracle:",
    "PostgreSQL:",
    "Security:",
    "Records:",
    "Limits:",
    "Statistics:",
    "Observability:",
];

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn settings_may_follow_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.jsonl");
    std::fs::copy(FIXTURE, &store).unwrap();
    let output = succeeded(service(&[]).current_dir(dir.path()).args([
        "compact",
        "--older-than",
        "1",
        "--jsonl-path",
        store.to_str().unwrap(),
    ]));
    assert!(
        stdout(&output).starts_with("kept 0 runs; removed 7 older runs"),
        "{}",
        stdout(&output)
    );
    assert_eq!(std::fs::read_to_string(&store).unwrap(), "");
    assert!(
        !dir.path().join("pipeline_data.jsonl").exists(),
        "the default store was not touched"
    );

    // `serve --port …`: the port given after the command is the one used.
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port().to_string()
    };
    let server = start_command(service(&[]).current_dir(dir.path()).args([
        "serve",
        "--port",
        &port,
        "--jsonl-path",
        store.to_str().unwrap(),
    ]));
    assert_eq!(server.address, format!("http://127.0.0.1:{port}"));
}

#[test]
fn every_commands_help_lists_the_settings_by_heading_with_defaults_and_choices() {
    for command in [
        &[][..],
        &["serve"],
        &["import"],
        &["compact"],
        &["healthcheck"],
    ] {
        let output = succeeded(service(&[]).args(command).arg("--help"));
        let text = stdout(&output);
        let mut at = 0;
        for heading in HEADINGS {
            let found = text[at..]
                .find(&format!("\n{heading}\n"))
                .unwrap_or_else(|| panic!("{command:?} --help: no {heading} after byte {at}"));
            at += found + heading.len();
        }
        for shown in [
            "--jsonl-path <JSONL_PATH>",
            "[env: PIPELINE_JSONL_PATH=]",
            "[default: pipeline_data.jsonl]",
            "[default: 8000]",
            "[possible values: jsonl, postgres, oracle]",
            "[possible values: text, json]",
        ] {
            assert!(text.contains(shown), "{command:?} --help lacks {shown}");
        }
        for flag in [
            "--cors-allow-all",
            "--no-jsonl-fsync",
            "--api-keys-for-reads",
        ] {
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(flag))
                .unwrap_or_else(|| panic!("{command:?} --help lacks {flag}"));
            assert!(!line.contains(" <"), "{flag} takes no value: {line}");
        }
    }
}

#[test]
fn a_wrong_choice_is_refused_in_one_line_naming_the_setting() {
    let output = service(&[])
        .args(["healthcheck", "--backend", "postgres"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("PIPELINE_BACKEND"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
}

/// What the server at `address` answers a read sent from another site.
async fn cross_site_read(address: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{address}/pipelines"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn on_off_settings_are_plain_flags_and_their_variables_take_true_or_false() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.jsonl");
    let store = store.to_str().unwrap();
    let serve = |env: &[(&str, &str)], flags: &[&str]| {
        let mut command = service(env);
        command
            .args(["--port", "0", "--jsonl-path", store])
            .args(flags);
        start_command(&mut command)
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|value| value.to_str().unwrap().to_owned())
    };

    let flag = serve(&[], &["--cors-allow-all"]);
    assert_eq!(
        allowed(&cross_site_read(&flag.address).await).as_deref(),
        Some("*")
    );
    // The flag wins over its variable.
    let flag_over_variable = serve(&[("CORS_ALLOW_ALL", "false")], &["--cors-allow-all"]);
    assert_eq!(
        allowed(&cross_site_read(&flag_over_variable.address).await).as_deref(),
        Some("*")
    );
    let variable_true = serve(&[("CORS_ALLOW_ALL", "true")], &[]);
    assert_eq!(
        allowed(&cross_site_read(&variable_true.address).await).as_deref(),
        Some("*")
    );
    let variable_false = serve(&[("CORS_ALLOW_ALL", "false")], &[]);
    assert_eq!(
        allowed(&cross_site_read(&variable_false.address).await),
        None
    );

    let keys = [("PIPELINE_API_KEYS", "k1")];
    let reads_locked = serve(&keys, &["--api-keys-for-reads"]);
    assert_eq!(
        cross_site_read(&reads_locked.address).await.status(),
        reqwest::StatusCode::UNAUTHORIZED
    );
    let reads_open = serve(&keys, &[]);
    assert_eq!(
        cross_site_read(&reads_open.address).await.status(),
        reqwest::StatusCode::OK
    );

    // A flag takes no value: `--cors-allow-all false` is refused rather
    // than read as "on".
    let output = service(&[])
        .args(["healthcheck", "--cors-allow-all=false"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[tokio::test]
async fn a_no_flag_turns_off_what_is_on_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.jsonl");
    let mut record: serde_json::Value =
        serde_json::from_str(include_str!("../../sample_record.json")).unwrap();
    record["pipeline_name"] = "=HYPERLINK(\"x\")".into();
    let export = |flags: &'static [&'static str]| {
        let record = record.clone();
        let store = store.clone();
        async move {
            let mut command = service(&[]);
            command
                .args(["--port", "0", "--jsonl-path", store.to_str().unwrap()])
                .args(flags);
            let server = start_command(&mut command);
            let client = reqwest::Client::new();
            if !store.exists() {
                let created = client
                    .post(format!("{}/pipelines", server.address))
                    .json(&record)
                    .send()
                    .await
                    .unwrap();
                assert!(created.status().is_success(), "{created:?}");
            }
            client
                .get(format!(
                    "{}/download/pipeline_info?format=csv",
                    server.address
                ))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(export(&[]).await.contains("'=HYPERLINK"));
    let as_written = export(&["--no-csv-neutralise-formulas"]).await;
    assert!(
        as_written.contains("\"=HYPERLINK") && !as_written.contains("'=HYPERLINK"),
        "{as_written}"
    );
}

#[test]
fn secrets_have_no_flags() {
    for (args, instead) in [
        (&["--api-keys", "k1"][..], "PIPELINE_API_KEYS"),
        (&["serve", "--api-keys=k1"], "PIPELINE_API_KEYS"),
        (
            &["import", "x.jsonl", "--oracle-password", "pw"],
            "ORACLE_PASSWORD",
        ),
        (
            &["migrate", "--database-url=postgres://app:pw@db/runs"],
            "DATABASE_URL",
        ),
    ] {
        let output = service(&[]).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = stderr(&output);
        assert!(
            text.contains(instead) && text.contains("not taken on the command line"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("k1") && !text.contains("pw"), "{text}");
    }
    let help = stdout(&succeeded(service(&[]).arg("--help")));
    assert!(!help.contains("--api-keys <") && !help.contains("--oracle-password <"));
    assert!(!help.contains("--database-url <"));
    for said in [
        "--api-keys-file <FILE>",
        "--oracle-password-file <FILE>",
        "[env: ORACLE_PASSWORD_FILE=]",
        "--database-url-file <FILE>",
        "[env: DATABASE_URL_FILE=]",
        "never from a flag",
    ] {
        assert!(help.contains(said), "--help lacks {said}");
    }
}

#[test]
fn the_oracle_password_may_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let password_file = password_file.to_str().unwrap();
    let oracle = [
        ("PIPELINE_BACKEND", "oracle"),
        ("ORACLE_DSN", "127.0.0.1:9/NOWHERE"),
        ("ORACLE_USER", "app"),
        ("ORACLE_CONNECT_TIMEOUT_S", "1"),
        ("PORT", "0"),
    ];
    let with = |extra: &[(&str, &str)]| {
        let env: Vec<_> = oracle.iter().chain(extra).copied().collect();
        service(&env).output().unwrap()
    };

    let missing = with(&[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("ORACLE_PASSWORD (or ORACLE_PASSWORD_FILE)"));

    // With the file, configuration is complete: what stops startup now is
    // the database (or its client library), never a missing password.
    let from_file = with(&[("ORACLE_PASSWORD_FILE", password_file)]);
    assert_eq!(from_file.status.code(), Some(1), "{}", stderr(&from_file));
    assert!(!stderr(&from_file).contains("missing"));
    assert!(!stderr(&from_file).contains("s3cret"));

    let unreadable = with(&[("ORACLE_PASSWORD_FILE", "/nonexistent/password")]);
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(stderr(&unreadable).contains("ORACLE_PASSWORD_FILE"));

    let both = with(&[
        ("ORACLE_PASSWORD_FILE", password_file),
        ("ORACLE_PASSWORD", "other"),
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
}

#[test]
fn importing_a_missing_file_says_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("not-yet.jsonl");
    let missing = dir.path().join("nonexistent.jsonl");
    let output = service(&[])
        .current_dir(dir.path())
        .args(["import", missing.to_str().unwrap()])
        .args(["--jsonl-path", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim(),
        format!(
            "pipeline-service: import: {} does not exist",
            missing.display()
        )
    );
    assert!(!store.exists(), "nothing was created");
    let folder = service(&[])
        .args(["import", dir.path().to_str().unwrap()])
        .args(["--jsonl-path", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(folder.status.code(), Some(2));
    assert!(
        stderr(&folder).contains("is not a file"),
        "{}",
        stderr(&folder)
    );
}

#[test]
fn import_off_a_terminal_prints_only_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.jsonl");
    let output = succeeded(
        service(&[])
            .args(["import", FIXTURE])
            .args(["--jsonl-path", store.to_str().unwrap()]),
    );
    let text = stderr(&output);
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    assert!(
        text.lines().all(|line| line.starts_with("skipped line ")),
        "{text}"
    );
    assert!(stdout(&output).starts_with("read 12 lines, imported 7 records"));
}

/// A pseudo-terminal of 24 rows by 100 columns: (the side a program
/// writes to, the side that reads what it wrote).
fn pseudo_terminal() -> (std::os::fd::OwnedFd, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut writer, mut reader) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors, which we then own.
    let status = unsafe {
        libc::openpty(
            &mut reader,
            &mut writer,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(status, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and nothing else owns them.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(writer),
            std::fs::File::from_raw_fd(reader),
        )
    }
}

#[test]
fn import_on_a_terminal_draws_a_progress_bar_with_rate_and_time_left() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.jsonl");
    let (terminal, mut screen) = pseudo_terminal();
    let mut child = std::process::Command::new(BINARY)
        .env_clear()
        .env("TERM", "xterm")
        .args(["import", FIXTURE])
        .args(["--jsonl-path", store.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(terminal)
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    // The child has exited, so the terminal's other side is closed: read
    // until Linux reports that (EIO) rather than an end of file.
    let mut drawn = Vec::new();
    let mut chunk = [0; 4096];
    while let Ok(read @ 1..) = screen.read(&mut chunk) {
        drawn.extend_from_slice(&chunk[..read]);
    }
    let drawn = String::from_utf8_lossy(&drawn);
    for part in ["100%", " left", "7 records (", "/s), 4 skipped", "=="] {
        assert!(drawn.contains(part), "no {part:?} in {drawn:?}");
    }
}

#[tokio::test]
async fn one_startup_line_says_version_store_data_runs_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.jsonl");
    std::fs::copy(FIXTURE, &store).unwrap();
    for format in ["text", "json"] {
        let mut command = service(&[("LOG_FORMAT", format)]);
        command.args(["--port", "0", "--jsonl-path", store.to_str().unwrap()]);
        let server = start_command(&mut command);
        let line = &server.startup_line;
        let docs = format!("{}/docs", server.address);
        let fields = [
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("backend", "jsonl".to_owned()),
            ("data", store.display().to_string()),
            ("runs", "7".to_owned()),
            ("url", server.address.clone()),
            ("docs", docs.clone()),
        ];
        for (name, value) in fields {
            let shown = match format {
                "text" => format!("{name}={value}"),
                _ if name == "runs" => format!("\"{name}\":{value}"),
                _ => format!("\"{name}\":\"{value}\""),
            };
            assert!(line.contains(&shown), "no {shown} in {line}");
        }
        let page = reqwest::get(&docs).await.unwrap();
        assert_eq!(page.status(), reqwest::StatusCode::OK);
    }
}

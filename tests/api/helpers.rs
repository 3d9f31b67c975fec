//! Starts the real server on port 0 with a real temporary data file.

use std::path::PathBuf;
use std::time::Duration;

use pipeline_service::config::{Backend, RawSettings, Settings};
use pipeline_service::startup::Application;
use reqwest::Response;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::support::postgres::{fresh_database, FreshDatabase};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The JSON Lines file (unused on PostgreSQL).
    pub data_path: PathBuf,
    /// Which store serves: `jsonl` or `postgres`.
    pub backend: &'static str,
    _dir: Option<TempDir>,
    /// A PostgreSQL server's database of this app's own.
    _database: Option<FreshDatabase>,
    _stop: oneshot::Sender<()>,
}

/// The same server on every store the tests can have: JSON Lines always,
/// PostgreSQL (a database of its own, see `tests/support/postgres.rs`)
/// whenever a server can be had. A test that loops over these proves its
/// HTTP behaviour on both.
pub async fn every_store() -> Vec<TestApp> {
    let mut apps = vec![spawn_app().await];
    apps.extend(spawn_postgres_app(RawSettings::default()).await);
    apps
}

/// A server on a fresh PostgreSQL database; `None` (said once) when no
/// PostgreSQL server can be had.
pub async fn spawn_postgres_app(raw: RawSettings) -> Option<TestApp> {
    let database = fresh_database().await?;
    let mut settings = Settings::from_raw(RawSettings {
        host: Some("127.0.0.1".into()),
        port: Some("0".into()),
        ..raw
    })
    .expect("valid test settings");
    settings.backend = Backend::Postgres;
    settings.postgres = Some(database.settings.clone());
    let (address, stop) = start(&settings).await;
    Some(TestApp {
        address,
        client: reqwest::Client::new(),
        data_path: PathBuf::new(),
        backend: "postgres",
        _dir: None,
        _database: Some(database),
        _stop: stop,
    })
}

/// A server over an empty (not yet existing) data file.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(None, RawSettings::default()).await
}

/// A server over a data file that already holds `contents`.
pub async fn spawn_app_with_file(contents: &str) -> TestApp {
    spawn_app_with(Some(contents), RawSettings::default()).await
}

pub async fn spawn_app_with(contents: Option<&str>, raw: RawSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_path = dir.path().join("runs").join("pipeline_data.jsonl");
    if let Some(contents) = contents {
        std::fs::create_dir_all(data_path.parent().unwrap()).unwrap();
        std::fs::write(&data_path, contents).unwrap();
    }
    let raw = RawSettings {
        host: Some("127.0.0.1".into()),
        port: Some("0".into()),
        jsonl_path: Some(data_path.display().to_string()),
        ..raw
    };
    let settings = Settings::from_raw(raw).expect("valid test settings");
    let (address, stop) = start(&settings).await;
    TestApp {
        address,
        client: reqwest::Client::new(),
        data_path,
        backend: "jsonl",
        _dir: Some(dir),
        _database: None,
        _stop: stop,
    }
}

/// The application on `settings`: its address, and what stops it when
/// dropped.
async fn start(settings: &Settings) -> (String, oneshot::Sender<()>) {
    let application = Application::build(settings)
        .await
        .expect("application starts");
    let address = format!("http://{}", application.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    (address, stop)
}

impl TestApp {
    pub async fn get(&self, path_and_query: &str) -> Response {
        self.client
            .get(format!("{}{}", self.address, path_and_query))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let response = self.get(path_and_query).await;
        assert_eq!(response.status(), 200, "GET {path_and_query}");
        response.json().await.unwrap()
    }

    pub async fn post_run(&self, body: &Value) -> Response {
        self.client
            .post(format!("{}/pipelines", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts and insists on a 201.
    pub async fn store(&self, body: &Value) -> Value {
        let response = self.post_run(body).await;
        assert_eq!(response.status(), 201, "POST {body}");
        response.json().await.unwrap()
    }

    /// Posts raw `body` bytes to `path`; the status and the JSON answer.
    pub async fn post_bytes(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn post_raw(&self, body: &str, content_type: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(format!("{}/pipelines", self.address))
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request sent")
    }

    /// How many runs the store holds (its unfiltered `total`), whichever
    /// the store.
    pub async fn stored(&self) -> u64 {
        let answer = self.get_json("/get_pipeline_info?limit=1").await;
        answer["total"].as_u64().expect("a total")
    }

    pub fn file_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.data_path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A valid run record (`sample_record.json`); `changes` overrides or adds fields.
pub fn run(changes: Value) -> Value {
    let mut record: Value =
        serde_json::from_str(include_str!("../../sample_record.json")).expect("valid sample");
    merge(&mut record, changes);
    record
}

fn merge(record: &mut Value, changes: Value) {
    if let (Some(target), Value::Object(extra)) = (record.as_object_mut(), changes) {
        target.extend(extra);
    }
}

/// A record whose times are `day` (1-28) of August 2025 at `hour`.
pub fn run_on(day: u32, hour: u32, changes: Value) -> Value {
    let start = format!("2025-08-{day:02}T{hour:02}:00:00Z");
    let end = format!("2025-08-{day:02}T{hour:02}:30:00Z");
    let mut record = run(json!({
        "start_utc": start,
        "end_utc": end,
        "date_code": format!("202508{day:02}_{hour:02}0000"),
    }));
    merge(&mut record, changes);
    record
}

/// The `field` of every result, in answer order.
pub fn column(answer: &Value, field: &str) -> Vec<Value> {
    answer["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| r[field].clone())
        .collect()
}

/// The `field` column of a CSV export, top to bottom.
pub fn csv_column(text: &str, field: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("a header row").clone();
    let column = headers
        .iter()
        .position(|h| h == field)
        .unwrap_or_else(|| panic!("no {field} column in {headers:?}"));
    reader
        .records()
        .map(|row| row.expect("a CSV row")[column].to_owned())
        .collect()
}

/// The real binary, started with only `env` in its environment.
pub struct ServiceProcess {
    pub child: std::process::Child,
    pub address: String,
    /// The line that told where the process listens.
    pub startup_line: String,
    /// Lines the process printed after its address line (drained by a
    /// thread, so the server never blocks on a full pipe).
    pub output: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

pub const BINARY: &str = env!("CARGO_BIN_EXE_pipeline-service");

/// The real binary with only `env` in its environment, not yet started.
pub fn service(env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(BINARY);
    command.env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs `command` to its end and insists that it succeeded (its standard
/// error in the failure message).
pub fn succeeded(command: &mut std::process::Command) -> std::process::Output {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{:?} failed: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The record's fields in the model's order (the contract's table): the
/// order they are validated and written. The tests keep their own copy so
/// that a change of the service's order fails them.
pub const RECORD_FIELDS: [&str; 16] = [
    "start_local",
    "end_local",
    "start_utc",
    "end_utc",
    "elapsed_seconds",
    "elapsed_human",
    "output_file",
    "rowcount",
    "log_file",
    "pid",
    "date_code",
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
    "archived_file",
];

/// Starts the binary on port 0 and waits until it prints where it listens.
pub fn start_service(env: &[(&str, &str)]) -> ServiceProcess {
    start_service_with(env, |_| {})
}

/// As `start_service`, after `configure` has adjusted the command (say,
/// limits the child applies to itself before it runs).
pub fn start_service_with(
    env: &[(&str, &str)],
    configure: impl FnOnce(&mut std::process::Command),
) -> ServiceProcess {
    let mut command = service(env);
    command.env("PORT", "0");
    configure(&mut command);
    start_command(&mut command)
}

/// Starts `command`, which runs the binary, and waits until it prints
/// where it listens.
pub fn start_command(command: &mut std::process::Command) -> ServiceProcess {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (address, startup_line) = loop {
        let line = lines
            .next()
            .expect("server prints its address")
            .expect("readable output");
        // The startup line's `url=…` in text logs, `"url":"…"` in JSON ones.
        let url = match (line.split(" url=").nth(1), line.split("\"url\":\"").nth(1)) {
            (Some(rest), _) => rest.split_whitespace().next(),
            (None, Some(rest)) => rest.split('"').next(),
            (None, None) => None,
        };
        if let Some(url) = url {
            break (url.to_owned(), line);
        }
    };
    let output = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = output.clone();
    let drain = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().push(line);
        }
    });
    ServiceProcess {
        child,
        address,
        startup_line,
        output,
        drain: Some(drain),
    }
}

impl ServiceProcess {
    /// Waits (up to 5 s) until the process has printed a line that
    /// `wanted` accepts; fails showing everything it printed otherwise.
    pub async fn logged(&self, wanted: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.output.lock().iter().any(|line| wanted(line)) {
            assert!(
                std::time::Instant::now() < deadline,
                "no such line in the log: {:?}",
                self.output.lock()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to end and returns everything it printed.
    pub fn finished_output(&mut self) -> Vec<String> {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        self.output.lock().clone()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection to the server, for clients no HTTP library would be.
pub async fn connect(address: &str) -> TcpStream {
    TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .expect("connects")
}

/// What the server sends until it closes the connection, or `None` if it
/// is still open after `patience`.
pub async fn until_closed(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

/// True while the server has neither answered nor closed `stream`.
pub async fn still_open(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte))
        .await
        .is_err()
}

/// One answer read from `stream` (head and a `content-length` body), or
/// `None` if it has not fully arrived after `patience`.
pub async fn read_answer(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    let mut received = Vec::new();
    let complete = |received: &[u8]| {
        let text = String::from_utf8_lossy(received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        body.len() >= length
    };
    tokio::time::timeout(patience, async {
        let mut buffer = [0u8; 4096];
        while !complete(&received) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()?;
    complete(&received).then(|| String::from_utf8_lossy(&received).into_owned())
}

/// The JSON answer of GET `url`, whatever its status. (This and the next
/// serve the tests of several processes, `tests/replicas` and
/// `tests/database_faults`, which include this file.)
#[allow(dead_code)]
pub async fn get_value(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON answer")
}

/// How many times each `date_code` is stored, read through the server at
/// `address` (every run, in one answer).
#[allow(dead_code)]
pub async fn stored_codes(
    client: &reqwest::Client,
    address: &str,
) -> std::collections::HashMap<String, usize> {
    let answer = get_value(
        client,
        &format!("{address}/get_pipeline_info?all_data=true"),
    )
    .await;
    let mut counts = std::collections::HashMap::new();
    for run in answer["results"].as_array().expect("results") {
        let code = run["date_code"].as_str().unwrap_or_default().to_owned();
        *counts.entry(code).or_insert(0) += 1;
    }
    counts
}

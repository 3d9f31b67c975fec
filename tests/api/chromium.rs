//! Headless Chromium driven over the Chrome DevTools Protocol: just what
//! the dashboard tests need (navigate, evaluate, keys, screenshots,
//! downloads), plus a record of every network request and console error
//! the page caused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one protocol command, or one `wait_for`, may take: generous,
/// because a loaded two-core machine can stall a page for seconds, and a
/// passing test never waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// How long Chromium may take to open its debugging port. The first start
/// on a freshly installed machine reads the whole browser from disk.
const STARTUP_PATIENCE: Duration = Duration::from_secs(120);

/// One browser at a time: several starting at once beside the rest of the
/// suite starve a two-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The browser binary: `CHROMIUM` if set, else the usual names on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

/// Chromium's own messages, kept in its profile folder.
const LOG: &str = "chromium.log";

/// The end of Chromium's messages, for a failure's explanation.
fn log_tail(profile: &Path) -> String {
    let text = std::fs::read_to_string(profile.join(LOG)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Says, past the test harness's output capture, that a test did not run.
pub fn skipped(test: &str) {
    let _ = writeln!(
        std::io::stdout(),
        "SKIPPED {test}: no Chromium found (apt-get install chromium, or set CHROMIUM)"
    );
}

/// One browser with one page, closed when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Every protocol event received so far.
    events: Vec<Value>,
    pub downloads: TempDir,
    profile: TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A fresh headless browser with an empty profile, or `None` when no
    /// Chromium is installed.
    pub async fn launch() -> Option<Browser> {
        let binary = find()?;
        let turn = ONE_AT_A_TIME.lock().await;
        let profile = tempfile::tempdir().expect("profile folder");
        let downloads = tempfile::tempdir().expect("download folder");
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // No D-Bus: a bus that nobody answers holds each call for its
            // 25-second timeout; an unusable address fails at once.
            .env("DBUS_SYSTEM_BUS_ADDRESS", "disabled:")
            .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(profile.path().join(LOG)).expect("Chromium's log file"))
            .spawn()
            .expect("Chromium starts");
        // Chromium writes its port and browser endpoint here once listening.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let mut child = child;
        let endpoint = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("Chromium exited ({status}): {}", log_tail(profile.path()));
            }
            assert!(
                started.elapsed() < STARTUP_PATIENCE,
                "Chromium did not open its debugging port: {}",
                log_tail(profile.path())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(endpoint)
            .await
            .expect("DevTools connection");
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            downloads,
            profile,
            _turn: turn,
        };
        let target = browser
            .command(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        let folder = browser.downloads.path().display().to_string();
        browser
            .command(
                None,
                "Browser.setDownloadBehavior",
                json!({"behavior": "allow", "downloadPath": folder}),
            )
            .await;
        for domain in ["Page", "Runtime", "Network", "Log"] {
            browser.call(&format!("{domain}.enable"), json!({})).await;
        }
        Some(browser)
    }

    /// Sends a command (to the page's session, or the browser's with
    /// `None`) and returns its result, keeping the events that arrive meanwhile.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("command sent");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no answer to {method}: {}", log_tail(self.profile.path()))
                })
                .expect("DevTools connection open")
                .expect("readable frame");
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).expect("protocol JSON");
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// A command to the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// The value of a JavaScript expression (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy and returns its value.
    pub async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}: {}",
                log_tail(self.profile.path())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `url` and waits until the new document has replaced the old.
    pub async fn goto(&mut self, url: &str) {
        self.eval("window.leftBehind = true").await;
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            url,
            "!window.leftBehind && document.readyState !== 'loading'",
        )
        .await;
    }

    /// Presses and releases one key, as a person typing would.
    pub async fn press(&mut self, key: &str) {
        let (code, virtual_code, text) = match key {
            "Enter" => ("Enter".to_owned(), 13, "\r"),
            "Escape" => ("Escape".to_owned(), 27, ""),
            "ArrowDown" => ("ArrowDown".to_owned(), 40, ""),
            "ArrowUp" => ("ArrowUp".to_owned(), 38, ""),
            "/" => ("Slash".to_owned(), 191, "/"),
            letter if letter.len() == 1 && letter.as_bytes()[0].is_ascii_lowercase() => {
                let upper = letter.to_ascii_uppercase();
                (format!("Key{upper}"), i64::from(upper.as_bytes()[0]), key)
            }
            other => panic!("no key code for {other}"),
        };
        let mut down = json!({"type": "keyDown", "key": key, "code": code,
            "windowsVirtualKeyCode": virtual_code});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": virtual_code}),
        )
        .await;
    }

    /// Types into the focused element.
    pub async fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// The viewport's size; `mobile` also emulates a phone's touch layout.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// The system colour scheme the page sees.
    pub async fn color_scheme(&mut self, scheme: &str) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 image");
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("screenshot folder");
        }
        std::fs::write(path, bytes).expect("screenshot written");
    }

    /// Waits for a finished download and returns its contents.
    pub async fn downloaded(&mut self) -> (String, String) {
        let started = Instant::now();
        loop {
            let done = std::fs::read_dir(self.downloads.path())
                .expect("download folder")
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.extension().is_some_and(|e| e != "crdownload"));
            if let Some(path) = done {
                let text = std::fs::read_to_string(&path).expect("downloaded text");
                std::fs::remove_file(&path).expect("download removed");
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                return (name, text);
            }
            assert!(started.elapsed() < PATIENCE, "no download arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lets `millis` of the page's time pass at once: its timers fire as if
    /// that long had gone by (network requests still take real time). The
    /// page's clock stays virtual afterwards.
    pub async fn fast_forward(&mut self, millis: u64) {
        self.call(
            "Emulation.setVirtualTimePolicy",
            json!({"policy": "pauseIfNetworkFetchesPending", "budget": millis}),
        )
        .await;
        let expired = |e: &Value| e["method"] == "Emulation.virtualTimeBudgetExpired";
        let started = Instant::now();
        while !self.events.iter().any(expired) {
            assert!(started.elapsed() < PATIENCE, "page time did not pass");
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.eval("1").await;
        }
    }

    /// Every request the page made, in order (`Network.Request` objects).
    async fn requests(&mut self) -> Vec<&Value> {
        // A round trip collects the events still in flight.
        self.eval("1").await;
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .map(|e| &e["params"]["request"])
            .collect()
    }

    /// Every URL the page requested, in order.
    pub async fn requested_urls(&mut self) -> Vec<String> {
        let requests = self.requests().await;
        requests
            .iter()
            .map(|r| r["url"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The headers of every request whose URL contains `part`.
    pub async fn request_headers(&mut self, part: &str) -> Vec<Value> {
        let requests = self.requests().await;
        requests
            .iter()
            .filter(|r| r["url"].as_str().unwrap_or("").contains(part))
            .map(|r| r["headers"].clone())
            .collect()
    }

    /// Console errors, uncaught exceptions and browser-logged errors.
    pub async fn console_errors(&mut self) -> Vec<String> {
        self.eval("1").await;
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled")
                    if matches!(e["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    Some(e["params"]["args"].to_string())
                }
                Some("Runtime.exceptionThrown") => {
                    Some(e["params"]["exceptionDetails"].to_string())
                }
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => {
                    Some(format!(
                        "{} ({})",
                        e["params"]["entry"]["text"], e["params"]["entry"]["url"]
                    ))
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

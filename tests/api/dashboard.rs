//! The dashboard at `/ui`: how it is served, and what it shows in a real
//! (headless Chromium) browser over a crafted history.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use pipeline_service::config::RawSettings;
use serde_json::{json, Value};

use crate::chromium::{skipped, Browser};
use crate::helpers::{
    csv_column, run, spawn_app_with, spawn_app_with_file, TestApp, RECORD_FIELDS,
};

/// Where the test run leaves its screenshots.
fn screenshot(name: &str) -> PathBuf {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target folder")
        .to_path_buf();
    target.join("screenshots").join(name)
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn browsers_opening_the_root_go_to_the_dashboard_and_api_clients_do_not() {
    let app = spawn_app_with_file("").await;
    let client = no_redirects();
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let response = client
        .get(format!("{}/", app.address))
        .header("accept", browser_accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], "/ui");
    assert_eq!(response.headers()["vary"], "accept");
    for accept in [None, Some("application/json"), Some("*/*")] {
        let mut request = client.get(format!("{}/", app.address));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "Pipeline Service API", "{accept:?}");
        assert_eq!(body["backend"], "jsonl");
    }
}

/// The addresses of the page's assets, as written in its HTML.
fn asset_paths(page: &str) -> Vec<String> {
    page.split("\"ui/assets/")
        .skip(1)
        .map(|rest| format!("/ui/assets/{}", &rest[..rest.find('"').unwrap()]))
        .collect()
}

#[tokio::test]
async fn the_page_is_revalidated_its_assets_cached_for_good_and_all_compressed() {
    let app = spawn_app_with_file("").await;
    let client = reqwest::Client::new();
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let mut request = client.get(format!("{}{path}", app.address));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let page = get("/ui".into(), vec![]).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let unchanged = get("/ui".into(), vec![("if-none-match", etag)])
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.bytes().await.unwrap().is_empty());

    let assets = asset_paths(&html);
    assert_eq!(assets.len(), 5, "{assets:?}");
    // What a browser downloads, as it travels (this client does not decompress).
    let page = get("/ui".into(), vec![("accept-encoding", "gzip".into())])
        .await
        .unwrap();
    assert_eq!(page.headers()["content-encoding"], "gzip");
    let mut transferred = page.bytes().await.unwrap().len();
    for path in &assets {
        let response = get(path.clone(), vec![("accept-encoding", "gzip".into())])
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(headers["content-encoding"], "gzip", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        transferred += response.bytes().await.unwrap().len();
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let again = get(path.clone(), vec![("if-none-match", etag)])
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    assert!(
        transferred < 200 * 1024,
        "page and assets take {transferred} bytes compressed"
    );
    let license = assets.iter().find(|p| p.contains("LICENSE")).unwrap();
    let text = get(license.clone(), vec![])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("MIT License") && text.contains("Leon Sorokin"));
    // Only the hashed names exist: a stale name is not served.
    for path in ["/ui/assets/app.js", "/ui/assets/app.000000000000.js"] {
        let response = get(path.into(), vec![]).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // A tiny answer is sent as it is.
    let api = get(
        "/pipelines".into(),
        vec![("accept-encoding", "gzip".into())],
    )
    .await
    .unwrap();
    assert!(api.headers().get("content-encoding").is_none());
}

// ---------------------------------------------------------------------------
// In the browser

/// One run of `name` (script `name.py`), starting at `start`.
fn line(
    (name, pipeline_type, environment): (&str, &str, &str),
    start: DateTime<Utc>,
    elapsed: f64,
    rows: i64,
    archived: Option<&str>,
) -> String {
    let end = start + Duration::milliseconds((elapsed * 1000.0) as i64);
    let naive = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    run(json!({
        "start_local": naive(start),
        "end_local": naive(end),
        "start_utc": format!("{}Z", naive(start)),
        "end_utc": format!("{}Z", naive(end)),
        "elapsed_seconds": elapsed,
        "elapsed_human": format!("{}s", elapsed as i64),
        "rowcount": rows,
        "date_code": format!("{}_{name}", start.format("%Y%m%d_%H%M%S")),
        "pipeline_name": name,
        "script_name": format!("{name}.py"),
        "pipeline_type": pipeline_type,
        "environment": environment,
        "archived_file": archived,
    }))
    .to_string()
}

const ORDERS: (&str, &str, &str) = ("orders_daily", "batch", "prod");
const BILLING: (&str, &str, &str) = ("billing_hourly", "stream", "prod");
const CLICKS: (&str, &str, &str) = ("clicks_ingest", "batch", "staging");
const LEDGER: (&str, &str, &str) = ("ledger_export", "batch", "dev");
const PRICING: (&str, &str, &str) = ("pricing_sync", "backfill", "qa");

/// The overview's key of a crafted pipeline.
fn key((name, pipeline_type, environment): (&str, &str, &str)) -> String {
    json!([name, format!("{name}.py"), pipeline_type, environment]).to_string()
}

/// Five pipelines, timed against now: a healthy daily one (40 runs, the
/// latest an hour ago), a late hourly one (silent for 10 hours), one whose
/// latest run took 9 × as long as usual, one whose latest run loaded no
/// rows, and a young one with too few runs to judge. 28 runs in the last
/// 24 hours. `archived` is the latest daily run's archived file.
fn crafted_history(now: DateTime<Utc>, archived: Option<&str>) -> String {
    let hours = |n: i64| Duration::minutes(60 * n);
    let mut lines = Vec::new();
    for k in 0..40 {
        let start = now - hours(24 * k + 1);
        let file = if k == 0 { archived } else { None };
        let (seconds, rows) = (600 + (k % 5) * 10, 1000 + (k % 7) * 10);
        lines.push(line(ORDERS, start, seconds as f64, rows, file));
    }
    for k in 0..12 {
        let start = now - hours(10 + k);
        lines.push(line(BILLING, start, (60 + k % 3) as f64, 50 + k % 4, None));
    }
    for k in 0..10 {
        let start = now - Duration::minutes(30) - hours(2 * k);
        let seconds = if k == 0 { 900 } else { 100 + k % 3 };
        lines.push(line(CLICKS, start, seconds as f64, 300, None));
    }
    for k in 0..8 {
        let start = now - hours(1 + 6 * k);
        let rows = if k == 0 { 0 } else { 500 };
        lines.push(line(LEDGER, start, 200.0, rows, None));
    }
    for k in 0..3 {
        lines.push(line(PRICING, now - hours(2 + 24 * k), 30.0, 10, None));
    }
    lines.join("\n") + "\n"
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Waits until the page shows `view` with no load in flight.
async fn settled(browser: &mut Browser, view: &str) {
    let ready = format!(
        "document.documentElement.dataset.view === '{view}' && document.documentElement.dataset.state === 'ready'"
    );
    browser
        .wait_for(&format!("the {view} to load"), &ready)
        .await;
}

/// Waits for a load after the one that made `refreshes` (the page's count
/// of finished loads) what it was.
async fn redrawn(browser: &mut Browser, refreshes: &Value) {
    let done = format!(
        "document.documentElement.dataset.refreshes !== {refreshes} && document.documentElement.dataset.state === 'ready'"
    );
    browser.wait_for("another load", &done).await;
}

/// The `date_code`s of the runs table, once it says it shows `position`.
async fn runs_on_screen(browser: &mut Browser, position: &str) -> Vec<String> {
    let shown = format!(
        "document.getElementById('runs-position').textContent === {}",
        json!(position)
    );
    browser.wait_for(position, &shown).await;
    let codes = browser
        .eval("[...document.querySelectorAll('#runs tbody tr')].map((tr) => tr.dataset.dateCode)")
        .await;
    serde_json::from_value(codes).unwrap()
}

/// The overview's rows: key and chip texts, top to bottom.
async fn overview_rows(browser: &mut Browser) -> Vec<(String, Vec<String>)> {
    let rows = browser
        .eval(
            "[...document.querySelectorAll('#pipelines tbody tr')].map((tr) => \
             [tr.dataset.key, [...tr.querySelectorAll('.chip')].map((c) => c.textContent)])",
        )
        .await;
    serde_json::from_value(rows).unwrap()
}

async fn row_keys(browser: &mut Browser) -> Vec<String> {
    overview_rows(browser)
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

async fn text_of(browser: &mut Browser, selector: &str) -> String {
    let value = browser
        .eval(&format!(
            "document.querySelector({}).textContent",
            json!(selector)
        ))
        .await;
    value.as_str().unwrap_or_default().to_owned()
}

async fn location(browser: &mut Browser) -> String {
    let value = browser.eval("location.pathname + location.search").await;
    value.as_str().unwrap().to_owned()
}

/// Everything the page requested stayed inside the service, and nothing
/// but `allowed` (network errors the test caused on purpose) reached the
/// console.
async fn assert_self_contained(browser: &mut Browser, app: &TestApp, allowed: &[&str]) {
    let urls = browser.requested_urls().await;
    assert!(
        urls.iter().any(|u| u.contains("/pipelines/stats")),
        "the network log holds the page's requests: {urls:?}"
    );
    let outside: Vec<&String> = urls
        .iter()
        .filter(|u| {
            !(u.starts_with(&format!("{}/", app.address))
                || u.starts_with("data:")
                || u.starts_with("blob:")
                || u.starts_with("about:"))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "requests outside the service: {outside:?}"
    );
    let errors: Vec<String> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !allowed.iter().any(|a| e.contains(a)))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[tokio::test]
async fn the_overview_lists_every_pipeline_problems_first_and_keeps_its_place() {
    let app = spawn_app_with_file(&crafted_history(now(), None)).await;
    let Some(mut browser) = Browser::launch().await else {
        return skipped("the_overview_lists_every_pipeline_problems_first_and_keeps_its_place");
    };
    // A person types the service's address: the root sends them on.
    browser.goto(&format!("{}/", app.address)).await;
    settled(&mut browser, "overview").await;
    assert_eq!(location(&mut browser).await, "/ui");

    // Exactly the groups of /pipelines/stats, problems first, right chips.
    let stats = app.get_json("/pipelines/stats").await;
    let mut expected: Vec<String> = stats["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            json!([
                g["pipeline_name"],
                g["script_name"],
                g["pipeline_type"],
                g["environment"]
            ])
            .to_string()
        })
        .collect();
    let rows = overview_rows(&mut browser).await;
    let mut shown: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected);
    let chips = |k: &str| vec![k.to_owned()];
    assert_eq!(
        rows,
        vec![
            (key(BILLING), chips("late")),
            (key(CLICKS), chips("duration anomaly")),
            (
                key(LEDGER),
                vec!["rowcount anomaly".into(), "zero rows".into()]
            ),
            (key(ORDERS), chips("OK")),
            (key(PRICING), chips("OK")),
        ]
    );
    for (card, value) in [
        ("pipelines", "5"),
        ("problem", "3"),
        ("late", "1"),
        ("anomalous", "2"),
        ("day", "28"),
    ] {
        assert_eq!(
            text_of(&mut browser, &format!("#card-{card} .value")).await,
            value,
            "{card}"
        );
    }
    let late_row = format!("#pipelines tr[data-key='{}']", key(BILLING));
    let schedule = text_of(&mut browser, &format!("{late_row} td:nth-child(4)")).await;
    assert_eq!(schedule, "every ~1 h · overdue by 9 h");
    let title = browser
        .eval(&format!(
            "document.querySelector({}).title",
            json!(format!("{late_row} td:nth-child(3)"))
        ))
        .await;
    assert!(title.as_str().unwrap().ends_with(" UTC"), "{title}");
    browser.screenshot(&screenshot("overview.png")).await;

    // Filters narrow the rows and live in the URL.
    browser
        .eval("const s = document.getElementById('filter-env'); s.value = 'prod'; s.dispatchEvent(new Event('change'))")
        .await;
    assert_eq!(row_keys(&mut browser).await, [key(BILLING), key(ORDERS)]);
    assert_eq!(location(&mut browser).await, "/ui?env=prod");
    browser.press("/").await;
    assert_eq!(browser.eval("document.activeElement.id").await, "filter-q");
    browser.type_text("bill").await;
    assert_eq!(row_keys(&mut browser).await, [key(BILLING)]);
    assert_eq!(location(&mut browser).await, "/ui?env=prod&q=bill");
    // The same address shows the same view.
    browser
        .goto(&format!("{}/ui?env=prod&q=bill", app.address))
        .await;
    settled(&mut browser, "overview").await;
    assert_eq!(row_keys(&mut browser).await, [key(BILLING)]);
    assert_eq!(
        browser
            .eval("document.getElementById('filter-q').value")
            .await,
        "bill"
    );
    browser
        .eval("document.getElementById('card-problem').click()")
        .await;
    assert_eq!(
        location(&mut browser).await,
        "/ui?env=prod&q=bill&status=problems"
    );

    // Keyboard: down twice, open, come back.
    browser.goto(&format!("{}/ui", app.address)).await;
    settled(&mut browser, "overview").await;
    browser.press("j").await;
    browser.press("j").await;
    browser.press("Enter").await;
    settled(&mut browser, "pipeline").await;
    assert!(location(&mut browser).await.starts_with(
        "/ui?view=pipeline&name=clicks_ingest&script=clicks_ingest.py&type=batch&env=staging"
    ),);
    browser.press("u").await;
    settled(&mut browser, "overview").await;

    // A refresh brings new data without moving the reader: in a short
    // window, scrolled down, with the third pipeline selected.
    browser.viewport(1000, 330, false).await;
    for _ in 0..3 {
        browser.press("j").await;
    }
    let scrolled = browser
        .eval("window.scrollTo(0, 120); window.scrollY")
        .await;
    assert!(scrolled.as_f64().unwrap() > 0.0, "the page scrolls");
    let before = browser
        .eval("document.documentElement.dataset.refreshes")
        .await;
    app.store(&serde_json::from_str(&line(PRICING, now(), 30.0, 10, None)).unwrap())
        .await;
    browser.press("r").await;
    redrawn(&mut browser, &before).await;
    let pricing_runs = text_of(
        &mut browser,
        &format!("#pipelines tr[data-key='{}'] td:last-child", key(PRICING)),
    )
    .await;
    assert_eq!(pricing_runs, "4", "the refresh read the new run");
    assert_eq!(text_of(&mut browser, "#card-day .value").await, "29");
    assert_eq!(browser.eval("window.scrollY").await, scrolled);
    let selected = browser
        .eval("[document.querySelector('#pipelines tr[aria-selected=\"true\"]').dataset.key, document.activeElement.dataset.key]")
        .await;
    assert_eq!(selected, json!([key(LEDGER), key(LEDGER)]));

    // Dark system theme, and a phone.
    browser.viewport(1280, 900, false).await;
    browser.eval("window.scrollTo(0, 0)").await;
    let before = browser
        .eval("document.documentElement.dataset.refreshes")
        .await;
    browser.color_scheme("dark").await;
    redrawn(&mut browser, &before).await;
    let background = browser
        .eval("getComputedStyle(document.documentElement).backgroundColor")
        .await;
    assert_eq!(background, "rgb(21, 23, 27)");
    browser.screenshot(&screenshot("overview-dark.png")).await;
    let before = browser
        .eval("document.documentElement.dataset.refreshes")
        .await;
    browser.color_scheme("light").await;
    redrawn(&mut browser, &before).await;
    browser.viewport(390, 844, true).await;
    let widest = browser
        .eval("Math.max(...[...document.querySelectorAll('#pipelines tr')].map((r) => r.getBoundingClientRect().right))")
        .await;
    assert!(
        widest.as_f64().unwrap() <= 390.0,
        "rows fit a phone's width: {widest}"
    );
    browser.screenshot(&screenshot("overview-phone.png")).await;

    // Nobody presses anything: the page refreshes itself every 30 seconds.
    // A refresh now restarts its timer, so page time counts from here.
    let before = browser
        .eval("document.documentElement.dataset.refreshes")
        .await;
    browser.press("r").await;
    redrawn(&mut browser, &before).await;
    let before = browser
        .eval("document.documentElement.dataset.refreshes")
        .await;
    browser.fast_forward(25_000).await;
    assert_eq!(
        browser
            .eval("document.documentElement.dataset.refreshes")
            .await,
        before,
        "no refresh before 30 s"
    );
    browser.fast_forward(10_000).await;
    redrawn(&mut browser, &before).await;

    assert_self_contained(&mut browser, &app, &[]).await;
}

#[tokio::test]
async fn a_pipeline_page_charts_pages_and_exports_the_runs_in_its_range() {
    let archive = tempfile::tempdir().unwrap();
    let archived = archive.path().join("orders-latest.csv.gz");
    std::fs::write(&archived, b"archived output").unwrap();
    let history = crafted_history(now(), Some(archived.to_str().unwrap()));
    let settings = RawSettings {
        archive_roots: Some(archive.path().display().to_string()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(Some(&history), settings).await;
    let Some(mut browser) = Browser::launch().await else {
        return skipped("a_pipeline_page_charts_pages_and_exports_the_runs_in_its_range");
    };
    let page = "/ui?view=pipeline&name=orders_daily&script=orders_daily.py&type=batch&env=prod";
    browser.goto(&format!("{}{page}", app.address)).await;
    settled(&mut browser, "pipeline").await;

    // The runs in the page's range (the last 30 days), as the API has them.
    let since = browser
        .eval("document.documentElement.dataset.rangeStart")
        .await;
    let filters = format!(
        "pipeline_name=orders_daily&script_name=orders_daily.py&pipeline_type=batch&environment=prod&start_utc={}",
        since.as_str().unwrap()
    );
    let in_range = app
        .get_json(&format!("/get_pipeline_info?{filters}&all_data=true"))
        .await;
    let expected: Vec<String> = in_range["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date_code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 30, "daily runs of the last 30 days");
    for chart in ["duration", "rows", "time"] {
        let points = browser
            .wait_for(
                &format!("the {chart} chart"),
                &format!("document.getElementById('chart-{chart}').dataset.points"),
            )
            .await;
        assert_eq!(points, "30", "{chart} chart");
    }

    // Pages of 25 tile the runs: no gap, no overlap, and back again.
    let first = runs_on_screen(&mut browser, "runs 1–25 of 30").await;
    // Every field, in the record's own order.
    let columns = browser
        .eval("[...document.querySelectorAll('#runs thead th')].map((th) => th.textContent)")
        .await;
    assert_eq!(columns, json!(RECORD_FIELDS));
    browser.press("n").await;
    let second = runs_on_screen(&mut browser, "runs 26–30 of 30").await;
    assert_eq!([first.clone(), second.clone()].concat(), expected);
    assert_eq!(
        browser
            .eval("document.getElementById('runs-older').disabled")
            .await,
        true
    );

    // The CSV link downloads exactly the rows on screen.
    browser
        .eval("document.getElementById('runs-csv').click()")
        .await;
    let (name, text) = browser.downloaded().await;
    assert!(name.ends_with(".csv"), "{name}");
    let header = text.lines().next().unwrap_or_default();
    assert_eq!(header, RECORD_FIELDS.join(","));
    assert_eq!(csv_column(&text, "date_code"), second);

    browser.press("p").await;
    assert_eq!(runs_on_screen(&mut browser, "runs 1–25 of 30").await, first);
    // The latest run's archived file is served, so it is a link.
    let link = browser
        .wait_for(
            "the archive link",
            "document.querySelector('#runs tbody tr:first-child a.archive')?.getAttribute('href')",
        )
        .await;
    assert_eq!(
        link,
        format!("pipelines/archived/{}", first[0]).as_str(),
        "the newest run's file"
    );
    browser.eval("window.scrollTo(0, 0)").await;
    browser.screenshot(&screenshot("pipeline.png")).await;

    // Another range: the charts follow it, and so does the URL.
    browser
        .eval("[...document.querySelectorAll('.ranges button')].find((b) => b.textContent === 'last 7d').click()")
        .await;
    settled(&mut browser, "pipeline").await;
    browser
        .wait_for(
            "the 7-day charts",
            "document.getElementById('chart-duration').dataset.points === '7'",
        )
        .await;
    assert_eq!(location(&mut browser).await, format!("{page}&range=7d"));

    assert_self_contained(&mut browser, &app, &[]).await;
}

#[tokio::test]
async fn with_read_keys_the_page_asks_once_and_keeps_the_key_for_the_tab() {
    let settings = RawSettings {
        api_keys: Some("dashboard-key-1".into()),
        api_keys_for_reads: Some("true".into()),
        ..RawSettings::default()
    };
    let app = spawn_app_with(Some(&crafted_history(now(), None)), settings).await;
    let Some(mut browser) = Browser::launch().await else {
        return skipped("with_read_keys_the_page_asks_once_and_keeps_the_key_for_the_tab");
    };
    let asked =
        "document.getElementById('key-dialog').open && document.documentElement.dataset.keyPrompts";
    browser.goto(&format!("{}/ui", app.address)).await;
    assert_eq!(browser.wait_for("the key question", asked).await, "1");
    // A wrong key is refused and asked for again, saying why.
    browser.type_text("not-the-key").await;
    browser.press("Enter").await;
    browser
        .wait_for(
            "the second question",
            "document.documentElement.dataset.keyPrompts === '2' && document.getElementById('key-dialog').open",
        )
        .await;
    assert!(text_of(&mut browser, "#key-problem")
        .await
        .contains("refused"));
    browser.screenshot(&screenshot("key-question.png")).await;
    browser.type_text("dashboard-key-1").await;
    browser.press("Enter").await;
    settled(&mut browser, "overview").await;
    assert_eq!(row_keys(&mut browser).await.len(), 5);
    assert_eq!(
        browser
            .eval("sessionStorage.getItem('pipeline-service.api-key')")
            .await,
        "dashboard-key-1"
    );
    assert_eq!(
        browser.eval("[localStorage.length, document.cookie]").await,
        json!([0, ""])
    );
    // Every later read carries it, with no new question.
    browser.press("j").await;
    browser.press("Enter").await;
    settled(&mut browser, "pipeline").await;
    assert_eq!(
        browser
            .eval("document.documentElement.dataset.keyPrompts")
            .await,
        "2"
    );
    let sent = browser.request_headers("/get_pipeline_info").await;
    assert!(
        sent.last()
            .is_some_and(|h| h["X-API-Key"] == "dashboard-key-1"),
        "{sent:?}"
    );
    // Reloading the tab keeps it.
    browser.goto(&format!("{}/ui", app.address)).await;
    settled(&mut browser, "overview").await;
    assert_eq!(row_keys(&mut browser).await.len(), 5);
    assert_eq!(
        browser
            .eval("document.getElementById('key-dialog').open")
            .await,
        false
    );
    // Never in an address.
    let urls = browser.requested_urls().await;
    assert!(
        urls.iter().all(|u| !u.contains("dashboard-key")),
        "{urls:?}"
    );
    // The first, keyless reads and the wrong key were refused, as the
    // browser reports in its console.
    assert_self_contained(&mut browser, &app, &["status of 401", "status of 403"]).await;
}

/// Benchmark mode, not a timed test: how soon the overview is usable,
/// against a server already running at `DASHBOARD_BENCH_URL` (`bench/ui.sh`
/// starts a release build over a million runs). The first load has an empty
/// cache; the later ones revalidate the page and reuse the assets. Prints
/// one `dashboard-tti` line per load.
#[tokio::test]
#[ignore = "benchmark: bench/ui.sh runs it against a release server"]
async fn overview_time_to_interactive() {
    let Ok(base) = std::env::var("DASHBOARD_BENCH_URL") else {
        return println!("SKIPPED: set DASHBOARD_BENCH_URL (bench/ui.sh does)");
    };
    let Some(mut browser) = Browser::launch().await else {
        return skipped("overview_time_to_interactive");
    };
    for load in 1..=5 {
        browser.goto(&format!("{base}/ui")).await;
        settled(&mut browser, "overview").await;
        let figures = browser
            .eval(
                "[performance.getEntriesByName('overview-ready')[0].startTime, \
                 performance.getEntriesByType('resource').find((e) => e.name.includes('pipelines/stats')).duration, \
                 document.querySelectorAll('#pipelines tbody tr').length]",
            )
            .await;
        let _ = writeln!(
            std::io::stdout(),
            "dashboard-tti load={load} interactive_ms={:.0} stats_request_ms={:.0} rows={}",
            figures[0].as_f64().unwrap_or(f64::NAN),
            figures[1].as_f64().unwrap_or(f64::NAN),
            figures[2]
        );
    }
}

//! `GET /pipelines/archived/{date_code}`: only files inside the configured
//! roots, with ranges, types and dispositions, never as active content,
//! and never from outside a root however the folders change meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pipeline_service::config::RawSettings;
use serde_json::{json, Value};

use crate::helpers::{run, spawn_app, spawn_app_with, TestApp};

struct Archive {
    app: TestApp,
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
}

async fn archive(max_file_size_mb: &str) -> Archive {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let raw = RawSettings {
        archive_roots: Some(format!("/nonexistent-root, {}", root.path().display())),
        max_file_size_mb: Some(max_file_size_mb.into()),
        ..RawSettings::default()
    };
    Archive {
        app: spawn_app_with(None, raw).await,
        root,
        outside,
    }
}

async fn store_with_file(app: &TestApp, code: &str, file: &Path) {
    app.store(&run(
        json!({"date_code": code, "archived_file": file.display().to_string()}),
    ))
    .await;
}

/// Every served file is inert: never sniffed, never given this origin.
fn assert_inert(response: &reqwest::Response) {
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], "sandbox");
}

/// Writes `name` in the root, stores a run `code` naming it and fetches
/// it: served, and inert.
async fn serve_new_file(a: &Archive, code: &str, name: &str, body: &str) -> reqwest::Response {
    let file = a.root.path().join(name);
    std::fs::write(&file, body).unwrap();
    store_with_file(&a.app, code, &file).await;
    let response = a.app.get(&format!("/pipelines/archived/{code}")).await;
    assert_eq!(response.status(), 200, "{code}");
    assert_inert(&response);
    response
}

/// `GET` the archived file of `code` with one more request header.
async fn get_with(app: &TestApp, code: &str, name: &str, value: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/pipelines/archived/{code}", app.address))
        .header(name, value)
        .send()
        .await
        .unwrap()
}

async fn detail(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_file_inside_a_root_is_served_with_type_length_and_ranges() {
    let a = archive("50").await;
    let file = a.root.path().join("day").join("report.txt");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "0123456789").unwrap();
    store_with_file(&a.app, "d1", &file).await;
    let response = a.app.get("/pipelines/archived/d1").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(headers["content-length"], "10");
    assert_eq!(
        headers["content-disposition"],
        "inline; filename=\"report.txt\""
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_inert(&response);
    let modified = headers["last-modified"].to_str().unwrap().to_owned();
    assert_eq!(response.text().await.unwrap(), "0123456789");
    let unchanged = get_with(&a.app, "d1", "if-modified-since", &modified).await;
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.text().await.unwrap(), "");
    let stale = get_with(
        &a.app,
        "d1",
        "if-unmodified-since",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    )
    .await;
    assert_eq!(stale.status(), 412);
    let ranged = get_with(&a.app, "d1", "range", "bytes=2-4").await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(ranged.headers()["content-length"], "3");
    assert_inert(&ranged);
    assert_eq!(ranged.text().await.unwrap(), "234");
    let suffix = get_with(&a.app, "d1", "range", "bytes=-2").await;
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.text().await.unwrap(), "89");
    // A range header that is not a byte range is ignored: the whole file.
    let garbled = get_with(&a.app, "d1", "range", "lines=1-2").await;
    assert_eq!(garbled.status(), 200);
    assert_eq!(garbled.text().await.unwrap(), "0123456789");
    let beyond = get_with(&a.app, "d1", "range", "bytes=50-60").await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], "bytes */10");
    let head = a
        .app
        .client
        .head(format!("{}/pipelines/archived/d1", a.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "10");
    assert_inert(&head);
    assert_eq!(head.bytes().await.unwrap().len(), 0);
}

#[tokio::test]
async fn binary_and_large_files_are_attachments() {
    let a = archive("1").await;
    let gz = a.root.path().join("out.csv.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 0, 0]).unwrap();
    store_with_file(&a.app, "gz", &gz).await;
    let response = a.app.get("/pipelines/archived/gz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"out.csv.gz\""
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_inert(&response);
    // Text above MAX_FILE_SIZE_MB (1 MB here) is a download too.
    let big = a.root.path().join("big.txt");
    std::fs::write(&big, "x".repeat(1_100_000)).unwrap();
    store_with_file(&a.app, "big", &big).await;
    let response = a.app.get("/pipelines/archived/big").await;
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"big.txt\""
    );
    assert_eq!(response.bytes().await.unwrap().len(), 1_100_000);
}

#[tokio::test]
async fn traversal_symlinks_and_outside_paths_are_403() {
    let a = archive("50").await;
    let secret = a.outside.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    // `..` climbing out of the root by name.
    let climbing = a.root.path().join("..").join(
        a.outside
            .path()
            .strip_prefix(a.root.path().parent().unwrap())
            .unwrap(),
    );
    store_with_file(&a.app, "climb", &climbing.join("secret.txt")).await;
    // A symlink inside the root pointing outside it.
    let link = a.root.path().join("innocent.txt");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    store_with_file(&a.app, "link", &link).await;
    // A plain absolute path elsewhere, and one that does not even exist.
    store_with_file(&a.app, "etc", Path::new("/etc/passwd")).await;
    store_with_file(&a.app, "ghost", Path::new("/no/such/file")).await;
    for code in ["climb", "link", "etc", "ghost"] {
        let response = a.app.get(&format!("/pipelines/archived/{code}")).await;
        assert_eq!(response.status(), 403, "{code}");
        let text = detail(response).await;
        assert!(!text.contains("secret"), "{text}");
    }
    // A relative symlink that stays inside the root is followed, and the
    // file is named as the run names it.
    let real = a.root.path().join("real.json");
    std::fs::write(&real, "{}").unwrap();
    let inner_link = a.root.path().join("alias.json");
    std::os::unix::fs::symlink("real.json", &inner_link).unwrap();
    store_with_file(&a.app, "alias", &inner_link).await;
    let response = a.app.get("/pipelines/archived/alias").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"alias.json\""
    );
    assert_eq!(response.text().await.unwrap(), "{}");
    // An absolute one is refused even when it points inside: only a
    // resolution that never leaves the root is trusted.
    let absolute_link = a.root.path().join("absolute.json");
    std::os::unix::fs::symlink(&real, &absolute_link).unwrap();
    store_with_file(&a.app, "absolute", &absolute_link).await;
    let response = a.app.get("/pipelines/archived/absolute").await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn active_content_is_a_download_that_cannot_run() {
    let a = archive("50").await;
    for (code, name, body) in [
        (
            "html",
            "page.html",
            "<script>alert(document.cookie)</script>",
        ),
        (
            "svg",
            "logo.svg",
            "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        ),
        ("xml", "feed.xml", "<x/>"),
        ("pdf", "report.pdf", "%PDF-1.4"),
        // Content that looks like HTML in a name that does not.
        ("noext", "README", "<html><script>alert(1)</script></html>"),
    ] {
        let response = serve_new_file(&a, code, name, body).await;
        let headers = response.headers();
        assert_eq!(
            headers["content-type"], "application/octet-stream",
            "{code}"
        );
        assert_eq!(
            headers["content-disposition"],
            format!("attachment; filename=\"{name}\"").as_str(),
            "{code}"
        );
        assert_eq!(response.text().await.unwrap(), body);
    }
    // HTML inside a `.txt` is shown, but as text that is never sniffed.
    let script = "<script>alert(1)</script>";
    let response = serve_new_file(&a, "disguised", "notes.txt", script).await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
}

#[tokio::test]
async fn any_file_name_gets_a_valid_disposition() {
    let a = archive("50").await;
    for (code, name, expected) in [
        (
            "control",
            "evil\r\nname\u{7}.html",
            "attachment; filename=\"evil__name_.html\"; filename*=UTF-8''evil%0D%0Aname%07.html",
        ),
        (
            "quotes",
            "say \"hi\"\\.txt",
            "inline; filename=\"say _hi__.txt\"; filename*=UTF-8''say%20%22hi%22%5C.txt",
        ),
        (
            "unicode",
            "résumé-日本.txt",
            "inline; filename=\"r_sum_-__.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9-%E6%97%A5%E6%9C%AC.txt",
        ),
    ] {
        let response = serve_new_file(&a, code, name, "x").await;
        assert_eq!(response.headers()["content-disposition"], expected, "{code}");
    }
}

#[tokio::test]
async fn runs_sharing_a_date_code_must_agree_on_the_file() {
    let a = archive("50").await;
    let first = a.root.path().join("first.txt");
    let second = a.root.path().join("second.txt");
    std::fs::write(&first, "first").unwrap();
    std::fs::write(&second, "second").unwrap();
    // The same run posted twice, and a later run without a file, still
    // name one file.
    store_with_file(&a.app, "same", &first).await;
    store_with_file(&a.app, "same", &first).await;
    a.app
        .store(&run(json!({"date_code": "same", "archived_file": null})))
        .await;
    let response = a.app.get("/pipelines/archived/same").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "first");
    // A newer run naming another file does not redirect the download.
    store_with_file(&a.app, "same", &second).await;
    let response = a.app.get("/pipelines/archived/same").await;
    assert_eq!(response.status(), 409);
    assert!(detail(response).await.contains("different archived files"));
}

/// A folder inside the root flips between a real folder and a symlink to
/// outside while requests keep coming: not one byte from outside is ever
/// served, and the flipping really was seen by the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_swapped_for_a_symlink_never_serves_outside_bytes() {
    let a = archive("50").await;
    std::fs::write(a.outside.path().join("f.txt"), "SECRET").unwrap();
    let spare = a.root.path().join("spare");
    std::fs::create_dir(&spare).unwrap();
    std::fs::write(spare.join("f.txt"), "inside").unwrap();
    let link = a.root.path().join("link");
    std::os::unix::fs::symlink(a.outside.path(), &link).unwrap();
    let swing = a.root.path().join("swing");
    store_with_file(&a.app, "swing", &swing.join("f.txt")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut flips = 0u32;
            // Stops at the first failure too (the folders are gone when a
            // failed assertion unwinds the test).
            while !stop.load(Ordering::Relaxed) && flips < 5_000_000 {
                let flip = || -> std::io::Result<()> {
                    std::fs::rename(&spare, &swing)?;
                    std::fs::rename(&swing, &spare)?;
                    std::fs::rename(&link, &swing)?;
                    std::fs::rename(&swing, &link)
                };
                if flip().is_err() {
                    break;
                }
                flips += 1;
            }
        })
    };
    let (mut inside, mut refused) = (0, 0);
    // 1,000 requests: a check-then-open design served about 1 in 50 from outside.
    for _ in 0..250 {
        let requests = (0..4).map(|_| a.app.get("/pipelines/archived/swing"));
        for response in futures_util::future::join_all(requests).await {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("SECRET"),
                "served from outside: {status} {body}"
            );
            match status {
                200 => inside += usize::from(body == "inside"),
                403 | 404 => refused += 1,
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        inside > 0 && refused > 0,
        "inside {inside}, refused {refused}"
    );
}

#[tokio::test]
async fn unknown_runs_missing_files_and_unset_roots() {
    let a = archive("50").await;
    assert_eq!(a.app.get("/pipelines/archived/nope").await.status(), 404);
    a.app
        .store(&run(json!({"date_code": "none", "archived_file": null})))
        .await;
    let response = a.app.get("/pipelines/archived/none").await;
    assert_eq!(response.status(), 404);
    assert_eq!(detail(response).await, "This run has no archived file");
    store_with_file(&a.app, "gone", &a.root.path().join("gone.txt")).await;
    let response = a.app.get("/pipelines/archived/gone").await;
    assert_eq!(response.status(), 404);
    assert_eq!(detail(response).await, "The archived file does not exist");
    std::fs::create_dir(a.root.path().join("folder")).unwrap();
    store_with_file(&a.app, "dir", &a.root.path().join("folder")).await;
    assert_eq!(a.app.get("/pipelines/archived/dir").await.status(), 404);
    // Without PIPELINE_ARCHIVE_ROOTS nothing is served.
    let plain = spawn_app().await;
    let file = a.root.path().join("here.txt");
    std::fs::write(&file, "x").unwrap();
    store_with_file(&plain, "here", &file).await;
    assert_eq!(plain.get("/pipelines/archived/here").await.status(), 403);
}

//! `GET /pipelines/archived/{date_code}`: only files inside the configured
//! roots, with ranges, types and dispositions.

use std::path::Path;

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
    assert_eq!(response.text().await.unwrap(), "0123456789");
    let ranged = a
        .app
        .client
        .get(format!("{}/pipelines/archived/d1", a.app.address))
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(ranged.text().await.unwrap(), "234");
    let beyond = a
        .app
        .client
        .get(format!("{}/pipelines/archived/d1", a.app.address))
        .header("range", "bytes=50-60")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
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
    // A symlink that stays inside the root is fine.
    let real = a.root.path().join("real.json");
    std::fs::write(&real, "{}").unwrap();
    let inner_link = a.root.path().join("alias.json");
    std::os::unix::fs::symlink(&real, &inner_link).unwrap();
    store_with_file(&a.app, "alias", &inner_link).await;
    let response = a.app.get("/pipelines/archived/alias").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
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

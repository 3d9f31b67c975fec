use serde_json::{json, Value};

use crate::helpers::{every_store, spawn_app, spawn_app_with_file, start_service};

#[tokio::test]
async fn root_names_the_service_backend_and_features() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let body = app.get_json("/").await;
        assert_eq!(body["backend"], app.backend);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["features"].as_array().is_some_and(|f| !f.is_empty()));
    }
}

#[tokio::test]
async fn health_reports_healthy_with_backend_and_version() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let body = app.get_json("/health").await;
        assert_eq!(
            body,
            json!({"status": "healthy", "backend": app.backend, "version": env!("CARGO_PKG_VERSION")})
        );
    }
}

#[tokio::test]
async fn unknown_paths_answer_fastapi_404() {
    let app = spawn_app().await;
    let response = app.get("/no/such/thing").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Not Found"})
    );
}

#[tokio::test]
async fn wrong_methods_answer_405_with_allow_header() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(format!("{}/pipelines", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Method Not Allowed"})
    );
    let response = app
        .client
        .post(format!("{}/get_pipeline_info", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.headers()["allow"]
        .to_str()
        .unwrap()
        .contains("GET"));
}

#[tokio::test]
async fn openapi_document_describes_every_endpoint_and_status() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for path in ["/health", "/pipelines", "/get_pipeline_info"] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(!paths.contains_key("/"), "/ is not part of the document");
    let post = &doc["paths"]["/pipelines"]["post"];
    for status in ["201", "422", "500", "503", "507"] {
        assert!(
            post["responses"][status].is_object(),
            "POST /pipelines {status}"
        );
    }
    let query = &doc["paths"]["/get_pipeline_info"]["get"];
    let params = query["parameters"].as_array().unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 10000);
    assert_eq!(limit["schema"]["default"], 100);
    assert!(query["responses"]["422"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "PipelineInfo",
        "PipelineSummary",
        "PipelineInfoResponse",
        "ValidationErrors",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    assert_eq!(
        schemas["PipelineInfo"]["example"]["date_code"],
        "20250808_050701"
    );
    let described = schemas["PipelineInfo"]["properties"]["elapsed_human"]["description"].as_str();
    assert!(described.is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn swagger_ui_is_served_without_internet() {
    let app = spawn_app().await;
    // reqwest follows the redirect from /docs to /docs/.
    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let config = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(config.status(), 200);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.bytes().await.unwrap().len() > 100_000,
        "the UI bundle is embedded"
    );
}

#[tokio::test]
async fn cors_allows_the_default_dev_origins_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/pipelines", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn cors_allow_all_and_custom_origins() {
    use pipeline_service::config::RawSettings;
    let all = crate::helpers::spawn_app_with(
        None,
        RawSettings {
            cors_allow_all: Some("true".into()),
            ..Default::default()
        },
    )
    .await;
    let response = all
        .client
        .get(format!("{}/health", all.address))
        .header("origin", "https://anything.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let custom = crate::helpers::spawn_app_with(
        None,
        RawSettings {
            cors_origins: Some("https://dash.example".into()),
            ..Default::default()
        },
    )
    .await;
    let ok = custom
        .client
        .get(format!("{}/health", custom.address))
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let default_origin = custom
        .client
        .get(format!("{}/health", custom.address))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert!(default_origin
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_trailing_slash_redirects_like_starlette() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/get_pipeline_info/?limit=5", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], "/get_pipeline_info?limit=5");
    let followed = app.get("/pipelines/").await;
    assert_eq!(followed.status(), 200);
    for path in ["/pipelines/stats/", "/download/pipeline_info/"] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307, "{path}");
        assert_eq!(response.headers()["location"], path.trim_end_matches('/'));
    }
    assert_eq!(app.get("/nothing/").await.status(), 404);
}

#[tokio::test]
async fn ready_when_the_store_can_be_read_and_written() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let body = app.get_json("/ready").await;
        assert_eq!(body, json!({"status": "ready", "backend": app.backend}));
        let doc = app.get_json("/openapi.json").await;
        assert!(doc["paths"]["/ready"]["get"]["responses"]["503"].is_object());
    }
}

#[tokio::test]
async fn not_ready_when_the_data_folder_cannot_be_written() {
    let app = spawn_app().await;
    // The data file's folder does not exist yet; put a plain file in its place.
    let folder = app.data_path.parent().unwrap();
    std::fs::write(folder, b"not a folder").unwrap();
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["backend"], "jsonl");
    assert_eq!(
        body["detail"], NOT_READY,
        "a short fixed reason, never the storage error"
    );
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "liveness is unaffected"
    );
}

const NOT_READY: &str = "the store failed its check; the cause is in the service log";

/// Anyone may call `/ready`: the storage error (paths, system messages)
/// goes to the log only.
#[tokio::test]
async fn an_unready_store_is_explained_in_the_log_not_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("secret-folder-name");
    let path = folder.join("runs.jsonl");
    let server = start_service(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())]);
    // After startup, a plain file takes the data folder's place.
    std::fs::write(&folder, b"not a folder").unwrap();
    let response = reqwest::get(format!("{}/ready", server.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret-folder-name"), "{text}");
    assert!(!text.contains("os error"), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["detail"],
        NOT_READY
    );
    server
        .logged(|line| line.contains("not ready") && line.contains("Not a directory"))
        .await;
}

/// `/ready` checks that the data folder takes new files. A symlink planted
/// where it creates its probe (a name that used to be predictable) must not
/// make it write through the link.
#[tokio::test]
async fn ready_never_writes_through_a_planted_symlink() {
    let app = spawn_app_with_file("").await;
    let folder = app.data_path.parent().unwrap();
    let victim = folder.parent().unwrap().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let planted = folder.join(format!(".pipeline-service-ready-{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    assert_eq!(app.get("/ready").await.status(), 200);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(&planted).is_ok(),
        "the planted link is left alone"
    );
    let names: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no probe file is left behind: {names:?}");
}

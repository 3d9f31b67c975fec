//! `pipeline-service compact` on a store that is being served and written.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{run, run_on, service, spawn_app_with_file, succeeded};

fn old_run(i: usize) -> Value {
    run(json!({
        "start_utc": format!("2020-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
        "date_code": format!("old{i}"),
    }))
}

fn compact(path: &std::path::Path, archive: &std::path::Path, extra: &[&str]) -> String {
    // Everything before 2023 is old, whatever today is.
    let since_2023 = chrono::Utc::now().timestamp() - 1_672_531_200;
    let days = since_2023 as f64 / 86_400.0;
    let output = succeeded(
        service(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())])
            .args(["compact", "--older-than", &days.to_string(), "--archive"])
            .arg(archive)
            .args(extra),
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_while_serving_and_writing_loses_nothing() {
    let mut contents: String = (0..300).map(|i| format!("{}\n", old_run(i))).collect();
    contents.push_str("this line is broken\n");
    let app = Arc::new(spawn_app_with_file(&contents).await);
    let archive = app.data_path.with_file_name("archive.jsonl");
    let dry = compact(&app.data_path, &archive, &["--dry-run"]);
    assert!(
        dry.starts_with("kept 0 runs; would remove 300 older runs and 1 bad lines"),
        "{dry}"
    );
    assert!(!archive.exists());
    // Eight writers keep posting new runs while the store is compacted twice.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut stored = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let code = format!("w{w}-{i}");
                    let body = run_on(1 + (i % 28) as u32, w, json!({"date_code": code}));
                    if app.post_run(&body).await.status() == 201 {
                        stored.push(code);
                    }
                    i += 1;
                }
                stored
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let path = app.data_path.clone();
    let archive_path = archive.clone();
    let first = tokio::task::spawn_blocking(move || compact(&path, &archive_path, &[]))
        .await
        .unwrap();
    assert!(
        first.contains("removed 300 older runs and 1 bad lines"),
        "{first}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let path = app.data_path.clone();
    let archive_path = archive.clone();
    let second = tokio::task::spawn_blocking(move || compact(&path, &archive_path, &[]))
        .await
        .unwrap();
    assert!(
        second.contains("removed 0 older runs and 0 bad lines"),
        "{second}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "writers made progress: {}",
        acknowledged.len()
    );
    // The file: every acknowledged run exactly once, nothing old.
    let lines = app.file_lines();
    let codes: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["date_code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let unique: HashSet<&String> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "no line twice");
    for code in &acknowledged {
        assert!(unique.contains(code), "{code} was acknowledged but is gone");
    }
    assert!(!codes.iter().any(|c| c.starts_with("old")));
    // The archive holds what was removed.
    let archived = std::fs::read_to_string(&archive).unwrap();
    assert_eq!(archived.lines().count(), 301);
    // The running service follows the new file by itself.
    let answer = app.get_json("/get_pipeline_info?all_data=true").await;
    assert_eq!(answer["total"], codes.len());
    let served: HashSet<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date_code"].as_str().unwrap())
        .collect();
    assert!(acknowledged.iter().all(|c| served.contains(c.as_str())));
}

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

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Mode bits and owner of a file.
fn mode_and_owner(path: &std::path::Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// The store a service runs as another user must stay that user's, with
/// its mode, or that service can no longer write to it.
#[test]
fn compaction_keeps_the_data_files_mode_and_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let contents: String = (0..5).map(|i| format!("{}\n", old_run(i))).collect();
    std::fs::write(&path, format!("{contents}{}\n", run(json!({})))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    // As root, hand the file to another user first, as a service account would own it.
    let owner = if running_as_root() {
        std::os::unix::fs::chown(&path, Some(12345), Some(23456)).unwrap();
        (12345, 23456)
    } else {
        let (_, uid, gid) = mode_and_owner(&path);
        (uid, gid)
    };
    let inode_before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let report = compact(&path, &path.with_file_name("archive.jsonl"), &[]);
    assert!(report.contains("removed 5 older runs"), "{report}");
    let inode_after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    assert_ne!(inode_before, inode_after, "the file was replaced");
    assert_eq!(mode_and_owner(&path), (0o640, owner.0, owner.1));
}

/// Run as a user who cannot give the new file the old one's owner,
/// `compact` refuses and leaves the store untouched.
#[test]
fn compaction_as_another_user_refuses_and_changes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !running_as_root() {
        eprintln!("SKIPPED compaction_as_another_user_refuses_and_changes_nothing: needs root to run compact as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("runs.jsonl");
    let contents: String = (0..5).map(|i| format!("{}\n", old_run(i))).collect();
    std::fs::write(&path, &contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(12345), Some(12345)).unwrap();
    let mut command = service(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())]);
    command.args(["compact", "--older-than", "1"]);
    // SAFETY: setgid and setuid are async-signal-safe system calls.
    unsafe {
        command.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("owner") && stderr.contains("12345"),
        "says why: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
    assert_eq!(mode_and_owner(&path), (0o666, 12345, 12345));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["runs.jsonl"], "no temporary file is left behind");
}

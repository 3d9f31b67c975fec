//! A full disk, a file size limit and a failing sync, against the real
//! binary: a write that fails stores nothing, every request it carried is
//! told so (507 or 503 with `Retry-After`), and everything acknowledged
//! stays.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{run, start_service, start_service_with, ServiceProcess};

/// Makes the child limit the size of the files it writes to `bytes`, with
/// SIGXFSZ ignored so a write past the limit fails with EFBIG instead of
/// killing it (the same as `ulimit -f` under `trap '' XFSZ`).
fn limit_file_size(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure makes only async-signal-safe
    // calls (signal, setrlimit) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Writes whole records to `path` until it holds at least `bytes`; returns
/// how many.
fn prefill(path: &Path, bytes: u64) -> usize {
    let mut text = String::new();
    let mut count = 0;
    while (text.len() as u64) < bytes {
        text.push_str(&run(json!({"date_code": format!("pre-{count}")})).to_string());
        text.push('\n');
        count += 1;
    }
    std::fs::write(path, text).unwrap();
    count
}

fn bulk_of(count: usize, prefix: &str) -> Value {
    Value::Array(
        (0..count)
            .map(|i| {
                run(json!({
                    "date_code": format!("{prefix}-{i}"),
                    "_idempotency_key": format!("{prefix}-{i}"),
                }))
            })
            .collect(),
    )
}

async fn total(address: &str) -> u64 {
    let answer: Value = reqwest::get(format!("{address}/get_pipeline_info?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["total"].as_u64().unwrap()
}

/// Every line of the file is a whole record; their date codes.
fn stored_codes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("no torn line");
            value["date_code"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Posts a bulk of `count` keyed runs (`bulk-0`…) that cannot be stored
/// and insists it is refused whole: one of `statuses`, with `Retry-After`,
/// saying nothing was stored, the cause left to the log.
async fn post_bulk_refused(server: &ServiceProcess, count: usize, statuses: &[u16]) {
    let response = reqwest::Client::new()
        .post(format!("{}/pipelines/bulk", server.address))
        .json(&bulk_of(count, "bulk"))
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    assert!(statuses.contains(&code), "{code}");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("os error"),
        "the cause stays in the log: {body}"
    );
}

/// A 40-run bulk that does not fit is refused whole (507), the file exactly
/// as before, its keys free for a retry; an insert that fits still
/// succeeds.
async fn a_bulk_that_does_not_fit_is_refused_whole(
    server: &ServiceProcess,
    path: &Path,
    prefilled: usize,
) {
    let before = std::fs::read(path).unwrap();
    post_bulk_refused(server, 40, &[507]).await;
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file is as before"
    );
    assert_eq!(total(&server.address).await, prefilled as u64);
    // The refused keys are free: one of them now stores its run.
    let single = reqwest::Client::new()
        .post(format!("{}/pipelines", server.address))
        .header("idempotency-key", "bulk-7")
        .json(&run(json!({"date_code": "bulk-7"})))
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 201);
    assert!(single.headers().get("idempotent-replayed").is_none());
    let codes = stored_codes(path);
    assert_eq!(codes.len(), prefilled + 1);
    assert_eq!(codes.last().map(String::as_str), Some("bulk-7"));
    assert_eq!(total(&server.address).await, prefilled as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_past_the_file_size_limit_stores_nothing_and_answers_507() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let prefilled = prefill(&path, 60_000);
    let server = start_service_with(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())], |c| {
        limit_file_size(c, 64 * 1024)
    });
    a_bulk_that_does_not_fit_is_refused_whole(&server, &path, prefilled).await;
}

/// Many inserts share each group commit; whichever commit no longer fits
/// fails whole. What was answered 201 is exactly what the file holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserts_racing_into_a_full_file_are_stored_exactly_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let prefilled = prefill(&path, 60_000);
    let server = start_service_with(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())], |c| {
        limit_file_size(c, 64 * 1024)
    });
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (client, address) = (client.clone(), server.address.clone());
            tokio::spawn(async move {
                let code = format!("race-{i}");
                let response = client
                    .post(format!("{address}/pipelines"))
                    .json(&run(json!({"date_code": code})))
                    .send()
                    .await
                    .unwrap();
                (code, response.status().as_u16())
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    for task in tasks {
        let (code, status) = task.await.unwrap();
        match status {
            201 => {
                acknowledged.insert(code);
            }
            507 => {}
            other => panic!("{code}: {other}"),
        }
    }
    let codes = stored_codes(&path);
    let added: HashSet<String> = codes[prefilled..].iter().cloned().collect();
    assert_eq!(added, acknowledged, "stored exactly what was acknowledged");
    assert_eq!(codes.len(), prefilled + acknowledged.len(), "nothing twice");
    assert_eq!(total(&server.address).await, codes.len() as u64);
}

/// Runs a system command, its standard output on success.
fn system(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// File systems mounted for one test; unmounted (loop devices detached) in
/// reverse order when dropped, also when the test fails.
#[derive(Default)]
struct Mounts {
    points: Vec<PathBuf>,
    loop_devices: Vec<String>,
}

impl Mounts {
    fn mount(&mut self, point: &Path, args: &[&str]) -> Result<(), String> {
        std::fs::create_dir_all(point).map_err(|e| e.to_string())?;
        let mut all: Vec<&str> = args.to_vec();
        all.push(point.to_str().unwrap());
        system("mount", &all)?;
        self.points.push(point.to_owned());
        Ok(())
    }

    fn attach_loop(&mut self, image: &Path) -> Result<String, String> {
        let device = system("losetup", &["-f", "--show", image.to_str().unwrap()])?;
        self.loop_devices.push(device.clone());
        Ok(device)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for point in self.points.iter().rev() {
            let _ = system("umount", &["-l", point.to_str().unwrap()]);
        }
        for device in &self.loop_devices {
            let _ = system("losetup", &["-d", device]);
        }
    }
}

fn skipped(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason} (needs root, mount and, for the sync test, loop devices and mkfs.ext4)");
}

/// A real full disk: a 64 KiB tmpfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_onto_a_full_disk_stores_nothing_and_answers_507() {
    let dir = tempfile::tempdir().unwrap();
    let point = dir.path().join("small");
    let mut mounts = Mounts::default();
    if let Err(reason) = mounts.mount(&point, &["-t", "tmpfs", "-o", "size=64k", "tmpfs"]) {
        return skipped(
            "a_bulk_onto_a_full_disk_stores_nothing_and_answers_507",
            &reason,
        );
    }
    let path = point.join("runs.jsonl");
    let prefilled = prefill(&path, 60_000);
    let server = start_service(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())]);
    a_bulk_that_does_not_fit_is_refused_whole(&server, &path, prefilled).await;
    drop(server);
    drop(mounts);
}

/// A sync that fails for real: the store is on ext4 on a loop device whose
/// backing file lives on a tmpfs with no room left. Writes land in the page
/// cache and succeed; `fdatasync` then fails, as it does on thin-provisioned
/// or failing storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sync_stores_nothing_and_the_store_recovers() {
    const TEST: &str = "a_failing_sync_stores_nothing_and_the_store_recovers";
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let point = dir.path().join("ext4");
    let mut mounts = Mounts::default();
    let image = backing.join("disk.img");
    let filler = backing.join("filler");
    let prepared = (|| {
        mounts.mount(&backing, &["-t", "tmpfs", "-o", "size=8m", "tmpfs"])?;
        let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(64 << 20).map_err(|e| e.to_string())?;
        system(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-b",
                "4096",
                "-O",
                "^has_journal",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                image.to_str().unwrap(),
            ],
        )?;
        let device = mounts.attach_loop(&image)?;
        mounts.mount(&point, &["-o", "errors=continue", &device])
    })();
    if let Err(reason) = prepared {
        return skipped(TEST, &reason);
    }
    let path = point.join("runs.jsonl");
    let server = start_service(&[("PIPELINE_JSONL_PATH", path.to_str().unwrap())]);
    let client = reqwest::Client::new();
    let post = |code: &str| {
        client
            .post(format!("{}/pipelines", server.address))
            .json(&run(json!({"date_code": code})))
            .send()
    };
    assert_eq!(post("before").await.unwrap().status(), 201);
    // Take every free byte of the backing tmpfs: nothing new can be written
    // back to the loop device from now on.
    {
        use std::io::Write;
        let mut fill = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 64 * 1024];
        while fill.write_all(&block).is_ok() {}
    }
    // Large enough to outrun the little slack tmpfs's per-CPU accounting
    // leaves past "full" (a few hundred KiB).
    post_bulk_refused(&server, 2000, &[507, 503]).await;
    assert_eq!(
        stored_codes(&path),
        ["before"],
        "nothing of the batch stays"
    );
    assert_eq!(total(&server.address).await, 1);
    // The log names the failed sync.
    server
        .logged(|line| line.contains("sync") && line.contains("failed"))
        .await;
    // Room again: the store takes writes as before.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(post("after").await.unwrap().status(), 201);
    assert_eq!(stored_codes(&path), ["before", "after"]);
    assert_eq!(total(&server.address).await, 2);
    drop(server);
    drop(mounts);
}

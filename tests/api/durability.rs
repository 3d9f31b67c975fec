//! Crash and concurrency guarantees, against the real binary.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::helpers::{run, start_service};

async fn all_codes(address: &str) -> Vec<String> {
    let answer: Value = reqwest::get(format!("{address}/get_pipeline_info?all_data=true"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date_code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_insert_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let path_text = path.to_str().unwrap().to_owned();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..3 {
        let mut server = start_service(&[("PIPELINE_JSONL_PATH", &path_text)]);
        let address = server.address.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let round_acks = Arc::new(Mutex::new(0usize));
        let mut clients = Vec::new();
        for client_id in 0..32 {
            let (address, stop, acknowledged, round_acks) = (
                address.clone(),
                stop.clone(),
                acknowledged.clone(),
                round_acks.clone(),
            );
            clients.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let code = format!("r{round}-c{client_id}-{i}");
                    let sent = client
                        .post(format!("{address}/pipelines"))
                        .json(&run(json!({"date_code": code})))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 201 => {
                            acknowledged.lock().push(code);
                            *round_acks.lock() += 1;
                        }
                        Ok(response) => panic!("unexpected {}", response.status()),
                        Err(_) => break, // the server is gone
                    }
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while *round_acks.lock() < 200 {
            assert!(Instant::now() < deadline, "too few inserts acknowledged");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.child.kill().unwrap(); // SIGKILL, mid-traffic
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
    }
    let server = start_service(&[("PIPELINE_JSONL_PATH", &path_text)]);
    let stored = all_codes(&server.address).await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for code in &stored {
        *seen.entry(code.as_str()).or_default() += 1;
    }
    let acknowledged = acknowledged.lock().clone();
    for code in &acknowledged {
        assert_eq!(
            seen.get(code.as_str()),
            Some(&1),
            "{code} must be stored exactly once"
        );
    }
    assert!(seen.values().all(|&n| n == 1), "no record is stored twice");
    eprintln!(
        "sigkill test: {} inserts acknowledged over 3 kills, {} records stored, all acknowledged present once",
        acknowledged.len(),
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_and_a_locking_script_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.jsonl");
    let path_text = path.to_str().unwrap().to_owned();
    let first = start_service(&[("PIPELINE_JSONL_PATH", &path_text)]);
    let second = start_service(&[("PIPELINE_JSONL_PATH", &path_text)]);
    // A pipeline script appending under flock(2), as `flock FILE -c 'echo … >> FILE'` does.
    let script_path = path.clone();
    let script = std::thread::spawn(move || {
        for i in 0..100 {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&script_path)
                .unwrap();
            file.lock().unwrap();
            let line = run(json!({"date_code": format!("script-{i}")})).to_string();
            file.write_all(format!("{line}\n").as_bytes()).unwrap();
            file.unlock().unwrap();
        }
    });
    let mut clients = Vec::new();
    for client_id in 0..16 {
        let address = if client_id % 2 == 0 {
            first.address.clone()
        } else {
            second.address.clone()
        };
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..60 {
                let response = client
                    .post(format!("{address}/pipelines"))
                    .json(&run(json!({"date_code": format!("p{client_id}-{i}")})))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    script.join().unwrap();
    let expected = 16 * 60 + 100;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected, "one line per record, nothing lost");
    for line in &lines {
        let value: Value = serde_json::from_str(line).expect("no interleaved line");
        assert!(value["date_code"].is_string());
    }
    for server in [&first, &second] {
        let mut codes = all_codes(&server.address).await;
        assert_eq!(codes.len(), expected, "each process sees every record");
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), expected);
    }
}

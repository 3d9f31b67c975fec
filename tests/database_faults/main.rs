//! The database stops under load (`pg_ctl stop -m immediate`, as a crash
//! would) and starts again, while the real binary keeps serving. This
//! binary holds only this test: stopping the server would break any other
//! test sharing its cluster.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::helpers::{run_on, start_service, stored_codes};
use crate::support::postgres::{fresh_database, server};

const WRITERS: usize = 8;

/// Every answer other than 201 the writers received: status and
/// `Retry-After`.
type Refusals = Arc<Mutex<Vec<(u16, Option<String>)>>>;

/// Waits (at most `patience`) until GET `path` answers `status`.
async fn until_status(client: &reqwest::Client, url: &str, status: u16, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let answered = client.get(url).send().await.map(|r| r.status().as_u16());
        if answered.as_ref().is_ok_and(|s| *s == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {status} within {patience:?} (last: {answered:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_answers_503_while_the_database_is_down_and_recovers_without_a_restart() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let Some(cluster) = server().and_then(|s| s.cluster.as_ref()) else {
        eprintln!(
            "SKIPPED on PostgreSQL: the fault test stops and starts the server, so it needs \
the private test cluster, not PIPELINE_TEST_POSTGRES_URL"
        );
        return;
    };
    let mut service = start_service(&[
        ("HOST", "127.0.0.1"),
        ("PIPELINE_BACKEND", "postgres"),
        ("DATABASE_URL", &database.url),
        ("PIPELINE_PG_ACQUIRE_TIMEOUT_S", "1"),
        ("PIPELINE_PG_STATEMENT_TIMEOUT_S", "5"),
    ]);
    let address = service.address.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Writers post keyed runs without pause; a refused run is retried
    // with its key until it is acknowledged.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let refusals: Refusals = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, address, acknowledged, stop, refusals) = (
            client.clone(),
            address.clone(),
            acknowledged.clone(),
            stop.clone(),
            refusals.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let code = format!("w{w}-{i}");
                let body = run_on(1 + (i % 28) as u32, w as u32, json!({"date_code": code}));
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    assert!(Instant::now() < deadline, "{code} never acknowledged");
                    let answer = client
                        .post(format!("{address}/pipelines"))
                        .header("idempotency-key", format!("key-{code}"))
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status() == 201 => break,
                        Ok(response) => {
                            let retry_after = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            refusals
                                .lock()
                                .push((response.status().as_u16(), retry_after));
                        }
                        Err(error) => panic!("the service itself failed: {error}"),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acknowledged.fetch_add(1, Ordering::SeqCst);
                stored.push(code);
                i += 1;
            }
            stored
        }));
    }
    let until_acknowledged = |count: usize| {
        let acknowledged = acknowledged.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acknowledged.load(Ordering::SeqCst) < count {
                assert!(Instant::now() < deadline, "writes stopped progressing");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until_acknowledged(200).await;

    cluster.stop_immediately();
    let at_stop = acknowledged.load(Ordering::SeqCst);
    let ready = format!("{address}/ready");
    until_status(&client, &ready, 503, Duration::from_secs(10)).await;
    let health = client
        .get(format!("{address}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "health does not depend on the database"
    );
    let query = client
        .get(format!("{address}/get_pipeline_info?limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 503);
    assert!(query.headers().contains_key("retry-after"));
    let detail: Value = query.json().await.unwrap();
    assert_eq!(detail["detail"], "Database unavailable", "{detail}");
    // Long enough for every writer to be refused at least once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_outage = acknowledged.load(Ordering::SeqCst);

    cluster.start_again();
    until_status(&client, &ready, 200, Duration::from_secs(30)).await;
    until_acknowledged(during_outage + 200).await;
    stop.store(true, Ordering::SeqCst);
    let mut stored = Vec::new();
    for writer in writers {
        stored.extend(writer.await.expect("a writer finished"));
    }
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the same process served throughout"
    );

    // Refused while down: 503 with Retry-After, never another status.
    let refusals = refusals.lock().clone();
    assert!(!refusals.is_empty(), "writes were refused while down");
    for (status, retry_after) in &refusals {
        assert_eq!(*status, 503, "{refusals:?}");
        assert!(retry_after.is_some(), "{refusals:?}");
    }
    assert!(
        during_outage - at_stop <= WRITERS,
        "at most the commits in flight at the stop were acknowledged while down"
    );

    // Every acknowledged run is there exactly once, none lost in the crash.
    let copies = stored_codes(&client, &address).await;
    for code in &stored {
        assert_eq!(copies.get(code), Some(&1), "{code}");
    }
    assert_eq!(copies.len(), stored.len(), "nothing unacknowledged stored");
}

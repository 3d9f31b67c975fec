//! Three service processes on one PostgreSQL database, 32 clients posting
//! across them (half with an `Idempotency-Key`), one replica killed with
//! SIGKILL mid-load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{get_value, run_on, stored_codes};
use crate::replica;
use crate::support::postgres::fresh_database;

const CLIENTS: usize = 32;
const RUNS_PER_CLIENT: usize = 30;
/// Runs in the paged pipeline before paging starts.
const PAGED: usize = 300;

/// What a client knows about one run it posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered 201: it must be stored exactly once.
    Acknowledged,
    /// No answer (its replica died) and no key to retry with: stored
    /// once or not at all.
    Unknown,
}

/// One run's body: a start spread over August so that the replicas'
/// inserts interleave in the order, some at equal starts.
fn body(code: &str, pipeline: &str, n: usize) -> Value {
    run_on(
        1 + (n % 28) as u32,
        (n / 28 % 24) as u32,
        json!({"date_code": code, "pipeline_name": pipeline}),
    )
}

/// Posts one run, starting at replica `first`. A keyed run is retried on
/// the next replica until one answers 201 (the key makes that safe); an
/// unkeyed run is never retried (a retry could store it twice).
async fn post(
    client: &reqwest::Client,
    addresses: &[String],
    first: usize,
    body: &Value,
    key: Option<&str>,
) -> Outcome {
    for attempt in 0..30 {
        let address = &addresses[(first + attempt) % addresses.len()];
        let mut request = client.post(format!("{address}/pipelines")).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        match request.send().await {
            Ok(response) if response.status() == 201 => return Outcome::Acknowledged,
            Ok(response) if response.status().is_client_error() => {
                panic!("{body}: {}", response.status())
            }
            _ if key.is_none() => return Outcome::Unknown,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("no replica stored {body} in 30 attempts");
}

/// Follows `next_cursor` through `address` over the `paged` pipeline,
/// 25 runs a page; every date code seen, in order.
async fn page_through(client: &reqwest::Client, address: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let page =
            format!("{address}/get_pipeline_info?pipeline_name=paged&limit=25&cursor={cursor}");
        let answer = get_value(client, &page).await;
        for run in answer["results"].as_array().expect("results") {
            seen.push(run["date_code"].as_str().unwrap_or_default().to_owned());
        }
        match answer["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return seen,
        }
        // Leave the inserting replica time to land runs between pages.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("paging did not end within 1000 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_store_every_acknowledged_run_exactly_once() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let pool = [("PIPELINE_PG_POOL_MAX", "8")];
    let mut replicas: Vec<_> = (0..3).map(|_| replica(&database.url, &pool)).collect();
    let addresses: Vec<String> = replicas.iter().map(|r| r.address.clone()).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // The paged pipeline's first runs, in one bulk request.
    let seeded: Vec<Value> = (0..PAGED)
        .map(|n| body(&format!("p{n}"), "paged", n))
        .collect();
    let response = client
        .post(format!("{}/pipelines/bulk?atomic=true", addresses[0]))
        .json(&seeded)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // 32 clients across all three replicas, half their runs keyed.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (client, addresses, acknowledged) =
            (client.clone(), addresses.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..RUNS_PER_CLIENT {
                let code = format!("c{c}-{i}");
                let key = (i % 2 == 0).then(|| format!("key-{code}"));
                let run = body(&code, &format!("load-{}", c % 4), c * RUNS_PER_CLIENT + i);
                let outcome = post(&client, &addresses, c + i, &run, key.as_deref()).await;
                if outcome == Outcome::Acknowledged {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                outcomes.push((code, key.is_some(), outcome));
            }
            outcomes
        }));
    }
    // Meanwhile replica 1 keeps adding runs to the paged pipeline, at
    // starts all over its range, while replica 0 pages through it.
    let paging_done = Arc::new(AtomicBool::new(false));
    let inserter = tokio::spawn({
        let (client, address, done) = (client.clone(), addresses[1].clone(), paging_done.clone());
        async move {
            let mut added = 0;
            while !done.load(Ordering::SeqCst) && added < 5000 {
                let run = body(&format!("q{added}"), "paged", added * 7);
                let response = client
                    .post(format!("{address}/pipelines"))
                    .json(&run)
                    .send()
                    .await
                    .expect("the inserting replica answers");
                assert_eq!(response.status(), 201);
                added += 1;
            }
            added
        }
    });
    let pager = tokio::spawn({
        let (client, address) = (client.clone(), addresses[0].clone());
        async move { page_through(&client, &address).await }
    });

    // SIGKILL replica 2 once a third of the load is acknowledged.
    let total = CLIENTS * RUNS_PER_CLIENT;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.load(Ordering::SeqCst) < total / 3 {
        assert!(Instant::now() < deadline, "the load did not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replicas[2].child.kill().expect("SIGKILL replica 2");
    let at_kill = acknowledged.load(Ordering::SeqCst);

    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("a client finished"));
    }
    let paged = pager.await.expect("paging finished");
    paging_done.store(true, Ordering::SeqCst);
    let added_while_paging = inserter.await.expect("the inserter finished");
    assert!(
        at_kill < total && acknowledged.load(Ordering::SeqCst) > at_kill,
        "the kill came mid-load ({at_kill} of {total} acknowledged then)"
    );

    // Every acknowledged run is stored exactly once; every keyed run was
    // acknowledged in the end; an unanswered unkeyed run at most once.
    let stored = stored_codes(&client, &addresses[0]).await;
    for (code, keyed, outcome) in &outcomes {
        let copies = stored.get(code).copied().unwrap_or(0);
        match outcome {
            Outcome::Acknowledged => assert_eq!(copies, 1, "{code}"),
            Outcome::Unknown => {
                assert!(!keyed);
                assert!(copies <= 1, "{code} stored {copies} times")
            }
        }
    }

    // Paging lost none of the runs that were there before it began and
    // showed no run twice, while runs arrived between its pages.
    assert!(added_while_paging > 0, "runs arrived while paging");
    let mut seen = HashSet::new();
    for code in &paged {
        assert!(seen.insert(code), "{code} was shown twice");
    }
    for n in 0..PAGED {
        assert!(seen.contains(&format!("p{n}")), "p{n} was skipped");
    }

    // The surviving replicas answer the same summaries and totals.
    for path in [
        "/pipelines",
        "/pipelines/stats",
        "/get_pipeline_info?limit=1",
    ] {
        let mut bodies = Vec::new();
        for address in &addresses[..2] {
            bodies.push(get_value(&client, &format!("{address}{path}")).await);
        }
        for body in &mut bodies {
            // The one figure that depends on the moment of asking.
            for group in body["pipelines"].as_array_mut().into_iter().flatten() {
                group
                    .as_object_mut()
                    .map(|g| g.remove("seconds_since_last_run"));
            }
        }
        assert_eq!(bodies[0], bodies[1], "{path}");
    }
    let repeated: HashMap<_, _> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "stored more than once: {repeated:?}");
}

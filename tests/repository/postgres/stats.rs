//! The statistics PostgreSQL reads in one pass equal those built from every run:
//! the override of `stats` against `StatsBuilder` fed by a keyset walk of
//! `query` over the same store, on seeded varied histories.

use chrono::{DateTime, FixedOffset};
use pipeline_service::domain::digest::{GroupDigest, StatsBuilder};
use pipeline_service::domain::{FlexDateTime, PipelineInfo};
use pipeline_service::repository::postgres::PostgresRepository;
use pipeline_service::repository::{NewRun, PipelineInfoRepository, Position, RunFilter};
use serde_json::json;

use super::fresh;

/// 2025-08-01T00:00:00Z in microseconds.
const BASE_MICROS: i64 = 1_754_006_400_000_000;

/// A small deterministic generator (xorshift), so each seed is one history.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A time as written by a client: naive, or aware with `offset` seconds.
fn written(micros: i64, offset: Option<i32>) -> String {
    let instant = DateTime::from_timestamp_micros(micros).unwrap();
    match offset {
        None => instant
            .naive_utc()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string(),
        Some(seconds) => instant
            .with_timezone(&FixedOffset::east_opt(seconds).unwrap())
            .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string(),
    }
}

/// One run of group `group` starting at `start_micros`.
fn run(
    group: [Option<&str>; 4],
    start_micros: i64,
    offset: Option<i32>,
    elapsed: f64,
    rowcount: i64,
) -> PipelineInfo {
    let end_micros = start_micros + (elapsed * 1e6) as i64;
    let body = json!({
        "start_local": written(start_micros, None),
        "end_local": written(end_micros, None),
        "start_utc": written(start_micros, offset),
        "end_utc": written(end_micros, offset),
        "elapsed_seconds": elapsed,
        "elapsed_human": "some time",
        "output_file": "/data/out.csv",
        "log_file": "/data/run.log",
        "rowcount": rowcount,
        "pid": 1,
        "date_code": "d",
        "pipeline_name": group[0],
        "script_name": group[1],
        "pipeline_type": group[2],
        "environment": group[3],
    });
    PipelineInfo::parse(&body, "body").unwrap()
}

const GROUPS: [[Option<&str>; 4]; 6] = [
    [Some("etl"), Some("etl.py"), Some("batch"), Some("prod")],
    [Some("etl"), Some("etl.py"), Some("batch"), Some("dev")],
    [Some("etl"), None, Some("batch"), Some("prod")],
    [None, Some("orphan.py"), None, Some("prod")],
    [None, None, None, None],
    [Some("load"), Some("load.py"), Some("stream"), None],
];

/// A varied history: many equal starts (few distinct instants, some with
/// microseconds), naive and aware times, zero rowcounts, and a group of
/// exactly one run.
fn history(seed: u64) -> Vec<PipelineInfo> {
    let mut rng = Seeded(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut runs = Vec::new();
    for _ in 0..160 {
        let group = GROUPS[rng.below(GROUPS.len() as u64) as usize];
        // Forty instants in a day: starts collide often within a group.
        let start = BASE_MICROS + rng.below(40) as i64 * 2_160_000_007 + rng.below(3) as i64;
        let offset = match rng.below(3) {
            0 => None,
            1 => Some(0),
            _ => Some(19_800),
        };
        let elapsed = rng.below(10_000) as f64 / 7.0;
        let rowcount = [0, 0, 1, 7, 50, 1_000][rng.below(6) as usize];
        runs.push(run(group, start, offset, elapsed, rowcount));
    }
    runs.push(run(
        [Some("once"), Some("once.py"), None, Some("prod")],
        BASE_MICROS + 123_456,
        Some(-3_600),
        1.5,
        0,
    ));
    runs
}

/// Digests as the default walk builds them: every match read by keyset
/// pages of `query` (small pages, so equal starts straddle page ends).
async fn walked(repo: &PostgresRepository, filter: &RunFilter, latest: usize) -> Vec<GroupDigest> {
    let mut builder = StatsBuilder::default();
    let mut after = None;
    loop {
        let page = repo
            .query(filter, Position::from(after), 7, false)
            .await
            .unwrap();
        for run in &page.records {
            builder.add(run);
        }
        match page.next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    by_key(builder.digests(latest))
}

/// Groups in a fixed order (neither source promises one).
fn by_key(mut digests: Vec<GroupDigest>) -> Vec<GroupDigest> {
    digests.sort_by(|a, b| a.key.cmp(&b.key));
    digests
}

fn filters() -> Vec<(&'static str, RunFilter)> {
    let at = |minutes: i64| {
        Some(FlexDateTime::from_instant_micros(
            BASE_MICROS + minutes * 60_000_000,
        ))
    };
    vec![
        ("none", RunFilter::default()),
        (
            "a name",
            RunFilter {
                pipeline_name: Some("etl".into()),
                ..Default::default()
            },
        ),
        (
            "an environment",
            RunFilter {
                environment: Some("prod".into()),
                ..Default::default()
            },
        ),
        (
            "a time window",
            RunFilter {
                start_utc: at(180),
                end_utc: at(1_000),
                ..Default::default()
            },
        ),
        (
            "a rowcount bound",
            RunFilter {
                min_rowcount: Some(1),
                max_rowcount: Some(50),
                ..Default::default()
            },
        ),
        (
            "matching nothing",
            RunFilter {
                pipeline_name: Some("absent".into()),
                ..Default::default()
            },
        ),
    ]
}

#[tokio::test]
async fn database_statistics_equal_those_built_from_every_run() {
    for seed in 1..=3 {
        let Some((repo, _db)) = fresh().await else {
            return;
        };
        let runs = history(seed);
        repo.insert(runs.into_iter().map(NewRun::from).collect(), true)
            .await
            .unwrap();
        for (name, filter) in filters() {
            for latest in [0, 1, 2, 3, 5, 1_000] {
                let computed = by_key(repo.stats(&filter, latest).await.unwrap());
                let expected = walked(&repo, &filter, latest).await;
                assert_eq!(
                    computed, expected,
                    "seed {seed}, filter {name}, latest {latest}"
                );
                if name == "none" {
                    assert_eq!(computed.len(), GROUPS.len() + 1, "every group is digested");
                }
            }
        }
    }
}

/// Compares every filter's statistics with the walk's, at two `latest`s.
async fn assert_equal_to_the_walk(repo: &PostgresRepository, when: &str) {
    for (name, filter) in filters() {
        for latest in [1, 21] {
            let computed = by_key(repo.stats(&filter, latest).await.unwrap());
            let expected = walked(repo, &filter, latest).await;
            assert_eq!(computed, expected, "{when}, filter {name}, latest {latest}");
        }
    }
}

#[tokio::test]
async fn statistics_kept_between_calls_follow_every_change() {
    let Some((repo, db)) = fresh().await else {
        return;
    };
    let insert =
        |runs: Vec<PipelineInfo>| repo.insert(runs.into_iter().map(NewRun::from).collect(), true);
    insert(history(7)).await.unwrap();
    assert_equal_to_the_walk(&repo, "first read").await;
    // One named group changes: only its name's runs are read again.
    insert(vec![run(
        GROUPS[5],
        BASE_MICROS + 86_400_000_000,
        None,
        99_999.0,
        0,
    )])
    .await
    .unwrap();
    assert_equal_to_the_walk(&repo, "one named group grew").await;
    // A group without a name changes: everything is read again.
    insert(vec![run(
        GROUPS[3],
        BASE_MICROS + 86_400_000_001,
        Some(0),
        0.5,
        3,
    )])
    .await
    .unwrap();
    assert_equal_to_the_walk(&repo, "a group without a name grew").await;
    // A new group appears, then retention removes runs and whole groups.
    insert(vec![run(
        [Some("new"), None, None, None],
        BASE_MICROS - 1,
        None,
        1.0,
        1,
    )])
    .await
    .unwrap();
    assert_equal_to_the_walk(&repo, "a new group").await;
    // Another replica writes: this one's kept digests follow.
    let other = PostgresRepository::connect(&db.settings).await.unwrap();
    other
        .insert(
            vec![NewRun::from(run(GROUPS[0], BASE_MICROS + 7, None, 4.0, 0))],
            true,
        )
        .await
        .unwrap();
    assert_equal_to_the_walk(&repo, "another replica wrote").await;
    let cutoff = FlexDateTime::from_instant_micros(BASE_MICROS + 20 * 2_160_000_007);
    let report = repo.compact(cutoff, None, false).await.unwrap();
    assert!(report.old > 0 && report.kept > 0, "{report:?}");
    assert_equal_to_the_walk(&repo, "after retention").await;
    let groups = repo.stats(&RunFilter::default(), 1).await.unwrap();
    assert!(
        groups.iter().all(|g| g.key[0].as_deref() != Some("new")),
        "a group whose runs all went is gone"
    );
}

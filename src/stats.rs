//! Run statistics per pipeline: percentiles, staleness and robust anomaly
//! flags. Pure functions over the runs, so both backends share one exact
//! definition (see STUDY_GUIDE, "Run statistics").

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::digest::{GroupDigest, RunPoint};
use crate::domain::FlexDateTime;

/// How statistics are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsPolicy {
    /// A pipeline is stale when the time since its last run exceeds this
    /// many typical intervals.
    pub stale_factor: f64,
    /// Runs before the latest that form its baseline.
    pub baseline_runs: usize,
    /// Current time, microseconds since the epoch.
    pub now_micros: i64,
    /// How many of the latest runs each group lists in `recent` (0: no
    /// list, the field is left out).
    pub recent_runs: usize,
}

impl StatsPolicy {
    /// How many of each group's latest runs the statistics read: the
    /// latest (or the `recent` ones) and the baseline before each.
    pub fn latest_runs(&self) -> usize {
        self.recent_runs.max(1).saturating_add(self.baseline_runs)
    }
}

/// Per pipeline (pipeline_name, script_name, pipeline_type, environment):
/// stale, duration anomaly, rowcount anomaly — what `/metrics` exports.
pub type Flags = HashMap<[Option<String>; 4], [bool; 3]>;

pub const DEFAULT_STALE_FACTOR: f64 = 2.0;
pub const DEFAULT_BASELINE_RUNS: usize = 30;
/// Most runs `recent` may list per group.
pub const MAX_RECENT_RUNS: usize = 100;
/// Fewest runs before staleness is judged.
pub const MIN_RUNS_FOR_STALE: usize = 5;
/// Fewest baseline runs before anomalies are judged.
pub const MIN_BASELINE: usize = 5;
/// |robust z| above this is an anomaly (Iglewicz and Hoaglin's cut-off).
pub const ANOMALY_Z: f64 = 3.5;

/// Statistics of one (pipeline_name, script_name, pipeline_type,
/// environment) group.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "pipeline_name": "sales_daily",
    "script_name": "sales_daily.py",
    "pipeline_type": "batch",
    "environment": "prod",
    "runs": 412,
    "last_run": "2025-08-08T12:07:01Z",
    "p50_elapsed_seconds": 1290.5,
    "p95_elapsed_seconds": 1843.2,
    "p99_elapsed_seconds": 2410.0,
    "max_elapsed_seconds": 2702.9,
    "median_rowcount": 8120.0,
    "zero_row_runs": 3,
    "typical_interval_seconds": 86400.0,
    "seconds_since_last_run": 3605.0,
    "stale": false,
    "duration_z": 0.42,
    "duration_anomaly": false,
    "rowcount_z": -0.18,
    "rowcount_anomaly": false,
    "recent": [
        {"start_utc": "2025-08-07T12:06:55Z", "elapsed_seconds": 1301.0, "rowcount": 8090,
         "duration_anomaly": false, "rowcount_anomaly": false},
        {"start_utc": "2025-08-08T12:07:01Z", "elapsed_seconds": 1325.0, "rowcount": 8543,
         "duration_anomaly": false, "rowcount_anomaly": false}
    ]
}))]
pub struct PipelineStats {
    pub pipeline_name: Option<String>,
    pub script_name: Option<String>,
    pub pipeline_type: Option<String>,
    pub environment: Option<String>,
    pub runs: u64,
    /// `start_utc` of the latest run.
    #[schema(value_type = crate::domain::datetime::schema::DateTime)]
    pub last_run: FlexDateTime,
    /// Percentiles of `elapsed_seconds` (linear interpolation between
    /// closest ranks, as PERCENTILE_CONT and numpy do).
    pub p50_elapsed_seconds: f64,
    pub p95_elapsed_seconds: f64,
    pub p99_elapsed_seconds: f64,
    pub max_elapsed_seconds: f64,
    pub median_rowcount: f64,
    /// Runs that produced no rows.
    pub zero_row_runs: u64,
    /// Median gap between consecutive starts; null with fewer than 2 runs.
    pub typical_interval_seconds: Option<f64>,
    /// Seconds since the latest run started.
    pub seconds_since_last_run: f64,
    /// The latest run is overdue: at least 5 runs and more than
    /// `PIPELINE_STALE_FACTOR` typical intervals since it started.
    pub stale: bool,
    /// Robust z-score of the latest run's duration against the baseline
    /// (null when the baseline is too short or has no spread).
    pub duration_z: Option<f64>,
    pub duration_anomaly: bool,
    pub rowcount_z: Option<f64>,
    pub rowcount_anomaly: bool,
    /// Only with `recent=N`: the latest N runs, oldest first, each judged
    /// against the baseline before it (so the last entry repeats the
    /// group's own anomaly flags).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub recent: Option<Vec<RecentRun>>,
}

/// One of a group's latest runs, as sparklines and charts draw it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecentRun {
    #[schema(value_type = crate::domain::datetime::schema::DateTime)]
    pub start_utc: FlexDateTime,
    #[schema(example = 1325.0)]
    pub elapsed_seconds: f64,
    #[schema(example = 8543)]
    pub rowcount: i64,
    /// The duration is an outlier against the baseline runs before this one.
    pub duration_anomaly: bool,
    /// The row count is an outlier against the baseline runs before this one.
    pub rowcount_anomaly: bool,
}

/// The interpolated median, by selection rather than sorting (the
/// baselines of a scrape are many small medians).
fn median(mut values: Vec<f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return upper;
    }
    let below = lower
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper);
    below + (upper - below) * 0.5
}

/// Whether `latest` is an outlier among `baseline`, and its robust z-score
/// `0.6745 (x − median) / MAD`. With no spread (MAD 0) there is no score,
/// and any departure from the median is an anomaly: a pipeline that always
/// loads 500 rows and suddenly loads 0 must be flagged.
pub fn robust_anomaly(baseline: &[f64], latest: f64) -> (Option<f64>, bool) {
    if baseline.len() < MIN_BASELINE {
        return (None, false);
    }
    let center = median(baseline.to_vec());
    let mad = median(baseline.iter().map(|v| (v - center).abs()).collect());
    if mad == 0.0 {
        return (None, latest != center);
    }
    let z = 0.6745 * (latest - center) / mad;
    (Some(z), z.abs() > ANOMALY_Z)
}

/// Every group's statistics, latest run first like `/pipelines`.
pub fn finish(digests: Vec<GroupDigest>, policy: StatsPolicy) -> Vec<PipelineStats> {
    let mut all: Vec<PipelineStats> = digests
        .into_iter()
        .map(|digest| group_stats(digest, policy))
        .collect();
    all.sort_by(|a, b| {
        b.last_run
            .instant_micros()
            .cmp(&a.last_run.instant_micros())
            .then_with(|| a.pipeline_name.cmp(&b.pipeline_name))
            .then_with(|| a.script_name.cmp(&b.script_name))
            .then_with(|| a.pipeline_type.cmp(&b.pipeline_type))
            .then_with(|| a.environment.cmp(&b.environment))
    });
    all
}

fn group_stats(digest: GroupDigest, policy: StatsPolicy) -> PipelineStats {
    let runs = &digest.latest;
    let latest = runs[runs.len() - 1];
    let since = (policy.now_micros - latest.0) as f64 / 1e6;
    let stale = digest.runs >= MIN_RUNS_FOR_STALE as u64
        && digest
            .typical_interval_seconds
            .is_some_and(|t| t > 0.0 && since > policy.stale_factor * t);
    let [(duration_z, duration_anomaly), (rowcount_z, rowcount_anomaly)] =
        judge(runs, runs.len() - 1, policy.baseline_runs);
    let recent = (policy.recent_runs > 0).then(|| {
        let first = runs.len().saturating_sub(policy.recent_runs);
        (first..runs.len())
            .map(|index| {
                let [(_, duration_anomaly), (_, rowcount_anomaly)] =
                    judge(runs, index, policy.baseline_runs);
                let (_, elapsed_seconds, rowcount, start_utc) = runs[index];
                RecentRun {
                    start_utc,
                    elapsed_seconds,
                    rowcount,
                    duration_anomaly,
                    rowcount_anomaly,
                }
            })
            .collect()
    });
    let [pipeline_name, script_name, pipeline_type, environment] =
        digest.key.map(|v| v.as_deref().map(str::to_owned));
    let [p50, p95, p99, max] = digest.elapsed;
    PipelineStats {
        pipeline_name,
        script_name,
        pipeline_type,
        environment,
        runs: digest.runs,
        last_run: latest.3,
        p50_elapsed_seconds: p50,
        p95_elapsed_seconds: p95,
        p99_elapsed_seconds: p99,
        max_elapsed_seconds: max,
        median_rowcount: digest.median_rowcount,
        zero_row_runs: digest.zero_row_runs,
        typical_interval_seconds: digest.typical_interval_seconds,
        seconds_since_last_run: since,
        stale,
        duration_z,
        duration_anomaly,
        rowcount_z,
        rowcount_anomaly,
        recent,
    }
}

/// The robust z-scores and anomaly flags of run `index` (oldest-first
/// order) for duration and row count, against up to `baseline_runs` runs
/// before it.
fn judge(runs: &[RunPoint], index: usize, baseline_runs: usize) -> [(Option<f64>, bool); 2] {
    let baseline = &runs[index.saturating_sub(baseline_runs)..index];
    let (_, elapsed, rows, _) = runs[index];
    [
        robust_anomaly(&baseline.iter().map(|r| r.1).collect::<Vec<_>>(), elapsed),
        robust_anomaly(
            &baseline.iter().map(|r| r.2 as f64).collect::<Vec<_>>(),
            rows as f64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::digest::{percentile, sorted, StatsBuilder};
    use crate::domain::PipelineInfo;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let values = sorted((1..=10).map(f64::from).collect());
        let values = values.as_slice();
        assert_eq!(percentile(values, 0.5), 5.5);
        assert!((percentile(values, 0.95) - 9.55).abs() < 1e-9);
        assert!((percentile(values, 0.99) - 9.91).abs() < 1e-9);
        assert_eq!(percentile(&[7.0][..], 0.99), 7.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
        assert!(median(Vec::new()).is_nan());
        for n in 1..40 {
            let values: Vec<f64> = (0..n).map(|i| f64::from((i * 7919) % 23)).collect();
            assert_eq!(
                median(values.clone()),
                percentile(sorted(values).as_slice(), 0.5),
                "{n}"
            );
        }
    }

    #[test]
    fn robust_z_flags_outliers_and_departures_from_a_constant() {
        let baseline = [10.0, 11.0, 9.0, 10.0, 12.0, 8.0, 10.0];
        // median 10, MAD 1: z = 0.6745 × (x − 10).
        let (z, flagged) = robust_anomaly(&baseline, 16.0);
        assert!((z.unwrap() - 4.047).abs() < 1e-3);
        assert!(flagged);
        let (z, flagged) = robust_anomaly(&baseline, 15.0);
        assert!((z.unwrap() - 3.3725).abs() < 1e-4);
        assert!(!flagged);
        assert_eq!(robust_anomaly(&[500.0; 6], 0.0), (None, true));
        assert_eq!(robust_anomaly(&[500.0; 6], 500.0), (None, false));
        assert_eq!(robust_anomaly(&[1.0, 2.0, 3.0, 4.0], 100.0), (None, false));
    }

    #[test]
    fn recent_runs_are_judged_against_the_runs_before_each() {
        let mut builder = StatsBuilder::default();
        // Hourly runs of 100 s and 500 rows, except an outlier in the
        // middle (run 7: 400 s) and an empty latest run (run 9).
        for hour in 0..10u32 {
            let elapsed = if hour == 7 {
                400.0
            } else {
                100.0 + f64::from(hour % 3)
            };
            let rows = if hour == 9 { 0 } else { 500 };
            let record = serde_json::json!({
                "start_local": format!("2025-08-01T{hour:02}:00:00"),
                "end_local": format!("2025-08-01T{hour:02}:30:00"),
                "start_utc": format!("2025-08-01T{hour:02}:00:00Z"),
                "end_utc": format!("2025-08-01T{hour:02}:30:00Z"),
                "elapsed_seconds": elapsed, "elapsed_human": "x",
                "output_file": "/o", "rowcount": rows, "log_file": "/l",
                "pid": 1, "date_code": format!("{hour}"), "pipeline_name": "p",
            });
            builder.add(&PipelineInfo::parse(&record, "body").unwrap());
        }
        let policy = StatsPolicy {
            stale_factor: DEFAULT_STALE_FACTOR,
            baseline_runs: DEFAULT_BASELINE_RUNS,
            now_micros: 0,
            recent_runs: 4,
        };
        let stats = finish(builder.digests(policy.latest_runs()), policy).remove(0);
        let recent = stats.recent.expect("asked for");
        let starts: Vec<String> = recent.iter().map(|r| r.start_utc.to_string()).collect();
        assert_eq!(
            starts,
            [
                "2025-08-01T06:00:00Z",
                "2025-08-01T07:00:00Z",
                "2025-08-01T08:00:00Z",
                "2025-08-01T09:00:00Z"
            ],
            "the latest four, oldest first"
        );
        let flags: Vec<(bool, bool)> = recent
            .iter()
            .map(|r| (r.duration_anomaly, r.rowcount_anomaly))
            .collect();
        assert_eq!(
            flags,
            [(false, false), (true, false), (false, false), (false, true)]
        );
        assert_eq!(recent[3].rowcount, 0);
        let last = &recent[3];
        assert_eq!(
            (last.duration_anomaly, last.rowcount_anomaly),
            (stats.duration_anomaly, stats.rowcount_anomaly)
        );
    }
}

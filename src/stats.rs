//! Run statistics per pipeline: percentiles, staleness and robust anomaly
//! flags. Pure functions over the runs, so both backends share one exact
//! definition (see STUDY_GUIDE, "Run statistics").

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{FlexDateTime, PipelineInfo};

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
}

/// Per pipeline (pipeline_name, script_name, pipeline_type, environment):
/// stale, duration anomaly, rowcount anomaly — what `/metrics` exports.
pub type Flags = HashMap<[Option<String>; 4], [bool; 3]>;

pub const DEFAULT_STALE_FACTOR: f64 = 2.0;
pub const DEFAULT_BASELINE_RUNS: usize = 30;
/// Fewest runs before staleness is judged.
pub const MIN_RUNS_FOR_STALE: usize = 5;
/// Fewest baseline runs before anomalies are judged.
pub const MIN_BASELINE: usize = 5;
/// |robust z| above this is an anomaly (Iglewicz and Hoaglin's cut-off).
pub const ANOMALY_Z: f64 = 3.5;

/// Statistics of one (pipeline_name, script_name, pipeline_type,
/// environment) group.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PipelineStats {
    pub pipeline_name: Option<String>,
    pub script_name: Option<String>,
    pub pipeline_type: Option<String>,
    pub environment: Option<String>,
    pub runs: u64,
    /// `start_utc` of the latest run.
    #[schema(value_type = String, format = DateTime)]
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
}

/// Values read by rank in ascending order: a sorted slice, or a store's
/// order-statistic structure kept up to date as runs arrive. Percentiles
/// are defined once, over this, for both.
pub trait Ranked {
    fn count(&self) -> usize;
    /// The value at `rank` (0-based, ascending; `rank < count()`).
    fn at(&self, rank: usize) -> f64;
}

impl Ranked for [f64] {
    fn count(&self) -> usize {
        self.len()
    }

    fn at(&self, rank: usize) -> f64 {
        self[rank]
    }
}

/// The linear-interpolation percentile `q` (0–1) of values read by rank.
pub fn percentile(values: &(impl Ranked + ?Sized), q: f64) -> f64 {
    match values.count() {
        0 => f64::NAN,
        1 => values.at(0),
        n => {
            let rank = q * (n - 1) as f64;
            let low = rank.floor() as usize;
            let high = rank.ceil() as usize;
            let (below, above) = (values.at(low), values.at(high));
            below + (above - below) * (rank - low as f64)
        }
    }
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
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

/// A group's classification values (pipeline_name, script_name,
/// pipeline_type, environment).
pub type GroupKey = [Option<Arc<str>>; 4];

/// One run as the statistics see it: start instant (microseconds), duration
/// in seconds, rows.
pub type RunPoint = (i64, f64, i64);

/// Seconds from one start instant to the next (consecutive runs of a group).
pub fn gap_seconds(earlier_micros: i64, later_micros: i64) -> f64 {
    (later_micros - earlier_micros) as f64 / 1e6
}

/// Everything the statistics of one group are computed from: counts, order
/// statistics and the latest runs. A store can keep each part up to date
/// as runs arrive; `StatsBuilder` derives them from the runs themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDigest {
    pub key: GroupKey,
    pub runs: u64,
    pub zero_row_runs: u64,
    /// `start_utc` of the latest run, as stored.
    pub last_run: FlexDateTime,
    /// p50, p95 and p99 of `elapsed_seconds`, and its maximum.
    pub elapsed: [f64; 4],
    pub median_rowcount: f64,
    /// Median gap between consecutive starts; `None` with a single run.
    pub typical_interval_seconds: Option<f64>,
    /// The latest runs, oldest first: the last is the latest run and those
    /// before it its baseline. Runs are ordered by start, equal starts in
    /// reverse insertion order (the answer order read backwards).
    pub latest: Vec<RunPoint>,
}

/// A group's sorted values, by rank.
pub struct GroupOrderStatistics<'a, D: ?Sized, R: ?Sized, G: ?Sized> {
    pub durations: &'a D,
    pub rowcounts: &'a R,
    /// Gaps between consecutive starts, in seconds.
    pub gaps: &'a G,
}

impl GroupDigest {
    /// The digest of a group from its order statistics; `latest` as in
    /// the field, `zero_row_runs` the runs that loaded nothing. The group
    /// has at least one run.
    pub fn from_ranked<D, R, G>(
        key: GroupKey,
        ranked: GroupOrderStatistics<'_, D, R, G>,
        zero_row_runs: u64,
        last_run: FlexDateTime,
        latest: Vec<RunPoint>,
    ) -> Self
    where
        D: Ranked + ?Sized,
        R: Ranked + ?Sized,
        G: Ranked + ?Sized,
    {
        let durations = ranked.durations;
        let runs = durations.count();
        Self {
            key,
            runs: runs as u64,
            zero_row_runs,
            last_run,
            elapsed: [
                percentile(durations, 0.5),
                percentile(durations, 0.95),
                percentile(durations, 0.99),
                durations.at(runs - 1),
            ],
            median_rowcount: percentile(ranked.rowcounts, 0.5),
            typical_interval_seconds: (ranked.gaps.count() > 0)
                .then(|| percentile(ranked.gaps, 0.5)),
            latest,
        }
    }

    /// The digest of a group's runs, given oldest first (see `latest`).
    pub fn of_runs(
        key: GroupKey,
        runs: &[RunPoint],
        last_run: FlexDateTime,
        latest: usize,
    ) -> Self {
        let durations = sorted(runs.iter().map(|r| r.1).collect());
        let rowcounts = sorted(runs.iter().map(|r| r.2 as f64).collect());
        let gaps = sorted(
            runs.windows(2)
                .map(|w| gap_seconds(w[0].0, w[1].0))
                .collect(),
        );
        let zero_row_runs = runs.iter().filter(|r| r.2 == 0).count() as u64;
        let tail = runs[runs.len().saturating_sub(latest)..].to_vec();
        Self::from_ranked(
            key,
            GroupOrderStatistics {
                durations: durations.as_slice(),
                rowcounts: rowcounts.as_slice(),
                gaps: gaps.as_slice(),
            },
            zero_row_runs,
            last_run,
            tail,
        )
    }
}

/// Collects runs (in answer order: latest start first, equal starts in
/// insertion order) and digests every group.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    /// foldhash: every run is looked up here (a `/metrics` scrape walks all
    /// of them), and the default hasher made that the scrape's main cost.
    groups: HashMap<GroupKey, Vec<(RunPoint, FlexDateTime)>, foldhash::fast::RandomState>,
}

impl StatsBuilder {
    pub fn add(&mut self, run: &PipelineInfo) {
        let point = (
            (
                run.start_utc().instant_micros(),
                run.elapsed_seconds(),
                run.rowcount(),
            ),
            run.start_utc(),
        );
        // Look up by reference; the key is cloned only for a new group.
        match self.groups.get_mut(run.classes()) {
            Some(points) => points.push(point),
            None => {
                self.groups.insert(run.classes().clone(), vec![point]);
            }
        }
    }

    /// One digest per group, with its `latest` latest runs.
    pub fn digests(self, latest: usize) -> Vec<GroupDigest> {
        self.groups
            .into_iter()
            .map(|(key, mut runs)| {
                // Oldest first; equal starts keep the order they were read
                // in reversed, which the stable sort preserves.
                runs.reverse();
                runs.sort_by_key(|r| r.0 .0);
                let last_run = runs[runs.len() - 1].1;
                let points: Vec<RunPoint> = runs.into_iter().map(|r| r.0).collect();
                GroupDigest::of_runs(key, &points, last_run, latest)
            })
            .collect()
    }
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
    let previous = &runs[..runs.len() - 1];
    let baseline = &previous[previous.len().saturating_sub(policy.baseline_runs)..];
    let (duration_z, duration_anomaly) =
        robust_anomaly(&baseline.iter().map(|r| r.1).collect::<Vec<_>>(), latest.1);
    let (rowcount_z, rowcount_anomaly) = robust_anomaly(
        &baseline.iter().map(|r| r.2 as f64).collect::<Vec<_>>(),
        latest.2 as f64,
    );
    let [pipeline_name, script_name, pipeline_type, environment] =
        digest.key.map(|v| v.as_deref().map(str::to_owned));
    let [p50, p95, p99, max] = digest.elapsed;
    PipelineStats {
        pipeline_name,
        script_name,
        pipeline_type,
        environment,
        runs: digest.runs,
        last_run: digest.last_run,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

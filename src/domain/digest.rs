//! What the statistics of a group of runs are computed from: its counts,
//! its order statistics (values by rank) and its latest runs. A store may
//! keep these up to date as runs arrive; `StatsBuilder` derives them from
//! the runs themselves, which any store can hand out. Judging them
//! (percentiles into staleness and anomaly flags) is `crate::stats`.

use std::collections::HashMap;
use std::sync::Arc;

use super::{FlexDateTime, PipelineInfo};

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

pub(crate) fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// A group's classification values (pipeline_name, script_name,
/// pipeline_type, environment).
pub type GroupKey = [Option<Arc<str>>; 4];

/// One run as the statistics see it: start instant (microseconds), duration
/// in seconds, rows, and its `start_utc` as stored.
pub type RunPoint = (i64, f64, i64, FlexDateTime);

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
    /// p50, p95 and p99 of `elapsed_seconds`, and its maximum.
    pub elapsed: [f64; 4],
    pub median_rowcount: f64,
    /// Median gap between consecutive starts; `None` with a single run.
    pub typical_interval_seconds: Option<f64>,
    /// The latest runs, oldest first (never empty): the last is the latest
    /// run, and each is judged against those before it. Runs are ordered by start, equal starts in
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
    pub fn of_runs(key: GroupKey, runs: &[RunPoint], latest: usize) -> Self {
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
            tail,
        )
    }
}

/// Collects runs in any order, each with its insertion order value, and
/// digests every group: oldest first, equal starts latest-inserted first
/// (the answer order read backwards). A database hands runs out fastest
/// unsorted; `StatsBuilder` feeds it runs in the answer order.
#[derive(Debug, Default)]
pub struct UnorderedStatsBuilder {
    /// foldhash: every run is looked up here (a `/metrics` scrape walks all
    /// of them), and the default hasher made that the scrape's main cost.
    groups: HashMap<GroupKey, Vec<(RunPoint, i64)>, foldhash::fast::RandomState>,
}

impl UnorderedStatsBuilder {
    pub fn add(&mut self, key: &GroupKey, point: RunPoint, seq: i64) {
        // Look up by reference; the key is cloned only for a new group.
        match self.groups.get_mut(key) {
            Some(points) => points.push((point, seq)),
            None => {
                self.groups.insert(key.clone(), vec![(point, seq)]);
            }
        }
    }

    /// One digest per group, with its `latest` latest runs.
    pub fn digests(self, latest: usize) -> Vec<GroupDigest> {
        self.groups
            .into_iter()
            .map(|(key, mut runs)| {
                runs.sort_unstable_by_key(|(point, seq)| (point.0, std::cmp::Reverse(*seq)));
                let runs: Vec<RunPoint> = runs.into_iter().map(|(point, _)| point).collect();
                GroupDigest::of_runs(key, &runs, latest)
            })
            .collect()
    }
}

/// Collects runs in answer order (latest start first, equal starts in
/// insertion order) and digests every group.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    runs: UnorderedStatsBuilder,
    /// Runs added so far. Among equal starts the answer order is the
    /// insertion order, so the arrival count orders them as insertion does.
    added: i64,
}

impl StatsBuilder {
    pub fn add(&mut self, run: &PipelineInfo) {
        let point = (
            run.start_utc().instant_micros(),
            run.elapsed_seconds(),
            run.rowcount(),
            run.start_utc(),
        );
        self.runs.add(run.classes(), point, self.added);
        self.added += 1;
    }

    /// One digest per group, with its `latest` latest runs.
    pub fn digests(self, latest: usize) -> Vec<GroupDigest> {
        self.runs.digests(latest)
    }
}

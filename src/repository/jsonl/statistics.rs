//! Per group (pipeline_name, script_name, pipeline_type, environment): the
//! aggregates `/pipelines` reports and the order statistics
//! `/pipelines/stats` reads, kept up to date as each run arrives, so
//! neither ever walks the runs.
//!
//! The statistics need, per group, its durations, row counts and the gaps
//! between consecutive starts as sorted multisets (percentiles and medians
//! are values at given ranks) and its latest runs in start order. An
//! arriving run inserts its duration and row count; it also lands between
//! two runs (or after the last), so the gap between those two is replaced by
//! the two gaps around it. Every percentile stays exact.

use std::sync::Arc;

use super::ordered::{ChunkedList, SortedValues, Synopses};
use super::store::{Columns, RunStore};
use crate::domain::digest::{self, GroupDigest, GroupOrderStatistics, Ranked, RunPoint};
use crate::domain::PipelineSummary;
use crate::repository::PipelineActivity;

/// A group's runs always keep synopses: a query selecting a few groups
/// counts their row-count and end bounds chunk by chunk.
const RUNS_SYNOPSES: Synopses = Synopses::From(0);

/// A duration as a number whose integer order is `f64::total_cmp`'s.
fn duration_key(seconds: f64) -> i64 {
    flip_negatives(seconds.to_bits() as i64)
}

/// The inverse of `duration_key`.
fn duration_of(key: i64) -> f64 {
    f64::from_bits(flip_negatives(key) as u64)
}

/// Inverts every bit but the sign of a negative number (its own inverse):
/// what makes the bits of floats sort as the floats do.
fn flip_negatives(bits: i64) -> i64 {
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The runs of one group and what is known about them.
#[derive(Debug, Clone)]
pub struct GroupRuns {
    /// Positions in the store's start order (equal starts, later insertion
    /// first).
    runs: ChunkedList,
    /// `duration_key`s of `elapsed_seconds`.
    durations: SortedValues,
    rowcounts: SortedValues,
    /// Microseconds between consecutive starts.
    gaps: SortedValues,
    zero_rows: u64,
    /// The first position of the group in the file: groups whose last runs
    /// tie are listed in order of first appearance.
    first_seen: u32,
    duration_sum: f64,
    duration_count: u64,
    rowcount_sum: i128,
    rowcount_count: u64,
}

impl GroupRuns {
    pub fn new(first_seen: u32) -> Self {
        Self {
            runs: ChunkedList::new(RUNS_SYNOPSES),
            durations: SortedValues::default(),
            rowcounts: SortedValues::default(),
            gaps: SortedValues::default(),
            zero_rows: 0,
            first_seen,
            duration_sum: 0.0,
            duration_count: 0,
            rowcount_sum: 0,
            rowcount_count: 0,
        }
    }

    /// The group of the runs at `positions`, given in start order. The
    /// means are left to `add_to_means`, which must see the runs in file
    /// order to sum exactly as the incremental path does.
    pub fn build(positions: &[u32], columns: &Columns<'_>) -> Self {
        let mut group = Self::new(positions.iter().copied().min().unwrap_or(0));
        group.runs = ChunkedList::from_sorted(positions, RUNS_SYNOPSES, columns);
        let mut durations: Vec<i64> = positions
            .iter()
            .map(|&p| duration_key(columns.durations[p as usize]))
            .collect();
        durations.sort_unstable();
        group.durations = SortedValues::from_sorted(&durations);
        let mut rowcounts: Vec<i64> = positions
            .iter()
            .map(|&p| columns.rowcounts[p as usize])
            .collect();
        rowcounts.sort_unstable();
        group.zero_rows = rowcounts.iter().filter(|&&r| r == 0).count() as u64;
        group.rowcounts = SortedValues::from_sorted(&rowcounts);
        let mut gaps: Vec<i64> = positions
            .windows(2)
            .map(|w| columns.starts[w[1] as usize] - columns.starts[w[0] as usize])
            .collect();
        gaps.sort_unstable();
        group.gaps = SortedValues::from_sorted(&gaps);
        group
    }

    /// Adds the runs at `positions`, given in start order (`before` being
    /// that order, as in `ChunkedList::insert_sorted`). Each stretch of
    /// them landing between two runs (or past an end) replaces the gap
    /// between those two by the gaps along the stretch. The means are left
    /// to `add_to_means`, which must see the runs in file order.
    pub fn add_sorted(
        &mut self,
        positions: &[u32],
        before: impl Fn(u32, u32) -> bool,
        columns: &Columns<'_>,
    ) {
        let start_of = |p: u32| columns.starts[p as usize];
        let landings = self.runs.insert_sorted(positions, before, columns);
        let mut replaced = Vec::new();
        let mut gaps = Vec::with_capacity(positions.len() + landings.len());
        for landing in landings {
            if let (Some(previous), Some(next)) = (landing.previous, landing.next) {
                replaced.push(start_of(next) - start_of(previous));
            }
            let along: Vec<u32> = landing
                .previous
                .into_iter()
                .chain(positions[landing.entries].iter().copied())
                .chain(landing.next)
                .collect();
            gaps.extend(along.windows(2).map(|w| start_of(w[1]) - start_of(w[0])));
        }
        self.gaps.remove_all(replaced);
        self.gaps.insert_all(gaps);
        self.durations.insert_all(
            positions
                .iter()
                .map(|&p| duration_key(columns.durations[p as usize]))
                .collect(),
        );
        let rowcounts: Vec<i64> = positions
            .iter()
            .map(|&p| columns.rowcounts[p as usize])
            .collect();
        self.zero_rows += rowcounts.iter().filter(|&&r| r == 0).count() as u64;
        self.rowcounts.insert_all(rowcounts);
    }

    /// Counts a run into the `/pipelines` means (of the values above zero).
    pub fn add_to_means(&mut self, elapsed_seconds: f64, rowcount: i64) {
        if elapsed_seconds > 0.0 {
            self.duration_sum += elapsed_seconds;
            self.duration_count += 1;
        }
        if rowcount > 0 {
            self.rowcount_sum += i128::from(rowcount);
            self.rowcount_count += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// The group's runs in start order, with synopses like the posting
    /// lists': queries whose text filters select a few groups read these.
    pub fn runs(&self) -> &ChunkedList {
        &self.runs
    }

    /// How many of the group's runs have a row count in `low..=high`.
    pub fn rowcounts_within(&self, low: i64, high: i64) -> usize {
        self.rowcounts.count_within(low, high)
    }

    pub fn first_seen(&self) -> u32 {
        self.first_seen
    }

    /// The latest run: the greatest start, and of equal ones the first
    /// stored.
    pub fn latest(&self) -> Option<u32> {
        self.runs.iter_rev_from_skipping(0, 0).next()
    }

    pub fn summary(&self, key: &[Option<Arc<str>>; 4], store: &RunStore) -> PipelineSummary {
        let [pipeline_name, script_name, pipeline_type, environment] =
            key.clone().map(|v| v.as_deref().map(str::to_owned));
        PipelineSummary {
            pipeline_name,
            script_name,
            pipeline_type,
            environment,
            total_runs: self.len() as u64,
            last_run: self.latest().map(|p| store.start_utc(p)),
            avg_duration: mean(self.duration_sum, self.duration_count),
            avg_rowcount: mean(self.rowcount_sum as f64, self.rowcount_count),
        }
    }

    pub fn activity(
        &self,
        key: &[Option<Arc<str>>; 4],
        store: &RunStore,
    ) -> Option<PipelineActivity> {
        let latest = self.latest()?;
        let columns = store.columns();
        Some(PipelineActivity {
            key: key.clone().map(|v| v.as_deref().map(str::to_owned)),
            total_runs: self.len() as u64,
            last_run: store.start_utc(latest),
            last_elapsed_seconds: columns.durations[latest as usize],
            last_rowcount: columns.rowcounts[latest as usize],
        })
    }

    /// The statistics' inputs, with the `latest` latest runs.
    pub fn digest(
        &self,
        key: &[Option<Arc<str>>; 4],
        store: &RunStore,
        latest: usize,
    ) -> Option<GroupDigest> {
        let mut tail: Vec<RunPoint> = self
            .runs
            .iter_rev_from_skipping(0, 0)
            .take(latest.max(1))
            .map(|p| run_point(store, p))
            .collect();
        if tail.is_empty() {
            return None;
        }
        tail.reverse();
        Some(GroupDigest::from_ranked(
            key.clone(),
            GroupOrderStatistics {
                durations: &Durations(&self.durations),
                rowcounts: &Rowcounts(&self.rowcounts),
                gaps: &Gaps(&self.gaps),
            },
            self.zero_rows,
            tail,
        ))
    }

    pub fn bytes(&self) -> usize {
        self.runs.bytes() + self.durations.bytes() + self.rowcounts.bytes() + self.gaps.bytes()
    }
}

/// The run at `position` as the statistics see it.
pub fn run_point(store: &RunStore, position: u32) -> RunPoint {
    let i = position as usize;
    let columns = store.columns();
    (
        columns.starts[i],
        columns.durations[i],
        columns.rowcounts[i],
        store.start_utc(position),
    )
}

fn mean(sum: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}

struct Durations<'a>(&'a SortedValues);
struct Rowcounts<'a>(&'a SortedValues);
struct Gaps<'a>(&'a SortedValues);

impl Ranked for Durations<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn at(&self, rank: usize) -> f64 {
        duration_of(self.0.at(rank).unwrap_or_default())
    }
}

impl Ranked for Rowcounts<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn at(&self, rank: usize) -> f64 {
        self.0.at(rank).unwrap_or_default() as f64
    }
}

impl Ranked for Gaps<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn at(&self, rank: usize) -> f64 {
        digest::gap_seconds(0, self.0.at(rank).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_keys_order_like_total_cmp_and_come_back() {
        let mut values = vec![
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -0.0,
            0.0,
            1e-310,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        values.reverse();
        let mut keys: Vec<i64> = values.iter().map(|&v| duration_key(v)).collect();
        keys.sort_unstable();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let back: Vec<u64> = keys.iter().map(|&k| duration_of(k).to_bits()).collect();
        assert_eq!(back, sorted.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}

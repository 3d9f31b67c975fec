//! The in-memory view of a JSON Lines file: every valid record once (by
//! column, in `RunStore`), an ordering by start time, a posting list per
//! value of each text filter, and per-group aggregates and order statistics
//! kept up to date as records arrive, so queries never re-read or re-parse
//! the file. A load builds all of it on every core; a record that arrives
//! later is placed in each structure directly.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::ordered::{ChunkedList, Residual, Synopses};
use super::parallel;
use super::statistics::{run_point, GroupRuns};
use super::store::{FastMap, RunStore, StoreBytes};
use crate::domain::digest::{GroupDigest, RunPoint};
use crate::domain::{PipelineActivity, PipelineInfo, PipelineSummary};
use crate::repository::{Position, QueryPage, RunFilter, RunKey};

/// What the parts of an index occupy, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexBytes {
    pub store: StoreBytes,
    /// The start ordering and the posting lists, with their synopses.
    pub orderings: usize,
    /// Per-group runs and order statistics.
    pub statistics: usize,
}

/// What `RunIndex::stats` found: digests, or the runs to digest.
pub enum StatsInputs {
    Digests(Vec<GroupDigest>),
    Runs(Vec<GroupRunPoints>),
}

/// A group's matching runs, oldest first.
pub struct GroupRunPoints {
    key: [Option<Arc<str>>; 4],
    points: Vec<RunPoint>,
}

impl StatsInputs {
    pub fn digests(self, latest: usize) -> Vec<GroupDigest> {
        match self {
            StatsInputs::Digests(digests) => digests,
            StatsInputs::Runs(groups) => {
                parallel::map(groups, |g| GroupDigest::of_runs(g.key, &g.points, latest))
            }
        }
    }
}

/// Records plus the indexes queries use.
#[derive(Debug)]
pub struct RunIndex {
    /// Tells this index from every other one (a reload builds a new one),
    /// so a reader that let go of it can tell whether it still holds the
    /// records it saw.
    generation: u64,
    store: RunStore,
    /// Records that end before they start. While there are none, a run
    /// starting after an `end_utc` bound cannot end before it, so that bound
    /// also cuts the ordering (see `plan`).
    reversed: usize,
    /// Positions ascending by (start instant, later insertion first); read
    /// backwards it is the answer order: newest start first, equal starts
    /// in insertion order.
    order: ChunkedList,
    /// Per text filter (pipeline_name, script_name, pipeline_type,
    /// environment): the positions holding each value, in `order`'s order,
    /// so a filtered query touches only its own records.
    postings: [FastMap<Arc<str>, ChunkedList>; 4],
    /// By group id (see `RunStore::group`).
    groups: Vec<GroupRuns>,
    /// The sorted summaries, built on first request after a change, so a
    /// busy `/pipelines` costs no sorting or copying.
    summaries: OnceLock<Arc<[PipelineSummary]>>,
    built: BuiltRecords,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// Records recently built for answers, by position: the pages asked for
/// again and again (the newest runs, a dashboard's window) are built once
/// and then shared, as every record was when each was its own allocation.
/// A record never changes in an index, so an entry is valid as long as
/// the index lives.
struct BuiltRecords {
    slots: Box<[parking_lot::Mutex<Option<BuiltRecord>>]>,
}

/// A record and its position.
type BuiltRecord = (u32, Arc<PipelineInfo>);

/// Records kept built (a page holds at most 10,000).
const BUILT_RECORDS: usize = 1 << 14;

impl Default for BuiltRecords {
    fn default() -> Self {
        Self {
            slots: (0..BUILT_RECORDS).map(|_| Default::default()).collect(),
        }
    }
}

impl std::fmt::Debug for BuiltRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuiltRecords")
    }
}

impl BuiltRecords {
    fn get_or_build(
        &self,
        position: u32,
        build: impl FnOnce() -> Option<PipelineInfo>,
    ) -> Option<Arc<PipelineInfo>> {
        let slot = &self.slots[position as usize % BUILT_RECORDS];
        if let Some((at, record)) = &*slot.lock() {
            if *at == position {
                return Some(record.clone());
            }
        }
        let record = Arc::new(build()?);
        *slot.lock() = Some((position, record.clone()));
        Some(record)
    }
}

impl Default for RunIndex {
    fn default() -> Self {
        Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            store: RunStore::default(),
            reversed: 0,
            order: ChunkedList::new(ORDER_SYNOPSES),
            postings: Default::default(),
            groups: Vec::new(),
            summaries: OnceLock::new(),
            built: BuiltRecords::default(),
        }
    }
}

/// The records a query has to look at: ranks `first..last` of one
/// candidate list, or of several (the runs of each group a query's text
/// filters select), all meeting `residual`.
struct Plan<'a> {
    parts: Vec<Part<'a>>,
    residual: Residual<'a>,
}

/// Candidate positions (ascending like `order`) of ranks `first..last`.
struct Part<'a> {
    source: &'a ChunkedList,
    first: usize,
    last: usize,
}

impl Plan<'_> {
    fn count(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.source.count(p.first, p.last, &self.residual))
            .sum()
    }

    /// Matching positions in answer order, without the first `skip`.
    fn positions(&self, skip: usize, limit: usize) -> Vec<u32> {
        match self.parts.as_slice() {
            [one] => one
                .source
                .matches_rev(one.first, one.last, &self.residual, skip, limit),
            parts => {
                // Each group's first `skip + limit` matches, merged.
                let wanted = skip.saturating_add(limit);
                let starts = self.residual.columns.starts;
                let mut merged: Vec<u32> = parts
                    .iter()
                    .flat_map(|p| {
                        p.source
                            .matches_rev(p.first, p.last, &self.residual, 0, wanted)
                    })
                    .collect();
                merged.sort_unstable_by_key(|&p| (Reverse(starts[p as usize]), p));
                merged.into_iter().skip(skip).take(limit).collect()
            }
        }
    }
}

/// A query whose text filters select at most this many groups reads the
/// groups' own runs; with more, it reads one posting list and checks each
/// candidate's group. (Few in unit tests, so that both ways are taken.)
#[cfg(not(test))]
const MOST_GROUPS_READ: usize = 64;
#[cfg(test)]
const MOST_GROUPS_READ: usize = 3;

/// Every record's ordering answers row-count ranges from its synopses.
const ORDER_SYNOPSES: Synopses = Synopses::From(0);

/// A posting list keeps synopses once scanning it would take long (about
/// a millisecond: its positions are spread over the whole store, so each
/// look at a run is a cache miss); shorter lists are scanned. Unit tests
/// lower the bar so that their lists take both forms.
#[cfg(not(test))]
const POSTING_SYNOPSES: Synopses = Synopses::From(1 << 16);
#[cfg(test)]
const POSTING_SYNOPSES: Synopses = Synopses::From(12);

/// Shared by every plan that has no candidates.
static EMPTY: ChunkedList = ChunkedList::EMPTY;

/// `(start, later insertion first)` as one number that sorts the same way.
fn order_key(starts: &[i64], position: u32) -> u128 {
    let start = (starts[position as usize] as u64) ^ (1 << 63);
    (u128::from(start) << 32) | u128::from(u32::MAX - position)
}

/// Every position in start order, sorted in parallel parts then merged.
fn start_order(starts: &[i64]) -> Vec<u32> {
    let count = starts.len() as u32;
    let part = (count as usize).div_ceil(parallel::threads()).max(1 << 16);
    let parts: Vec<std::ops::Range<u32>> = (0..count)
        .step_by(part)
        .map(|from| from..(from + part as u32).min(count))
        .collect();
    let mut runs = parallel::map(parts, |range| {
        let mut keys: Vec<u128> = range.map(|p| order_key(starts, p)).collect();
        keys.sort_unstable();
        keys
    });
    while runs.len() > 1 {
        let mut pairs = Vec::with_capacity(runs.len().div_ceil(2));
        let mut rest = runs.into_iter();
        while let Some(left) = rest.next() {
            pairs.push((left, rest.next().unwrap_or_default()));
        }
        runs = parallel::map(pairs, |(left, right)| merge(&left, &right));
    }
    runs.into_iter()
        .flatten()
        .map(|key| u32::MAX - key as u32)
        .collect()
}

fn merge(left: &[u128], right: &[u128]) -> Vec<u128> {
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if left[i] <= right[j] {
            merged.push(left[i]);
            i += 1;
        } else {
            merged.push(right[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    merged
}

impl RunIndex {
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The record at a file-order position.
    pub fn record(&self, position: u32) -> Option<Arc<PipelineInfo>> {
        self.built
            .get_or_build(position, || self.store.record(position))
    }

    /// The records at `positions`, in that order.
    pub fn records(&self, positions: &[u32]) -> Vec<Arc<PipelineInfo>> {
        positions.iter().filter_map(|&p| self.record(p)).collect()
    }

    /// As `records`, for a stream of every match: built without keeping
    /// them, so a long answer does not push out the records pages reuse.
    pub fn records_passing_through(&self, positions: &[u32]) -> Vec<Arc<PipelineInfo>> {
        positions
            .iter()
            .filter_map(|&p| self.store.record(p).map(Arc::new))
            .collect()
    }

    /// The distinct archived files of the records with this `date_code`,
    /// first stored first, at most `limit`; `None` when no record has it. A
    /// scan of the `date_code` hashes: no index is kept for a field only
    /// the archive endpoint reads.
    pub fn archived_files(&self, date_code: &str, limit: usize) -> Option<Vec<String>> {
        let mut any = false;
        let mut files: Vec<String> = Vec::new();
        for archived in self.store.archived_files(date_code) {
            any = true;
            let Some(file) = archived.filter(|f| !f.is_empty()) else {
                continue;
            };
            if !files.iter().any(|seen| seen == file) {
                if files.len() == limit {
                    break;
                }
                files.push(file.to_owned());
            }
        }
        any.then_some(files)
    }

    /// Adds records in insertion order: merged into the structures, or,
    /// when they are many against what is there (a load), everything built
    /// again on every core.
    pub fn extend(&mut self, batch: RunStore) {
        let first_new = self.len();
        match first_new {
            // Nothing to merge with: the batch becomes the store.
            0 => self.store = batch,
            _ => self.store.append(batch),
        }
        let added = self.len() - first_new;
        if added == 0 {
            return;
        }
        self.summaries = OnceLock::new();
        if added > 64 && added > first_new / 8 {
            self.rebuild();
        } else {
            self.place(first_new as u32..self.len() as u32);
        }
    }

    /// Places the records at `new` (the last ones of the store) in the
    /// ordering, the posting lists and their groups. They are put in start
    /// order once, and each list takes its share in one merge.
    fn place(&mut self, new: std::ops::Range<u32>) {
        let store = &self.store;
        let columns = store.columns();
        let starts = columns.starts;
        let before = |a: u32, b: u32| order_key(starts, a) < order_key(starts, b);
        let mut sorted: Vec<u32> = new.clone().collect();
        sorted.sort_unstable_by_key(|&p| order_key(starts, p));
        self.order.insert_sorted(&sorted, before, &columns);
        // Groups are numbered in order of first appearance: a new one is
        // met here in file order, where its first run is.
        for position in new.clone() {
            let i = position as usize;
            let group = columns.groups[i] as usize;
            while self.groups.len() <= group {
                self.groups.push(GroupRuns::new(position));
            }
            self.groups[group].add_to_means(columns.durations[i], columns.rowcounts[i]);
            if columns.ends[i] < columns.starts[i] {
                self.reversed += 1;
            }
        }
        // Each group's new runs, and each posting list's, in start order.
        let mut by_group: FastMap<u32, Vec<u32>> = FastMap::default();
        for &position in &sorted {
            by_group
                .entry(columns.groups[position as usize])
                .or_default()
                .push(position);
        }
        let mut by_value: [FastMap<&Arc<str>, Vec<u32>>; 4] = Default::default();
        for &position in &sorted {
            let values = store.group(columns.groups[position as usize]);
            for (field, value) in values.iter().enumerate() {
                if let Some(value) = value {
                    by_value[field].entry(value).or_default().push(position);
                }
            }
        }
        for (field, lists) in by_value.into_iter().enumerate() {
            for (value, positions) in lists {
                self.postings[field]
                    .entry(value.clone())
                    .or_insert_with(|| ChunkedList::new(POSTING_SYNOPSES))
                    .insert_sorted(&positions, before, &columns);
            }
        }
        for (group, positions) in by_group {
            self.groups[group as usize].add_sorted(&positions, before, &columns);
        }
    }

    /// Builds the ordering, the posting lists and the group statistics
    /// from the store, on every core.
    fn rebuild(&mut self) {
        let started = std::time::Instant::now();
        let store = &self.store;
        let columns = store.columns();
        let order = start_order(columns.starts);
        let sorted = started.elapsed();
        // Per text field, a number for each distinct value, and for each
        // group the numbers of its values.
        let group_count = store.group_count();
        let mut values: [Vec<Arc<str>>; 4] = Default::default();
        let mut value_of: Vec<[Option<u32>; 4]> = vec![[None; 4]; group_count];
        for (field, field_values) in values.iter_mut().enumerate() {
            let mut numbers: FastMap<Arc<str>, u32> = FastMap::default();
            for (group, numbered) in value_of.iter_mut().enumerate() {
                if let Some(value) = &store.group(group as u32)[field] {
                    let number = *numbers.entry(value.clone()).or_insert_with(|| {
                        field_values.push(value.clone());
                        field_values.len() as u32 - 1
                    });
                    numbered[field] = Some(number);
                }
            }
        }
        // Distributes the ordered positions: one task per text field, one
        // for the groups.
        let value_counts = values.each_ref().map(Vec::len);
        let mut lists = parallel::map((0..5).collect(), |task: usize| {
            let buckets = if task < 4 {
                value_counts[task]
            } else {
                group_count
            };
            let mut lists: Vec<Vec<u32>> = vec![Vec::new(); buckets];
            for &position in &order {
                let group = columns.groups[position as usize] as usize;
                let bucket = match task {
                    4 => Some(group as u32),
                    field => value_of[group][field],
                };
                if let Some(bucket) = bucket {
                    lists[bucket as usize].push(position);
                }
            }
            lists
        });
        let group_lists = lists.pop().unwrap_or_default();
        let distributed = started.elapsed();
        // The lists with their synopses and the groups' order statistics,
        // as one queue, the largest first so the work balances.
        enum Job {
            Order,
            Posting(usize, usize),
            Group(usize),
        }
        enum Built {
            List(Option<(usize, usize)>, ChunkedList),
            Group(usize, GroupRuns),
        }
        let mut jobs: Vec<(usize, Job)> = vec![(order.len(), Job::Order)];
        for (field, field_lists) in lists.iter().enumerate() {
            for (number, list) in field_lists.iter().enumerate() {
                jobs.push((list.len(), Job::Posting(field, number)));
            }
        }
        for (group, positions) in group_lists.iter().enumerate() {
            // Three sorts of the group's values: about three lists' work.
            jobs.push((3 * positions.len(), Job::Group(group)));
        }
        jobs.sort_by_key(|(work, _)| Reverse(*work));
        let built = parallel::map(jobs, |(_, job)| match job {
            Job::Order => Built::List(
                None,
                ChunkedList::from_sorted(&order, ORDER_SYNOPSES, &columns),
            ),
            Job::Posting(field, number) => Built::List(
                Some((field, number)),
                ChunkedList::from_sorted(&lists[field][number], POSTING_SYNOPSES, &columns),
            ),
            Job::Group(group) => {
                Built::Group(group, GroupRuns::build(&group_lists[group], &columns))
            }
        });
        let listed = started.elapsed();
        let mut postings: [FastMap<Arc<str>, ChunkedList>; 4] = Default::default();
        let mut groups: Vec<Option<GroupRuns>> = (0..group_count).map(|_| None).collect();
        for item in built {
            match item {
                Built::List(None, list) => self.order = list,
                Built::List(Some((field, number)), list) => {
                    postings[field].insert(values[field][number].clone(), list);
                }
                Built::Group(group, runs) => groups[group] = Some(runs),
            }
        }
        self.postings = postings;
        let mut groups: Vec<GroupRuns> = groups.into_iter().flatten().collect();
        // The means sum in file order, exactly as records placed one by
        // one do.
        for position in 0..self.len() {
            let group = columns.groups[position] as usize;
            groups[group].add_to_means(columns.durations[position], columns.rowcounts[position]);
        }
        self.groups = groups;
        self.reversed = columns
            .starts
            .iter()
            .zip(columns.ends)
            .filter(|(start, end)| end < start)
            .count();
        tracing::debug!(
            sort_ms = sorted.as_millis() as u64,
            distribute_ms = (distributed - sorted).as_millis() as u64,
            lists_ms = (listed - distributed).as_millis() as u64,
            means_ms = (started.elapsed() - listed).as_millis() as u64,
            "index built"
        );
    }

    /// For each group, whether it passes the text filters.
    fn groups_matching(&self, filter: &RunFilter) -> Vec<bool> {
        let wanted = [
            &filter.pipeline_name,
            &filter.script_name,
            &filter.pipeline_type,
            &filter.environment,
        ];
        (0..self.store.group_count() as u32)
            .map(|group| {
                let classes = self.store.group(group);
                wanted
                    .iter()
                    .zip(classes)
                    .all(|(wanted, actual)| match wanted {
                        Some(w) => actual.as_deref() == Some(w.as_str()),
                        None => true,
                    })
            })
            .collect()
    }

    /// Chooses the candidates: the shortest posting list among the text
    /// filters (or every record), cut at the `start_utc` bound (and a
    /// keyset position) by binary search; what remains to be checked goes
    /// into the residual.
    fn plan<'a>(&'a self, filter: &RunFilter, after: Option<RunKey>) -> Plan<'a> {
        let wanted = [
            &filter.pipeline_name,
            &filter.script_name,
            &filter.pipeline_type,
            &filter.environment,
        ];
        let mut source: &ChunkedList = &self.order;
        let mut text_conditions = 0;
        for (field, value) in wanted.into_iter().enumerate() {
            if let Some(value) = value {
                text_conditions += 1;
                let list = self.postings[field].get(value.as_str()).unwrap_or(&EMPTY);
                if text_conditions == 1 || list.len() < source.len() {
                    source = list;
                }
            }
        }
        let rowcounts =
            (filter.min_rowcount.is_some() || filter.max_rowcount.is_some()).then(|| {
                (
                    filter.min_rowcount.unwrap_or(i64::MIN),
                    filter.max_rowcount.unwrap_or(i64::MAX),
                )
            });
        let mut residual = Residual {
            rowcounts,
            end_at_most: filter.end_utc.map(|bound| bound.instant_micros()),
            groups: None,
            columns: self.store.columns(),
        };
        // Several text filters: the runs of the groups that pass them all,
        // when they are few; else one list, checking each run's group.
        let mut sources = vec![source];
        if text_conditions > 1 {
            let allowed = self.groups_matching(filter);
            let groups: Vec<&ChunkedList> = (0..allowed.len())
                .filter(|&g| allowed[g])
                .filter_map(|g| self.groups.get(g).map(GroupRuns::runs))
                .collect();
            match groups.len() <= MOST_GROUPS_READ {
                true => sources = groups,
                false => residual.groups = Some(allowed),
            }
        }
        Plan {
            parts: sources
                .into_iter()
                .map(|source| self.part(source, filter, after))
                .collect(),
            residual,
        }
    }

    /// The ranks of `source` a query's start bound, keyset position and end
    /// bound leave, each found by binary search.
    fn part<'a>(
        &self,
        source: &'a ChunkedList,
        filter: &RunFilter,
        after: Option<RunKey>,
    ) -> Part<'a> {
        let starts = self.store.columns().starts;
        let first = match filter.start_utc {
            Some(bound) => {
                let bound = bound.instant_micros();
                source.rank(|i| starts[i as usize] < bound)
            }
            None => 0,
        };
        // A keyset bound: only entries that come after the key in answer
        // order, which sit below it in `order`.
        let last = match after {
            Some(key) => {
                let bound = (key.start_micros, Reverse(key.seq));
                source.rank(|i| (starts[i as usize], Reverse(i64::from(i))) < bound)
            }
            None => source.len(),
        };
        // With no reversed record, runs starting after the end bound cannot
        // match: a window query touches only the runs inside the window.
        let last = match filter.end_utc {
            Some(bound) if self.reversed == 0 => {
                let bound = bound.instant_micros();
                last.min(source.rank(|i| starts[i as usize] <= bound))
            }
            _ => last,
        };
        Part {
            source,
            first,
            last: last.max(first),
        }
    }

    /// Up to `limit` matches from `position` in answer order, the key to
    /// continue after when more follow, and with `counting` how many match
    /// in all. The plan answers each in O(log n + page): its synopses step
    /// over whole chunks to the page and count them without a scan.
    pub fn query(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> QueryPage {
        let (after, skip) = match position {
            Position::Offset(skip) => (None, skip),
            Position::After(key) => (Some(key), 0),
        };
        let plan = self.plan(filter, after);
        // The total counts every match, wherever the page starts.
        let total = counting.then(|| match (self.total_by_group_ranks(filter), after) {
            (Some(total), _) => total,
            (None, None) => plan.count() as u64,
            (None, Some(_)) => self.plan(filter, None).count() as u64,
        });
        // One more than asked tells whether another page follows.
        let mut positions = plan.positions(skip, limit.saturating_add(1));
        let more = positions.len() > limit;
        positions.truncate(limit);
        let starts = self.store.columns().starts;
        let next = positions.last().filter(|_| more).map(|&last| RunKey {
            start_micros: starts[last as usize],
            seq: i64::from(last),
        });
        QueryPage {
            total,
            records: self.records(&positions),
            next,
        }
    }

    /// The number of matches of a filter that selects whole groups and
    /// bounds only row counts, from each group's sorted row counts (kept
    /// for the statistics): a search in a few hundred groups instead of two
    /// in every chunk of the candidates. `None` for other filters.
    fn total_by_group_ranks(&self, filter: &RunFilter) -> Option<u64> {
        if filter.start_utc.is_some()
            || filter.end_utc.is_some()
            || (filter.min_rowcount.is_none() && filter.max_rowcount.is_none())
        {
            return None;
        }
        let low = filter.min_rowcount.unwrap_or(i64::MIN);
        let high = filter.max_rowcount.unwrap_or(i64::MAX);
        let matching = self.groups_matching(filter);
        let total = self
            .groups
            .iter()
            .zip(matching)
            .filter(|(_, selected)| *selected)
            .map(|(group, _)| group.rowcounts_within(low, high) as u64)
            .sum();
        Some(total)
    }

    /// The positions of every match, in answer order.
    pub fn positions(&self, filter: &RunFilter) -> Vec<u32> {
        self.plan(filter, None).positions(0, usize::MAX)
    }

    pub fn summaries(&self) -> Arc<[PipelineSummary]> {
        self.summaries
            .get_or_init(|| {
                let mut groups: Vec<(u32, &GroupRuns)> = (0u32..)
                    .zip(&self.groups)
                    .filter(|(_, g)| g.len() > 0)
                    .collect();
                let starts = self.store.columns().starts;
                groups.sort_by_key(|(_, g)| {
                    let last = g.latest().map_or(i64::MIN, |p| starts[p as usize]);
                    (Reverse(last), g.first_seen())
                });
                groups
                    .into_iter()
                    .map(|(id, g)| g.summary(self.store.group(id), &self.store))
                    .collect()
            })
            .clone()
    }

    pub fn activity(&self) -> Vec<PipelineActivity> {
        (0u32..)
            .zip(&self.groups)
            .filter_map(|(id, g)| g.activity(self.store.group(id), &self.store))
            .collect()
    }

    /// What the statistics of each group with matching runs are computed
    /// from. Text filters select whole groups, whose digests are kept up
    /// to date; other conditions select runs, which are gathered here (by
    /// column, without building records) and digested once the caller has
    /// let go of the index.
    pub fn stats(&self, filter: &RunFilter, latest: usize) -> StatsInputs {
        let whole_groups = filter.start_utc.is_none()
            && filter.end_utc.is_none()
            && filter.min_rowcount.is_none()
            && filter.max_rowcount.is_none();
        let matching = self.groups_matching(filter);
        if whole_groups {
            return StatsInputs::Digests(
                (0u32..)
                    .zip(&self.groups)
                    .filter(|(id, _)| matching[*id as usize])
                    .filter_map(|(id, g)| g.digest(self.store.group(id), &self.store, latest))
                    .collect(),
            );
        }
        let columns = self.store.columns();
        let mut runs: Vec<Vec<u32>> = vec![Vec::new(); self.store.group_count()];
        // Answer order read backwards: oldest first, as digests want.
        let positions = self.plan(filter, None).positions(0, usize::MAX);
        for &position in positions.iter().rev() {
            runs[columns.groups[position as usize] as usize].push(position);
        }
        StatsInputs::Runs(
            (0u32..)
                .zip(runs)
                .filter_map(|(group, positions)| {
                    positions.last()?;
                    Some(GroupRunPoints {
                        key: self.store.group(group).clone(),
                        points: positions
                            .iter()
                            .map(|&p| run_point(&self.store, p))
                            .collect(),
                    })
                })
                .collect(),
        )
    }

    pub fn bytes(&self) -> IndexBytes {
        IndexBytes {
            store: self.store.bytes(),
            orderings: self.order.bytes()
                + self
                    .postings
                    .iter()
                    .flat_map(|field| field.values())
                    .map(ChunkedList::bytes)
                    .sum::<usize>(),
            statistics: self.groups.iter().map(GroupRuns::bytes).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The index against a plain reference model: random histories, built
    //! all at once and record by record (backfills included), answer every
    //! filter, page, keyset walk, summary and statistic exactly as a brute
    //! force over the records does. Chunks hold at most 8 entries here, so
    //! the synopses and chunk skipping are exercised throughout.

    use super::*;
    use crate::domain::digest::StatsBuilder;
    use crate::repository::jsonl::store::RunFields;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    struct Spec {
        minutes: i64,
        zone: Option<&'static str>,
        /// Minutes from start to end; negative ends before the start.
        length: i64,
        rowcount: i64,
        elapsed: f64,
        classes: [Option<&'static str>; 4],
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0i64..40,
            prop::sample::select(vec![None, Some("Z"), Some("+02:00")]),
            prop_oneof![9 => 0i64..30, 1 => -20i64..0],
            -3i64..25,
            prop::sample::select(vec![0.0, -1.0, 0.5, 2.0, 2.0, 7.25, 100.0]),
            (
                prop::sample::select(vec![None, Some("a"), Some("b"), Some("c")]),
                prop::sample::select(vec![None, Some("a.py")]),
                prop::sample::select(vec![Some("batch"), None]),
                prop::sample::select(vec![Some("prod"), Some("dev")]),
            ),
        )
            .prop_map(
                |(minutes, zone, length, rowcount, elapsed, (n, s, t, e))| Spec {
                    minutes,
                    zone,
                    length,
                    rowcount,
                    elapsed,
                    classes: [n, s, t, e],
                },
            )
    }

    /// `2025-08-01T00:00` plus `minutes`, written in `zone` (the same
    /// instant whatever the zone, unless naive).
    fn time(minutes: i64, zone: Option<&str>) -> String {
        let base =
            chrono::DateTime::from_timestamp(1_754_006_400 + minutes * 60, 0).unwrap_or_default();
        match zone {
            None => base.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
            Some("Z") => format!("{}Z", base.naive_utc().format("%Y-%m-%dT%H:%M:%S")),
            Some(_) => format!(
                "{}+02:00",
                (base.naive_utc() + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M:%S")
            ),
        }
    }

    fn record(index: usize, spec: &Spec) -> PipelineInfo {
        let [name, script, kind, environment] = spec.classes;
        let value = json!({
            "start_local": time(spec.minutes, None),
            "end_local": time(spec.minutes + spec.length, None),
            "start_utc": time(spec.minutes, spec.zone),
            "end_utc": time(spec.minutes + spec.length, Some("Z")),
            "elapsed_seconds": spec.elapsed,
            "elapsed_human": "x",
            "output_file": "/o",
            "log_file": "/l",
            "rowcount": spec.rowcount,
            "pid": 1,
            "date_code": format!("r{index}"),
            "pipeline_name": name,
            "script_name": script,
            "pipeline_type": kind,
            "environment": environment,
        });
        PipelineInfo::parse(&value, "body").unwrap()
    }

    #[derive(Debug, Clone)]
    struct FilterSpec {
        start: Option<i64>,
        end: Option<i64>,
        min_rowcount: Option<i64>,
        max_rowcount: Option<i64>,
        classes: [Option<&'static str>; 4],
    }

    fn filter_spec() -> impl Strategy<Value = FilterSpec> {
        (
            prop::option::of(0i64..45),
            prop::option::of(-5i64..70),
            prop::option::of(-2i64..25),
            prop::option::of(-2i64..25),
            (
                prop::option::weighted(0.3, prop::sample::select(vec!["a", "b", "zz"])),
                prop::option::weighted(0.2, Just("a.py")),
                prop::option::weighted(0.2, Just("batch")),
                prop::option::weighted(0.4, prop::sample::select(vec!["prod", "dev"])),
            ),
        )
            .prop_map(|(start, end, min_rowcount, max_rowcount, (n, s, t, e))| {
                FilterSpec {
                    start,
                    end,
                    min_rowcount,
                    max_rowcount,
                    classes: [n, s, t, e],
                }
            })
    }

    impl FilterSpec {
        fn filter(&self) -> RunFilter {
            let at = |m: i64| crate::domain::FlexDateTime::parse(&time(m, Some("Z"))).unwrap();
            let text = |i: usize| self.classes[i].map(str::to_owned);
            RunFilter {
                start_utc: self.start.map(at),
                end_utc: self.end.map(at),
                min_rowcount: self.min_rowcount,
                max_rowcount: self.max_rowcount,
                pipeline_name: text(0),
                script_name: text(1),
                pipeline_type: text(2),
                environment: text(3),
            }
        }
    }

    /// The ways an index comes to hold a history.
    #[derive(Debug, Clone, Copy)]
    enum Building {
        /// One batch (built in parallel when large enough).
        AllAtOnce,
        /// Record by record.
        OneByOne,
        /// Half at once, then the rest one by one.
        Half,
        /// A quarter at once, then batches of 1 to 40 merged in.
        Batches,
    }

    fn build(records: &[PipelineInfo], building: Building) -> RunIndex {
        let batch = |records: &[PipelineInfo]| {
            let mut store = RunStore::default();
            for r in records {
                store.push(&RunFields::from(r));
            }
            store
        };
        let mut index = RunIndex::default();
        let (split, step) = match building {
            Building::AllAtOnce => (records.len(), 1),
            Building::OneByOne => (0, 1),
            Building::Half => (records.len() / 2, 1),
            Building::Batches => (records.len() / 4, 40),
        };
        index.extend(batch(&records[..split]));
        let mut from = split;
        let mut size = 0;
        while from < records.len() {
            size = size % step + 1;
            let to = (from + size).min(records.len());
            index.extend(batch(&records[from..to]));
            from = to;
        }
        index
    }

    /// The brute force: positions of the matches in answer order.
    fn expected(records: &[PipelineInfo], filter: &RunFilter) -> Vec<u32> {
        let mut matches: Vec<u32> = (0..records.len() as u32)
            .filter(|&p| filter.matches(&records[p as usize]))
            .collect();
        matches.sort_by_key(|&p| (Reverse(records[p as usize].start_utc().instant_micros()), p));
        matches
    }

    fn codes(records: &[Arc<PipelineInfo>]) -> Vec<String> {
        records.iter().map(|r| r.date_code().to_owned()).collect()
    }

    fn codes_at(positions: &[u32]) -> Vec<String> {
        positions.iter().map(|p| format!("r{p}")).collect()
    }

    fn digests_by_key(digests: Vec<GroupDigest>) -> HashMap<[Option<String>; 4], GroupDigest> {
        digests
            .into_iter()
            .map(|d| (d.key.clone().map(|v| v.as_deref().map(str::to_owned)), d))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn queries_equal_a_brute_force_over_the_records(
            specs in prop::collection::vec(spec(), 0..260),
            filters in prop::collection::vec(filter_spec(), 1..6),
            building in prop::sample::select(vec![Building::AllAtOnce, Building::OneByOne, Building::Half, Building::Batches]),
            pages in prop::collection::vec((0usize..40, 1usize..25), 3),
        ) {
            let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| record(i, s)).collect();
            let index = build(&records, building);
            prop_assert_eq!(index.len(), records.len());
            for f in &filters {
                let filter = f.filter();
                let all = expected(&records, &filter);
                let total = Some(all.len() as u64);
                prop_assert_eq!(index.query(&filter, Position::Offset(0), 0, true).total, total, "{:?}", f);
                prop_assert_eq!(index.positions(&filter), all.clone(), "{:?}", f);
                for &(offset, limit) in &pages {
                    let page = index.query(&filter, Position::Offset(offset), limit, true);
                    prop_assert_eq!(page.total, total);
                    let wanted: Vec<u32> = all.iter().skip(offset).take(limit).copied().collect();
                    prop_assert_eq!(codes(&page.records), codes_at(&wanted), "{:?} offset {} limit {}", f, offset, limit);
                }
                // A keyset walk in steps of the first page size.
                let step = pages[0].1;
                let mut after = None;
                let mut walked = Vec::new();
                loop {
                    let page = index.query(&filter, Position::from(after), step, true);
                    prop_assert_eq!(page.total, total, "counts every match, wherever the page starts");
                    walked.extend(codes(&page.records));
                    match page.next {
                        Some(key) => after = Some(key),
                        None => break,
                    }
                }
                prop_assert_eq!(walked, codes_at(&all), "{:?}", f);
            }
        }

        #[test]
        fn statistics_and_summaries_equal_a_brute_force_over_the_records(
            specs in prop::collection::vec(spec(), 1..260),
            filters in prop::collection::vec(filter_spec(), 1..4),
            building in prop::sample::select(vec![Building::AllAtOnce, Building::OneByOne, Building::Half, Building::Batches]),
            latest in 1usize..12,
        ) {
            let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| record(i, s)).collect();
            let index = build(&records, building);
            for f in filters.iter().cloned().chain([FilterSpec { start: None, end: None, min_rowcount: None, max_rowcount: None, classes: [None; 4] }]) {
                let filter = f.filter();
                let mut builder = StatsBuilder::default();
                for p in expected(&records, &filter) {
                    builder.add(&records[p as usize]);
                }
                let wanted = digests_by_key(builder.digests(latest));
                let got = digests_by_key(index.stats(&filter, latest).digests(latest));
                prop_assert_eq!(got, wanted, "{:?}", f);
            }
            // `/pipelines`: per group in file order, latest run first, ties
            // in order of first appearance.
            let mut groups: Vec<([Option<&str>; 4], PipelineSummary, usize)> = Vec::new();
            for (position, r) in records.iter().enumerate() {
                let key = [r.pipeline_name(), r.script_name(), r.pipeline_type(), r.environment()];
                let at = match groups.iter().position(|(k, _, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        groups.push((key, PipelineSummary {
                            pipeline_name: key[0].map(str::to_owned),
                            script_name: key[1].map(str::to_owned),
                            pipeline_type: key[2].map(str::to_owned),
                            environment: key[3].map(str::to_owned),
                            total_runs: 0,
                            last_run: None,
                            avg_duration: None,
                            avg_rowcount: None,
                        }, position));
                        groups.len() - 1
                    }
                };
                let summary = &mut groups[at].1;
                summary.total_runs += 1;
                if summary.last_run.is_none_or(|l| r.start_utc().instant_micros() > l.instant_micros()) {
                    summary.last_run = Some(r.start_utc());
                }
            }
            for (key, summary, _) in &mut groups {
                let of_group = || records.iter().filter(|r| [r.pipeline_name(), r.script_name(), r.pipeline_type(), r.environment()] == *key);
                let mean = |values: Vec<f64>| (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
                summary.avg_duration = mean(of_group().map(|r| r.elapsed_seconds()).filter(|&e| e > 0.0).collect());
                summary.avg_rowcount = mean(of_group().map(|r| r.rowcount()).filter(|&c| c > 0).map(|c| c as f64).collect());
            }
            groups.sort_by_key(|(_, s, first)| (Reverse(s.last_run.map(|l| l.instant_micros())), *first));
            let wanted: Vec<PipelineSummary> = groups.into_iter().map(|(_, s, _)| s).collect();
            prop_assert_eq!(index.summaries().to_vec(), wanted);
        }
    }
}

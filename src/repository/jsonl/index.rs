//! The in-memory view of a JSON Lines file: every valid record once, an
//! ordering by start time, and per-group summaries kept up to date as records
//! arrive, so queries never re-read or re-parse the file.

use std::cmp::Reverse;
use std::collections::HashMap;

/// Maps keyed by classification strings are hashed on every record at
/// load; foldhash is several times faster than the default SipHash and,
/// seeded per process, still resists crafted collisions.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::sync::Arc;

use super::ordered::ChunkedList;
use crate::domain::{FlexDateTime, PipelineActivity, PipelineInfo, PipelineSummary};
use crate::repository::{Position, QueryPage, RunFilter, RunKey};

/// Records in file order plus the indexes queries use.
#[derive(Debug, Default)]
pub struct RunIndex {
    records: Vec<Arc<PipelineInfo>>,
    /// Start instants, parallel to `records`, for cache-friendly ordering.
    starts: Vec<i64>,
    /// Records that end before they start. While there are none, a run
    /// starting after an `end_utc` bound cannot end before it, so that bound
    /// also cuts the ordering (see `plan`).
    reversed: usize,
    /// Positions into `records`, ascending by (start instant, later insertion
    /// first); read backwards it is the answer order: newest start first,
    /// equal starts in insertion order.
    order: ChunkedList,
    /// Per string filter (pipeline_name, script_name, pipeline_type,
    /// environment): the positions holding each value, in `order`'s order,
    /// so a filtered query touches only its own records.
    postings: [FastMap<Arc<str>, ChunkedList>; 4],
    summaries: SummaryIndex,
}

/// The records a query has to look at.
struct Plan<'a> {
    /// Candidate positions (ascending like `order`) of ranks `first..last`.
    source: &'a ChunkedList,
    first: usize,
    last: usize,
    /// Every candidate matches: no condition is left to check.
    exact: bool,
}

impl<'a> Plan<'a> {
    fn len(&self) -> usize {
        self.last.saturating_sub(self.first)
    }

    /// Candidates newest first, without the first `skip`.
    fn positions(&self, skip: usize) -> impl Iterator<Item = u32> + 'a {
        let above = self.source.len() - self.last;
        self.source
            .iter_rev_from_skipping(self.first, above.saturating_add(skip))
    }
}

fn record_ends_before_start(record: &PipelineInfo) -> bool {
    record.end_utc().instant_micros() < record.start_utc().instant_micros()
}

/// Shared by every plan that has no candidates.
static EMPTY: ChunkedList = ChunkedList::EMPTY;

impl RunIndex {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The distinct archived files of the records with this `date_code`,
    /// first stored first, at most `limit`; `None` when no record has it. A
    /// scan: no index is kept for a field only the archive endpoint reads.
    pub fn archived_files(&self, date_code: &str, limit: usize) -> Option<Vec<String>> {
        let mut any = false;
        let mut files: Vec<String> = Vec::new();
        for record in self.records.iter().filter(|r| r.date_code() == date_code) {
            any = true;
            let Some(file) = record.archived_file().filter(|f| !f.is_empty()) else {
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

    /// The record at a file-order position.
    pub fn record(&self, position: u32) -> Option<Arc<PipelineInfo>> {
        self.records.get(position as usize).cloned()
    }

    /// Adds records in insertion order.
    pub fn extend(&mut self, batch: Vec<PipelineInfo>) {
        let first_new = self.records.len();
        let resort = batch.len() > 64 && batch.len() > self.records.len() / 8;
        for record in batch {
            self.push(record, !resort);
        }
        if resort && self.records.len() > first_new {
            let starts = &self.starts;
            let mut order: Vec<u32> = (0..self.records.len() as u32).collect();
            order.sort_unstable_by_key(|&i| (starts[i as usize], Reverse(i)));
            self.rebuild_postings(&order);
            self.order = ChunkedList::from_sorted(order);
        }
    }

    fn rebuild_postings(&mut self, order: &[u32]) {
        // Keyed by the interned values' identity while filling (see
        // `GroupKey`), then by content for lookups by query text.
        let mut lists: [PositionsByIdentity; 4] = Default::default();
        for &position in order {
            let record = &self.records[position as usize];
            for (field, value) in record.classes().iter().enumerate() {
                if let Some(value) = value {
                    lists[field]
                        .entry(identity(value))
                        .or_insert_with(|| (value.clone(), Vec::new()))
                        .1
                        .push(position);
                }
            }
        }
        self.postings = lists.map(|field| {
            field
                .into_values()
                .map(|(value, positions)| (value, ChunkedList::from_sorted(positions)))
                .collect()
        });
    }

    fn push(&mut self, mut record: PipelineInfo, place_in_order: bool) {
        // One shared copy of each classification value for the whole store.
        record.intern_classes(|value| self.summaries.intern(value));
        let position = self.records.len() as u32;
        let start = record.start_utc().instant_micros();
        self.summaries.add(&record, position);
        self.records.push(Arc::new(record));
        self.starts.push(start);
        if record_ends_before_start(&self.records[position as usize]) {
            self.reversed += 1;
        }
        if place_in_order {
            let key = (start, Reverse(position));
            let starts = &self.starts;
            let before = |i: u32| (starts[i as usize], Reverse(i)) < key;
            self.order.insert(position, before);
            let record = &self.records[position as usize];
            for (field, value) in record.classes().iter().enumerate() {
                if let Some(value) = value {
                    self.postings[field]
                        .entry(value.clone())
                        .or_default()
                        .insert(position, before);
                }
            }
        }
    }

    /// Chooses the candidates: the shortest posting list among the string
    /// filters (or every record), cut at the `start_utc` bound by binary
    /// search. When nothing else is asked, counting and paging need no scan.
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
        let first = match filter.start_utc {
            Some(bound) => {
                let bound = bound.instant_micros();
                source.rank(|i| self.starts[i as usize] < bound)
            }
            None => 0,
        };
        // A keyset bound: only entries that come after the key in answer
        // order, which sit below it in `order`.
        let last = match after {
            Some(key) => {
                let bound = (key.start_micros, Reverse(key.seq));
                let starts = &self.starts;
                source.rank(|i| (starts[i as usize], Reverse(i64::from(i))) < bound)
            }
            None => source.len(),
        };
        // With no reversed record, runs starting after the end bound cannot
        // match: a window query touches only the runs inside the window.
        let last = match filter.end_utc {
            Some(bound) if self.reversed == 0 => {
                let bound = bound.instant_micros();
                last.min(source.rank(|i| self.starts[i as usize] <= bound))
            }
            _ => last,
        };
        Plan {
            source,
            first,
            last: last.max(first),
            exact: text_conditions <= 1
                && filter.end_utc.is_none()
                && filter.min_rowcount.is_none()
                && filter.max_rowcount.is_none(),
        }
    }

    /// Positions of the matches after `after`, in answer order.
    fn matching_positions<'a>(
        &'a self,
        filter: &'a RunFilter,
        after: Option<RunKey>,
    ) -> impl Iterator<Item = u32> + 'a {
        let plan = self.plan(filter, after);
        let exact = plan.exact;
        plan.positions(0)
            .filter(move |&i| exact || filter.matches(&self.records[i as usize]))
    }

    /// Up to `limit` matches from `position` in answer order, the key to
    /// continue after when more follow, and with `counting` how many match
    /// in all. O(log n + page) when the plan is exact; otherwise one pass
    /// over the candidates, which stops once the page is full unless every
    /// match has to be counted.
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
        // One more than asked tells whether another page follows.
        let wanted = limit.saturating_add(1);
        let plan = self.plan(filter, after);
        let mut total = None;
        let mut positions: Vec<u32> = if plan.exact {
            plan.positions(skip).take(wanted).collect()
        } else if counting && after.is_none() {
            // Every match is visited to count it: keep the page on the way.
            let mut seen = 0usize;
            let mut page = Vec::new();
            for position in self.matching_positions(filter, None) {
                if seen >= skip && seen - skip < wanted {
                    page.push(position);
                }
                seen += 1;
            }
            total = Some(seen as u64);
            page
        } else {
            self.matching_positions(filter, after)
                .skip(skip)
                .take(wanted)
                .collect()
        };
        if counting && total.is_none() {
            total = Some(self.count(filter));
        }
        let more = positions.len() > limit;
        positions.truncate(limit);
        let next = positions.last().filter(|_| more).map(|&last| RunKey {
            start_micros: self.starts[last as usize],
            seq: i64::from(last),
        });
        QueryPage {
            total,
            records: positions
                .iter()
                .map(|&i| self.records[i as usize].clone())
                .collect(),
            next,
        }
    }

    fn count(&self, filter: &RunFilter) -> u64 {
        let plan = self.plan(filter, None);
        if plan.exact {
            plan.len() as u64
        } else {
            self.matching_positions(filter, None).count() as u64
        }
    }

    pub fn summaries(&self) -> Arc<[PipelineSummary]> {
        self.summaries
            .cached
            .get_or_init(|| Arc::from(self.summaries.snapshot()))
            .clone()
    }

    pub fn activity(&self) -> Vec<PipelineActivity> {
        self.summaries.activity()
    }
}

/// A group's four classification values. Every record's values are the
/// store's interned copies (`push` interns them, and `names` keeps them
/// alive), so equal values are the same allocation: comparing and hashing
/// pointers is exact and far cheaper than reading the strings.
#[derive(Debug, Clone)]
struct GroupKey([Option<Arc<str>>; 4]);

/// Positions of each interned value, keyed by its identity.
type PositionsByIdentity = FastMap<usize, (Arc<str>, Vec<u32>)>;

/// An interned value's identity (see `GroupKey`).
fn identity(value: &Arc<str>) -> usize {
    Arc::as_ptr(value) as *const u8 as usize
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        })
    }
}

impl Eq for GroupKey {}

impl std::hash::Hash for GroupKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for value in &self.0 {
            value.as_ref().map(identity).hash(state);
        }
    }
}

#[derive(Debug)]
struct GroupStats {
    first_seen: u32,
    total_runs: u64,
    last_run: FlexDateTime,
    last_elapsed_seconds: f64,
    last_rowcount: i64,
    duration_sum: f64,
    duration_count: u64,
    rowcount_sum: i128,
    rowcount_count: u64,
}

/// Running aggregates per (pipeline_name, script_name, pipeline_type, environment).
#[derive(Debug, Default)]
struct SummaryIndex {
    groups: FastMap<GroupKey, GroupStats>,
    /// One shared copy of each classification value, so building a group
    /// key allocates nothing once a value has been seen.
    names: FastSet<Arc<str>>,
    /// The sorted summaries, built on first request after a change, so a
    /// busy `/pipelines` costs no sorting or copying.
    cached: std::sync::OnceLock<Arc<[PipelineSummary]>>,
}

impl SummaryIndex {
    fn intern(&mut self, value: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(value) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(value);
        self.names.insert(shared.clone());
        shared
    }

    fn add(&mut self, record: &PipelineInfo, position: u32) {
        self.cached = std::sync::OnceLock::new();
        // The record's values are already interned: cloning them is cheap.
        let key = GroupKey(record.classes().clone());
        let stats = self.groups.entry(key).or_insert_with(|| GroupStats {
            first_seen: position,
            total_runs: 0,
            last_run: record.start_utc(),
            last_elapsed_seconds: record.elapsed_seconds(),
            last_rowcount: record.rowcount(),
            duration_sum: 0.0,
            duration_count: 0,
            rowcount_sum: 0,
            rowcount_count: 0,
        });
        stats.total_runs += 1;
        // Strictly later only: among equal instants the first one seen wins.
        if record.start_utc().instant_micros() > stats.last_run.instant_micros() {
            stats.last_run = record.start_utc();
            stats.last_elapsed_seconds = record.elapsed_seconds();
            stats.last_rowcount = record.rowcount();
        }
        if record.elapsed_seconds() > 0.0 {
            stats.duration_sum += record.elapsed_seconds();
            stats.duration_count += 1;
        }
        if record.rowcount() > 0 {
            stats.rowcount_sum += i128::from(record.rowcount());
            stats.rowcount_count += 1;
        }
    }

    /// Latest run first; groups with the same last run keep the order in
    /// which they first appeared.
    fn snapshot(&self) -> Vec<PipelineSummary> {
        let mut groups: Vec<(&GroupKey, &GroupStats)> = self.groups.iter().collect();
        groups.sort_by_key(|(_, s)| (Reverse(s.last_run.instant_micros()), s.first_seen));
        groups
            .into_iter()
            .map(|(key, s)| PipelineSummary {
                pipeline_name: key.0[0].as_deref().map(str::to_owned),
                script_name: key.0[1].as_deref().map(str::to_owned),
                pipeline_type: key.0[2].as_deref().map(str::to_owned),
                environment: key.0[3].as_deref().map(str::to_owned),
                total_runs: s.total_runs,
                last_run: Some(s.last_run),
                avg_duration: mean(s.duration_sum, s.duration_count),
                avg_rowcount: mean(s.rowcount_sum as f64, s.rowcount_count),
            })
            .collect()
    }
}

impl SummaryIndex {
    fn activity(&self) -> Vec<PipelineActivity> {
        self.groups
            .iter()
            .map(|(key, s)| PipelineActivity {
                key: key.0.clone().map(|v| v.as_deref().map(str::to_owned)),
                total_runs: s.total_runs,
                last_run: s.last_run,
                last_elapsed_seconds: s.last_elapsed_seconds,
                last_rowcount: s.last_rowcount,
            })
            .collect()
    }
}

fn mean(sum: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}

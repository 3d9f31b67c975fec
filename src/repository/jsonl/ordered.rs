//! Sorted lists kept in chunks, so an insert anywhere (a backfilled run, a
//! start time equal to many others) moves at most one chunk instead of the
//! whole list, while ranks and pages stay cheap.
//!
//! `ChunkedList` holds record positions in start order. A list that answers
//! queries also keeps a synopsis per chunk — its entries' row counts sorted,
//! and the least and greatest `end − start` — so a row-count range or an
//! `end_utc` bound is counted, and whole chunks skipped, with a binary
//! search per chunk instead of a look at every record. `SortedValues` is a
//! sorted multiset read by rank: the order statistics of run statistics.

use super::store::Columns;

/// Largest chunk before it splits in two: tiny in unit tests, so that
/// their small histories cross chunk boundaries everywhere.
#[cfg(not(test))]
const MAX_CHUNK: usize = 2048;
#[cfg(test)]
const MAX_CHUNK: usize = 8;

#[derive(Debug, Default, Clone)]
struct Chunk {
    positions: Vec<u32>,
    /// The entries' row counts, sorted (empty in a list without synopses).
    rowcounts: Vec<i64>,
    /// Least and greatest `end − start` of the entries (when summarised).
    spans: (i64, i64),
}

impl Chunk {
    fn new(positions: Vec<u32>, summarised: bool, columns: &Columns<'_>) -> Self {
        let mut chunk = Chunk {
            positions,
            rowcounts: Vec::new(),
            spans: (0, 0),
        };
        if summarised {
            chunk.summarise(columns);
        }
        chunk
    }

    fn summarise(&mut self, columns: &Columns<'_>) {
        let mut rowcounts: Vec<i64> = self
            .positions
            .iter()
            .map(|&p| columns.rowcounts[p as usize])
            .collect();
        rowcounts.sort_unstable();
        self.rowcounts = rowcounts;
        self.spans = self
            .positions
            .iter()
            .map(|&p| span(columns, p))
            .fold((i64::MAX, i64::MIN), |(low, high), s| {
                (low.min(s), high.max(s))
            });
    }

    fn len(&self) -> usize {
        self.positions.len()
    }
}

fn span(columns: &Columns<'_>, position: u32) -> i64 {
    let i = position as usize;
    columns.ends[i] - columns.starts[i]
}

/// The conditions left once a query has chosen its candidates and cut them
/// to the `start_utc` bound: checked per entry, unless a chunk's synopsis
/// settles them for the whole chunk.
#[derive(Debug)]
pub struct Residual<'a> {
    /// Inclusive row-count bounds.
    pub rowcounts: Option<(i64, i64)>,
    /// `end_utc` bound (microseconds).
    pub end_at_most: Option<i64>,
    /// The groups that pass the text filters the candidates do not already
    /// guarantee, by group id.
    pub groups: Option<Vec<bool>>,
    pub columns: Columns<'a>,
}

impl Residual<'_> {
    pub fn is_empty(&self) -> bool {
        self.rowcounts.is_none() && self.end_at_most.is_none() && self.groups.is_none()
    }

    /// Whether the record at `position` meets every condition.
    pub fn admits(&self, position: u32) -> bool {
        let i = position as usize;
        let c = &self.columns;
        self.rowcounts
            .is_none_or(|(low, high)| (low..=high).contains(&c.rowcounts[i]))
            && self.end_at_most.is_none_or(|end| c.ends[i] <= end)
            && self
                .groups
                .as_ref()
                .is_none_or(|allowed| allowed.get(c.groups[i] as usize) == Some(&true))
    }

    /// How many entries of a whole chunk meet the conditions, when its
    /// synopsis tells without looking at them.
    fn chunk_matches(&self, chunk: &Chunk) -> Option<usize> {
        if self.is_empty() {
            return Some(chunk.len());
        }
        let has_synopsis = chunk.rowcounts.len() == chunk.len();
        if self.groups.is_some() || !has_synopsis {
            return None;
        }
        if let Some(end) = self.end_at_most {
            let (&first, &last) = (chunk.positions.first()?, chunk.positions.last()?);
            let starts = self.columns.starts;
            let (least, greatest) = chunk.spans;
            if starts[first as usize].saturating_add(least) > end {
                return Some(0);
            }
            if starts[last as usize].saturating_add(greatest) > end {
                return None;
            }
        }
        match self.rowcounts {
            None => Some(chunk.len()),
            Some((low, high)) => Some(count_within(&chunk.rowcounts, low, high)),
        }
    }
}

/// How many of the sorted `values` lie in `low..=high`. An open side (a
/// bound at the end of the range) costs no search: a query with only
/// `min_rowcount` reads half the cache lines.
fn count_within(values: &[i64], low: i64, high: i64) -> usize {
    let from = match low {
        i64::MIN => 0,
        _ => values.partition_point(|&r| r < low),
    };
    let to = match high {
        i64::MAX => values.len(),
        _ => values.partition_point(|&r| r <= high),
    };
    to.saturating_sub(from)
}

/// From how many entries a list keeps chunk synopses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synopses {
    /// Never: a list only ever read whole or by rank.
    #[default]
    Never,
    /// From this many entries: a shorter list is cheaper to scan than to
    /// summarise.
    From(usize),
}

#[derive(Debug, Default, Clone)]
pub struct ChunkedList {
    chunks: Vec<Chunk>,
    len: usize,
    synopses: Synopses,
    /// Whether the chunks keep synopses now.
    summarised: bool,
}

impl ChunkedList {
    pub const EMPTY: ChunkedList = ChunkedList {
        chunks: Vec::new(),
        len: 0,
        synopses: Synopses::Never,
        summarised: false,
    };

    pub fn new(synopses: Synopses) -> Self {
        Self {
            synopses,
            summarised: synopses == Synopses::From(0),
            ..Self::default()
        }
    }

    /// A list from positions already in order.
    pub fn from_sorted(positions: &[u32], synopses: Synopses, columns: &Columns<'_>) -> Self {
        let summarised = Self::summarised_at(synopses, positions.len());
        let chunks = positions
            .chunks(MAX_CHUNK / 2)
            .map(|c| Chunk::new(c.to_vec(), summarised, columns))
            .collect();
        Self {
            chunks,
            len: positions.len(),
            synopses,
            summarised,
        }
    }

    fn summarised_at(synopses: Synopses, len: usize) -> bool {
        matches!(synopses, Synopses::From(from) if len >= from)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// How many entries are `before` (a predicate true for a prefix).
    pub fn rank(&self, before: impl Fn(u32) -> bool) -> usize {
        let chunk = self
            .chunks
            .partition_point(|c| c.positions.last().is_some_and(|&last| before(last)));
        let preceding: usize = self.chunks[..chunk].iter().map(Chunk::len).sum();
        let within = self
            .chunks
            .get(chunk)
            .map_or(0, |c| c.positions.partition_point(|&p| before(p)));
        preceding + within
    }

    /// Inserts `position` after every entry for which `before` holds;
    /// returns the entries now just before and just after it.
    pub fn insert(
        &mut self,
        position: u32,
        before: impl Fn(u32) -> bool,
        columns: &Columns<'_>,
    ) -> (Option<u32>, Option<u32>) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks
                .push(Chunk::new(vec![position], self.summarised, columns));
            return (None, None);
        }
        // Runs mostly arrive in time order: try the end first.
        let last_chunk = self.chunks.len() - 1;
        let index = match self.chunks[last_chunk].positions.last() {
            Some(&last) if before(last) => last_chunk,
            _ => self
                .chunks
                .partition_point(|c| c.positions.last().is_some_and(|&last| before(last)))
                .min(last_chunk),
        };
        let chunk = &mut self.chunks[index];
        let at = chunk.positions.partition_point(|&p| before(p));
        chunk.positions.insert(at, position);
        if self.summarised {
            let rowcount = columns.rowcounts[position as usize];
            let slot = chunk.rowcounts.partition_point(|&r| r < rowcount);
            chunk.rowcounts.insert(slot, rowcount);
            let s = span(columns, position);
            chunk.spans = if chunk.len() == 1 {
                (s, s)
            } else {
                (chunk.spans.0.min(s), chunk.spans.1.max(s))
            };
        }
        let previous = match at {
            0 => index
                .checked_sub(1)
                .and_then(|i| self.chunks[i].positions.last().copied()),
            _ => Some(self.chunks[index].positions[at - 1]),
        };
        let next = self.chunks[index]
            .positions
            .get(at + 1)
            .copied()
            .or_else(|| {
                self.chunks
                    .get(index + 1)
                    .and_then(|c| c.positions.first().copied())
            });
        if !self.summarised && Self::summarised_at(self.synopses, self.len) {
            self.summarised = true;
            for chunk in &mut self.chunks {
                chunk.summarise(columns);
            }
        }
        if self.chunks[index].len() > MAX_CHUNK {
            let chunk = &mut self.chunks[index];
            let upper = chunk.positions.split_off(chunk.len() / 2);
            if self.summarised {
                chunk.summarise(columns);
            }
            let upper = Chunk::new(upper, self.summarised, columns);
            self.chunks.insert(index + 1, upper);
        }
        (previous, next)
    }

    /// Entries from rank `from` to the end, last first.
    #[cfg(test)]
    pub fn iter_rev_from(&self, from: usize) -> impl Iterator<Item = u32> + '_ {
        self.iter_rev_from_skipping(from, 0)
    }

    /// As `iter_rev_from`, without the first `skip` entries; whole chunks
    /// are stepped over, so a deep page costs no walk through its offset.
    pub fn iter_rev_from_skipping(
        &self,
        from: usize,
        skip: usize,
    ) -> impl Iterator<Item = u32> + '_ {
        let available = self.len.saturating_sub(from);
        let mut remaining_skip = skip.min(available);
        let mut chunks_skipped = 0;
        for chunk in self.chunks.iter().rev() {
            if chunk.len() > remaining_skip {
                break;
            }
            remaining_skip -= chunk.len();
            chunks_skipped += 1;
        }
        self.chunks
            .iter()
            .rev()
            .skip(chunks_skipped)
            .flat_map(|c| c.positions.iter().rev().copied())
            .skip(remaining_skip)
            .take(available.saturating_sub(skip))
    }

    /// The chunks holding ranks `first..last`, highest first, each with
    /// the range of its entries that lies inside.
    fn pieces_rev(
        &self,
        first: usize,
        last: usize,
    ) -> impl Iterator<Item = (&Chunk, usize, usize)> + '_ {
        let mut end = self.len;
        self.chunks
            .iter()
            .rev()
            .map(move |chunk| {
                let start = end - chunk.len();
                end = start;
                (chunk, start)
            })
            .take_while(move |&(chunk, start)| start + chunk.len() > first)
            .filter(move |&(_, start)| start < last)
            .map(move |(chunk, start)| {
                let from = first.saturating_sub(start);
                let to = (last - start).min(chunk.len());
                (chunk, from, to)
            })
    }

    /// How many entries of ranks `first..last` meet `residual`.
    pub fn count(&self, first: usize, last: usize, residual: &Residual<'_>) -> usize {
        if first >= last {
            return 0;
        }
        if residual.is_empty() {
            return last - first;
        }
        self.pieces_rev(first, last)
            .map(|(chunk, from, to)| {
                let whole = from == 0 && to == chunk.len();
                match whole.then(|| residual.chunk_matches(chunk)).flatten() {
                    Some(count) => count,
                    None => chunk.positions[from..to]
                        .iter()
                        .filter(|&&p| residual.admits(p))
                        .count(),
                }
            })
            .sum()
    }

    /// The entries of ranks `first..last` that meet `residual`, highest
    /// rank first, without the first `skip`, at most `limit` of them.
    /// Chunks whose synopsis shows too few matches are stepped over whole.
    pub fn matches_rev(
        &self,
        first: usize,
        last: usize,
        residual: &Residual<'_>,
        mut skip: usize,
        limit: usize,
    ) -> Vec<u32> {
        let mut found = Vec::with_capacity(limit.min(4096));
        if first >= last || limit == 0 {
            return found;
        }
        for (chunk, from, to) in self.pieces_rev(first, last) {
            let whole = from == 0 && to == chunk.len();
            let known = whole.then(|| residual.chunk_matches(chunk)).flatten();
            match known {
                Some(count) if count <= skip => {
                    skip -= count;
                    continue;
                }
                Some(count) if count == chunk.len() => {
                    let wanted = limit - found.len();
                    found.extend(chunk.positions.iter().rev().skip(skip).take(wanted));
                    skip = 0;
                }
                _ => {
                    for &position in chunk.positions[from..to].iter().rev() {
                        if !residual.admits(position) {
                            continue;
                        }
                        if skip > 0 {
                            skip -= 1;
                            continue;
                        }
                        found.push(position);
                        if found.len() == limit {
                            break;
                        }
                    }
                }
            }
            if found.len() == limit {
                break;
            }
        }
        found
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.positions.capacity() * 4 + c.rowcounts.capacity() * 8)
            .sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

/// A sorted multiset of numbers, read by rank.
#[derive(Debug, Default, Clone)]
pub struct SortedValues {
    chunks: Vec<Vec<i64>>,
    len: usize,
}

impl SortedValues {
    pub fn from_sorted(values: &[i64]) -> Self {
        Self {
            chunks: values.chunks(MAX_CHUNK / 2).map(<[i64]>::to_vec).collect(),
            len: values.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunk where `value` belongs.
    fn chunk_of(&self, value: i64) -> usize {
        self.chunks
            .partition_point(|c| c.last().is_some_and(|&last| last < value))
            .min(self.chunks.len().saturating_sub(1))
    }

    pub fn insert(&mut self, value: i64) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(vec![value]);
            return;
        }
        let index = self.chunk_of(value);
        let chunk = &mut self.chunks[index];
        let at = chunk.partition_point(|&v| v < value);
        chunk.insert(at, value);
        if chunk.len() > MAX_CHUNK {
            let upper = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(index + 1, upper);
        }
    }

    /// Removes one occurrence of `value`; false when there is none.
    pub fn remove(&mut self, value: i64) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let index = self.chunk_of(value);
        let chunk = &mut self.chunks[index];
        let at = chunk.partition_point(|&v| v < value);
        if chunk.get(at) != Some(&value) {
            return false;
        }
        chunk.remove(at);
        if chunk.is_empty() {
            self.chunks.remove(index);
        }
        self.len -= 1;
        true
    }

    /// How many values lie in `low..=high`: the chunks wholly inside are
    /// counted by their lengths, the (at most two) cut ones by search.
    pub fn count_within(&self, low: i64, high: i64) -> usize {
        self.chunks
            .iter()
            .filter(|c| {
                c.first().is_some_and(|&f| f <= high) && c.last().is_some_and(|&l| l >= low)
            })
            .map(|c| match (c.first(), c.last()) {
                (Some(&f), Some(&l)) if f >= low && l <= high => c.len(),
                _ => count_within(c, low, high),
            })
            .sum()
    }

    /// The value at `rank` (0-based, ascending); `None` past the end.
    pub fn at(&self, mut rank: usize) -> Option<i64> {
        for chunk in &self.chunks {
            if rank < chunk.len() {
                return Some(chunk[rank]);
            }
            rank -= chunk.len();
        }
        None
    }

    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * 8).sum::<usize>() + self.chunks.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_anywhere_keep_the_order_and_ranks() {
        let columns = Columns {
            starts: &[],
            ends: &[],
            rowcounts: &[],
            durations: &[],
            groups: &[],
        };
        let mut list = ChunkedList::default();
        let mut model: Vec<u32> = Vec::new();
        // A pseudo-random order of values, many equal, to force splits.
        for i in 0..10_000u32 {
            let value = (i.wrapping_mul(2_654_435_761) >> 7) % 997;
            let (previous, next) = list.insert(value, |p| p < value, &columns);
            let at = model.partition_point(|&p| p < value);
            model.insert(at, value);
            assert_eq!(previous, at.checked_sub(1).map(|i| model[i]));
            assert_eq!(next, model.get(at + 1).copied());
        }
        assert_eq!(list.len(), model.len());
        let backwards: Vec<u32> = list.iter_rev_from(0).collect();
        let mut expected = model.clone();
        expected.reverse();
        assert_eq!(backwards, expected);
        for bound in [0, 1, 500, 996, 997] {
            assert_eq!(
                list.rank(|p| p < bound),
                model.partition_point(|&p| p < bound)
            );
        }
        let tail: Vec<u32> = list.iter_rev_from(9_990).collect();
        assert_eq!(tail, expected[..10]);
        for (from, skip) in [
            (0, 0),
            (0, 1),
            (0, 5000),
            (3000, 2500),
            (9_990, 3),
            (0, 10_000),
            (5, 20_000),
        ] {
            let page: Vec<u32> = list.iter_rev_from_skipping(from, skip).collect();
            let wanted: Vec<u32> = expected[..model.len() - from.min(model.len())]
                .iter()
                .skip(skip)
                .copied()
                .collect();
            assert_eq!(page, wanted, "from {from}, skip {skip}");
        }
        let rebuilt = ChunkedList::from_sorted(&model, Synopses::Never, &columns);
        assert_eq!(rebuilt.iter_rev_from(0).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn sorted_values_count_ranges_and_read_ranks_as_a_sorted_vector_does() {
        let mut values = SortedValues::default();
        let mut model: Vec<i64> = Vec::new();
        // Many equal values (splits fall inside runs of them) and extremes.
        for i in 0..6_000i64 {
            let value = match i % 97 {
                0 => i64::MIN,
                1 => i64::MAX,
                _ => (i.wrapping_mul(2_654_435_761) >> 9) % 300 - 150,
            };
            values.insert(value);
            let at = model.partition_point(|&v| v < value);
            model.insert(at, value);
            if i % 5 == 0 {
                let gone = model.remove((i as usize * 7919) % model.len());
                assert!(values.remove(gone));
            }
        }
        assert_eq!(values.len(), model.len());
        let ranks: Vec<i64> = (0..model.len()).filter_map(|r| values.at(r)).collect();
        assert_eq!(ranks, model);
        let bounds = [i64::MIN, -151, -150, -1, 0, 7, 149, 150, i64::MAX];
        for low in bounds {
            for high in bounds {
                let wanted = model.iter().filter(|&&v| low <= v && v <= high).count();
                assert_eq!(values.count_within(low, high), wanted, "{low}..={high}");
            }
        }
    }
}

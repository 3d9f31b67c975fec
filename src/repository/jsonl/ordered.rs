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

    /// Sorted `positions` as chunks (see `pieces`), with synopses when
    /// `summarised`.
    fn cut(positions: &[u32], summarised: bool, columns: &Columns<'_>) -> Vec<Chunk> {
        pieces(positions)
            .map(|piece| Chunk::new(piece, summarised, columns))
            .collect()
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

/// Where a stretch of entries inserted together landed in a list: between
/// `previous` and `next`, entries that were there before (`None` past an
/// end), with nothing else between them; `entries` is the stretch's range
/// in the inserted slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    pub previous: Option<u32>,
    pub next: Option<u32>,
    pub entries: std::ops::Range<usize>,
}

/// Cuts `new` (sorted by `before`) into the stretches each chunk of a
/// sorted list takes, in order: an entry goes to the first chunk whose last
/// entry (`last_of`) is not before it, and the last chunk takes whatever
/// follows them all.
fn stretches<C, T: Copy>(
    chunks: &[C],
    last_of: impl Fn(&C) -> Option<T>,
    new: &[T],
    before: impl Fn(T, T) -> bool,
) -> Vec<(usize, std::ops::Range<usize>)> {
    let last_chunk = chunks.len().saturating_sub(1);
    let mut cut = Vec::new();
    let mut from = 0;
    while from < new.len() {
        let chunk = chunks
            .partition_point(|c| last_of(c).is_some_and(|last| before(last, new[from])))
            .min(last_chunk);
        let to = match chunks.get(chunk).and_then(&last_of) {
            Some(last) if chunk < last_chunk => {
                from + new[from..].partition_point(|&e| !before(last, e))
            }
            _ => new.len(),
        };
        cut.push((chunk, from..to));
        from = to;
    }
    cut
}

/// Merges the sorted `new` into the sorted `old` in place, `new[j]` going
/// after the first `slots[j]` entries of `old` (and after `new[..j]`):
/// every entry after the first slot moves once, by one copy per stretch.
fn merge_at_slots(old: &mut Vec<u32>, new: &[u32], slots: &[usize]) {
    let mut old_end = old.len();
    old.resize(old_end + new.len(), 0);
    let mut end = old.len();
    for (&value, &slot) in new.iter().zip(slots).rev() {
        let moved = old_end - slot;
        old.copy_within(slot..old_end, end - moved);
        end -= moved + 1;
        old_end = slot;
        old[end] = value;
    }
}

/// Merges the sorted `new` into the sorted `old` in place, from the back:
/// a pass over `old` from where the first of `new` goes, read in order,
/// which costs less than searching a chunk not in cache for each value.
fn merge_values(old: &mut Vec<i64>, new: &[i64]) {
    let (mut i, mut j) = (old.len(), new.len());
    old.resize(i + j, 0);
    while j > 0 {
        let at = i + j - 1;
        match i > 0 && old[i - 1] > new[j - 1] {
            true => {
                old[at] = old[i - 1];
                i -= 1;
            }
            false => {
                old[at] = new[j - 1];
                j -= 1;
            }
        }
    }
}

/// `values` cut into chunks of at most half the largest size, as even as
/// can be, so that each has room to grow. Each piece is a copy of its own
/// length: cutting one vector with `split_off` would leave the first
/// piece holding the whole vector's capacity (at load, a second copy of
/// every list).
fn pieces<T: Clone>(values: &[T]) -> impl Iterator<Item = Vec<T>> + '_ {
    let count = values.len().div_ceil(MAX_CHUNK / 2).max(1);
    let size = values.len().div_ceil(count).max(1);
    values.chunks(size).map(<[T]>::to_vec)
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
        Self {
            chunks: Chunk::cut(positions, summarised, columns),
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

    /// Inserts `positions`, which are in the list's order (`before(a, b)`:
    /// `a` comes first, a strict total order the list is sorted by), each
    /// where that order puts it. Returns where they landed: for each
    /// stretch of them that falls between the same two entries already in
    /// the list, those two (none past an end) and the stretch, in order.
    ///
    /// A chunk taking new entries is merged once — its entries after the
    /// first new one move once — so a large batch costs a pass over the
    /// chunks it touches instead of a chunk's worth of moving per entry.
    pub fn insert_sorted(
        &mut self,
        positions: &[u32],
        before: impl Fn(u32, u32) -> bool,
        columns: &Columns<'_>,
    ) -> Vec<Landing> {
        if positions.is_empty() {
            return Vec::new();
        }
        self.len += positions.len();
        let summarise_all = !self.summarised && Self::summarised_at(self.synopses, self.len);
        let keep_synopses = self.summarised;
        if self.chunks.is_empty() {
            self.chunks = Chunk::cut(positions, keep_synopses, columns);
        } else {
            let mut landings = Vec::new();
            let stretches = stretches(
                &self.chunks,
                |c| c.positions.last().copied(),
                positions,
                &before,
            );
            // From the last chunk back, so splitting one leaves the indexes
            // of those before it as they were.
            for (chunk, range) in stretches.into_iter().rev() {
                let previous_last = chunk
                    .checked_sub(1)
                    .and_then(|c| self.chunks[c].positions.last().copied());
                let new = &positions[range.clone()];
                let old = &self.chunks[chunk].positions;
                let mut slots = Vec::with_capacity(new.len());
                let mut slot = 0;
                for &p in new {
                    slot += old[slot..].partition_point(|&o| before(o, p));
                    slots.push(slot);
                }
                let mut first = 0;
                let mut found = Vec::new();
                while first < new.len() {
                    let slot = slots[first];
                    let count = slots[first..].partition_point(|&s| s == slot);
                    found.push(Landing {
                        previous: match slot {
                            0 => previous_last,
                            _ => Some(old[slot - 1]),
                        },
                        next: old.get(slot).copied(),
                        entries: range.start + first..range.start + first + count,
                    });
                    first += count;
                }
                landings.extend(found.into_iter().rev());
                let target = &mut self.chunks[chunk];
                merge_at_slots(&mut target.positions, new, &slots);
                if keep_synopses {
                    let mut rowcounts: Vec<i64> =
                        new.iter().map(|&p| columns.rowcounts[p as usize]).collect();
                    rowcounts.sort_unstable();
                    merge_values(&mut target.rowcounts, &rowcounts);
                    target.spans = new
                        .iter()
                        .map(|&p| span(columns, p))
                        .fold(target.spans, |(low, high), s| (low.min(s), high.max(s)));
                }
                if target.len() > MAX_CHUNK {
                    let whole = std::mem::take(&mut target.positions);
                    let split = Chunk::cut(&whole, keep_synopses, columns);
                    self.chunks.splice(chunk..=chunk, split);
                }
            }
            landings.reverse();
            if summarise_all {
                self.summarise(columns);
            }
            return landings;
        }
        if summarise_all {
            self.summarise(columns);
        }
        vec![Landing {
            previous: None,
            next: None,
            entries: 0..positions.len(),
        }]
    }

    fn summarise(&mut self, columns: &Columns<'_>) {
        self.summarised = true;
        for chunk in &mut self.chunks {
            chunk.summarise(columns);
        }
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
            chunks: pieces(values).collect(),
            len: values.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds `values` (in any order). Each chunk taking some is merged
    /// once, as in `ChunkedList::insert_sorted`.
    pub fn insert_all(&mut self, mut values: Vec<i64>) {
        if values.is_empty() {
            return;
        }
        values.sort_unstable();
        self.len += values.len();
        if self.chunks.is_empty() {
            self.chunks = pieces(&values).collect();
            return;
        }
        let stretches = stretches(&self.chunks, |c| c.last().copied(), &values, |a, b| a < b);
        for (chunk, range) in stretches.into_iter().rev() {
            let new = &values[range];
            let target = &mut self.chunks[chunk];
            merge_values(target, new);
            if target.len() > MAX_CHUNK {
                let whole = std::mem::take(target);
                self.chunks.splice(chunk..=chunk, pieces(&whole));
            }
        }
    }

    /// Removes one occurrence of each of `values` (in any order) that is
    /// there; how many were. Each chunk losing some is compacted once.
    pub fn remove_all(&mut self, mut values: Vec<i64>) -> usize {
        values.sort_unstable();
        let mut removed = 0;
        let mut next = 0;
        let mut chunk = 0;
        while next < values.len() && chunk < self.chunks.len() {
            // Skip the chunks wholly below the next value to remove.
            chunk += self.chunks[chunk..]
                .partition_point(|c| c.last().is_some_and(|&last| last < values[next]));
            let Some(target) = self.chunks.get_mut(chunk) else {
                break;
            };
            let before = target.len();
            target.retain(|&v| {
                while next < values.len() && values[next] < v {
                    // Not there: nothing to remove.
                    next += 1;
                }
                let gone = next < values.len() && values[next] == v;
                next += usize::from(gone);
                !gone
            });
            removed += before - target.len();
            match target.is_empty() {
                true => {
                    self.chunks.remove(chunk);
                }
                false => chunk += 1,
            }
        }
        self.len -= removed;
        removed
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

    /// Columns for lists that keep no synopses (nothing is read from them).
    fn no_columns() -> Columns<'static> {
        Columns {
            starts: &[],
            ends: &[],
            rowcounts: &[],
            durations: &[],
            groups: &[],
        }
    }

    #[test]
    fn inserts_anywhere_keep_the_order_and_ranks() {
        let columns = no_columns();
        let mut list = ChunkedList::default();
        let mut model: Vec<u32> = Vec::new();
        // Distinct values in a pseudo-random order, inserted in batches of
        // 1 to 60 (several landing in one chunk, or between the same two
        // entries), to force splits everywhere.
        let mut next_value = (0..10_000u32).map(|i| i * 7_919 % 10_007);
        let mut size = 0;
        loop {
            size = size % 60 + 1;
            let mut batch: Vec<u32> = next_value.by_ref().take(size).collect();
            if batch.is_empty() {
                break;
            }
            batch.sort_unstable();
            let landings = list.insert_sorted(&batch, |a, b| a < b, &columns);
            // Where each landed: after the same entries of the model.
            let mut expected: Vec<Landing> = Vec::new();
            for (j, &value) in batch.iter().enumerate() {
                let at = model.partition_point(|&p| p < value);
                let previous = at.checked_sub(1).map(|i| model[i]);
                match expected.last_mut() {
                    Some(last) if last.previous == previous && last.entries.end == j => {
                        last.entries.end = j + 1;
                    }
                    _ => expected.push(Landing {
                        previous,
                        next: model.get(at).copied(),
                        entries: j..j + 1,
                    }),
                }
            }
            assert_eq!(landings, expected);
            model.extend_from_slice(&batch);
            model.sort_unstable();
            assert_eq!(list.len(), model.len());
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

    /// A list built whole holds its entries once: no chunk keeps the
    /// capacity of the vector it was cut from (which at load doubled the
    /// memory of every ordering).
    #[test]
    fn lists_built_whole_hold_each_entry_once() {
        let columns = no_columns();
        let positions: Vec<u32> = (0..1_000).collect();
        let built = ChunkedList::from_sorted(&positions, Synopses::Never, &columns);
        let mut inserted = ChunkedList::new(Synopses::Never);
        inserted.insert_sorted(&positions, |a, b| a < b, &columns);
        for list in [&built, &inserted] {
            let held: usize = list.chunks.iter().map(|c| c.positions.capacity()).sum();
            assert_eq!(held, positions.len());
        }
        let mut values = SortedValues::default();
        values.insert_all((0..1_000).collect());
        let held: usize = values.chunks.iter().map(Vec::capacity).sum();
        assert_eq!(held, 1_000);
    }

    #[test]
    fn sorted_values_count_ranges_and_read_ranks_as_a_sorted_vector_does() {
        let mut values = SortedValues::default();
        let mut model: Vec<i64> = Vec::new();
        // Many equal values (splits fall inside runs of them) and extremes.
        // In batches of 1 to 40, each followed by removals of values there
        // and not there.
        let value = |i: i64| match i % 97 {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => (i.wrapping_mul(2_654_435_761) >> 9) % 300 - 150,
        };
        let mut i = 0;
        let mut size = 0;
        while i < 6_000 {
            size = size % 40 + 1;
            let batch: Vec<i64> = (i..i + size).map(value).collect();
            i += size;
            values.insert_all(batch.clone());
            model.extend(batch);
            model.sort_unstable();
            let picked: std::collections::BTreeSet<usize> = (0..size / 4)
                .map(|k| (i * 7_919 + k * 31) as usize % model.len())
                .collect();
            let mut gone: Vec<i64> = picked.into_iter().map(|at| model[at]).collect();
            gone.push(1_000 + i);
            let present = gone.len() - 1;
            for value in &gone[..present] {
                let at = model.partition_point(|v| v < value);
                model.remove(at);
            }
            assert_eq!(values.remove_all(gone), present);
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

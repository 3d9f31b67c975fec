//! A sorted list of record positions kept in chunks, so an insert anywhere
//! (a backfilled run, a start time equal to many others) moves at most one
//! chunk instead of the whole list, while ranks and pages stay cheap.

/// Largest chunk before it splits in two.
const MAX_CHUNK: usize = 2048;

#[derive(Debug, Default, Clone)]
pub struct ChunkedList {
    chunks: Vec<Vec<u32>>,
    len: usize,
}

impl ChunkedList {
    pub const EMPTY: ChunkedList = ChunkedList {
        chunks: Vec::new(),
        len: 0,
    };

    /// A list from positions already in order.
    pub fn from_sorted(positions: Vec<u32>) -> Self {
        let len = positions.len();
        let chunks = positions
            .chunks(MAX_CHUNK / 2)
            .map(<[u32]>::to_vec)
            .collect();
        Self { chunks, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// How many entries are `before` (a predicate true for a prefix).
    pub fn rank(&self, before: impl Fn(u32) -> bool) -> usize {
        let chunk = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&last| before(last)));
        let preceding: usize = self.chunks[..chunk].iter().map(Vec::len).sum();
        let within = self
            .chunks
            .get(chunk)
            .map_or(0, |c| c.partition_point(|&p| before(p)));
        preceding + within
    }

    /// Inserts `position` after every entry for which `before` holds.
    pub fn insert(&mut self, position: u32, before: impl Fn(u32) -> bool) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(vec![position]);
            return;
        }
        let index = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&last| before(last)))
            .min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[index];
        let at = chunk.partition_point(|&p| before(p));
        chunk.insert(at, position);
        if chunk.len() > MAX_CHUNK {
            let upper = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(index + 1, upper);
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
            .flat_map(|c| c.iter().rev().copied())
            .skip(remaining_skip)
            .take(available.saturating_sub(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_anywhere_keep_the_order_and_ranks() {
        let mut list = ChunkedList::default();
        let mut model: Vec<u32> = Vec::new();
        // A pseudo-random order of values, many equal, to force splits.
        for i in 0..10_000u32 {
            let value = (i.wrapping_mul(2_654_435_761) >> 7) % 997;
            list.insert(value, |p| p < value);
            let at = model.partition_point(|&p| p < value);
            model.insert(at, value);
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
        let rebuilt = ChunkedList::from_sorted(model.clone());
        assert_eq!(rebuilt.iter_rev_from(0).collect::<Vec<_>>(), expected);
    }
}

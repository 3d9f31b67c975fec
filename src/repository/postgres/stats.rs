//! `/pipelines/stats` on PostgreSQL. Each replica keeps every group's
//! digest beside the change number its row in `pipeline_summaries` had
//! when the digest was made (the third migration). A call reads those
//! numbers, one row per group, and reads again the runs of only the groups
//! whose number moved, all in one snapshot: the answer is exact, and its
//! cost follows what changed since the last call, not what is stored.
//! A filter with a time or rowcount bound does not select whole groups;
//! its matches are read in one narrow pass instead.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;

use super::rows::{self, SharedNames};
use super::{snapshot, Shared, SUMMARY_TABLE};
use crate::domain::digest::{GroupDigest, GroupKey, UnorderedStatsBuilder};
use crate::repository::sql::{self as shared, Dialect, Statement};
use crate::repository::{RepositoryError, RunFilter};

/// Digests are kept with at least this many latest runs, so that calls
/// asking for different numbers (the dashboard's, the metrics') share them.
const KEPT_LATEST: usize = 128;

/// The digests one replica keeps, by group.
#[derive(Debug, Default)]
pub struct KeptDigests {
    groups: HashMap<GroupKey, Kept>,
}

#[derive(Debug)]
struct Kept {
    /// The group row's change number the digest was made at.
    changed: i64,
    digest: GroupDigest,
}

/// The runs of which groups a call must read again.
enum Reread {
    Nothing,
    /// Every run of these pipeline names (an index range each).
    Names(Vec<String>),
    /// Every run: most groups changed, or one without a name did.
    Everything,
}

impl Shared {
    /// The digests of the groups `filter` selects, each with its `latest`
    /// latest runs.
    pub(super) async fn stats(
        &self,
        filter: &RunFilter,
        latest: usize,
    ) -> Result<Vec<GroupDigest>, RepositoryError> {
        if !filter.selects_whole_groups() {
            let statement = shared::stats_points(Dialect::Postgres, &self.table, filter);
            let builder = self
                .bounded(async |client| read_points(&*client, &statement, None).await)
                .await?;
            return Ok(builder.digests(latest));
        }
        // One call brings the digests up to date at a time; the next finds
        // them current and reads only the change numbers.
        let mut kept = self.kept_digests.lock().await;
        let keep = latest.max(KEPT_LATEST);
        let (current, builder) = self
            .bounded(async |client| {
                let transaction = snapshot(client).await?;
                let current = change_numbers(&transaction).await?;
                let builder = match kept.reread(&current, keep) {
                    Reread::Nothing => None,
                    Reread::Everything => {
                        let all = shared::stats_points(
                            Dialect::Postgres,
                            &self.table,
                            &RunFilter::default(),
                        );
                        Some(read_points(&transaction, &all, None).await?)
                    }
                    Reread::Names(names) => {
                        let mut builder = UnorderedStatsBuilder::default();
                        for name in names {
                            let of_name = RunFilter {
                                pipeline_name: Some(name),
                                ..RunFilter::default()
                            };
                            let statement =
                                shared::stats_points(Dialect::Postgres, &self.table, &of_name);
                            builder = read_points(&transaction, &statement, Some(builder)).await?;
                        }
                        Some(builder)
                    }
                };
                transaction.commit().await?;
                Ok((current, builder))
            })
            .await?;
        kept.update(current, builder, keep);
        Ok(kept.selected(filter, latest))
    }
}

impl KeptDigests {
    /// What must be read again for every group of `current` to be kept
    /// with at least `keep` latest runs.
    fn reread(&self, current: &HashMap<GroupKey, i64>, keep: usize) -> Reread {
        let stale: Vec<&GroupKey> = current
            .iter()
            .filter(|(key, changed)| {
                self.groups.get(*key).is_none_or(|k| {
                    k.changed != **changed
                        || k.digest.latest.len() < keep.min(k.digest.runs as usize)
                })
            })
            .map(|(key, _)| key)
            .collect();
        if stale.is_empty() {
            return Reread::Nothing;
        }
        if stale.len() * 2 > current.len() || stale.iter().any(|key| key[0].is_none()) {
            return Reread::Everything;
        }
        let names: HashSet<&str> = stale.iter().filter_map(|key| key[0].as_deref()).collect();
        let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        names.sort();
        Reread::Names(names)
    }

    /// Keeps the groups of `current` (and only them), with the digests of
    /// the groups read again.
    fn update(
        &mut self,
        current: HashMap<GroupKey, i64>,
        read: Option<UnorderedStatsBuilder>,
        keep: usize,
    ) {
        self.groups.retain(|key, _| current.contains_key(key));
        for digest in read.map(|b| b.digests(keep)).unwrap_or_default() {
            // A group read is in `current`: both come from one snapshot.
            if let Some(&changed) = current.get(&digest.key) {
                self.groups
                    .insert(digest.key.clone(), Kept { changed, digest });
            }
        }
    }

    /// The kept digests of the groups `filter` selects, with `latest`
    /// latest runs each (the newest of those kept).
    fn selected(&self, filter: &RunFilter, latest: usize) -> Vec<GroupDigest> {
        self.groups
            .values()
            .filter(|kept| filter.matches_group(&kept.digest.key))
            .map(|kept| {
                let mut digest = kept.digest.clone();
                let older = digest.latest.len().saturating_sub(latest);
                digest.latest.drain(..older);
                digest
            })
            .collect()
    }
}

/// Every group's change number, in the snapshot of `client`.
async fn change_numbers(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<HashMap<GroupKey, i64>, RepositoryError> {
    let rows = client
        .query(
            &format!(
                "SELECT pipeline_name, script_name, pipeline_type, environment, changed \
FROM {SUMMARY_TABLE}"
            ),
            &[],
        )
        .await?;
    let mut names = SharedNames::default();
    let mut current = HashMap::with_capacity(rows.len());
    for row in rows {
        current.insert(names.group_key(&row, 0)?, row.try_get(4)?);
    }
    Ok(current)
}

/// The runs `statement` (a `stats_points` statement) selects, added to
/// `into` or a new builder: read as a stream, so only the narrow points
/// are held, never the rows.
async fn read_points(
    client: &impl deadpool_postgres::GenericClient,
    statement: &Statement,
    into: Option<UnorderedStatsBuilder>,
) -> Result<UnorderedStatsBuilder, RepositoryError> {
    let values = rows::values(statement);
    let prepared = client.prepare_cached(&statement.sql).await?;
    let stream = client.query_raw(&prepared, rows::params(&values)).await?;
    let mut stream = std::pin::pin!(stream);
    let mut builder = into.unwrap_or_default();
    let mut names = SharedNames::default();
    while let Some(row) = stream.try_next().await? {
        let key = names.group_key(&row, 0)?;
        let start = rows::time_at(&row, 4)?;
        let point = (
            start.instant_micros(),
            row.try_get(6)?,
            row.try_get(7)?,
            start,
        );
        builder.add(&key, point, row.try_get(8)?);
    }
    Ok(builder)
}

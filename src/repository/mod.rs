//! Storage behind one trait, so the HTTP layer never knows which backend
//! answers. The JSON Lines store is embedded; PostgreSQL and Oracle are
//! the shared databases several replicas can serve from.

pub mod compact;
pub mod insert;
pub mod jsonl;
pub mod oracle;
pub mod postgres;
pub mod sql;

pub use self::compact::CompactReport;
pub use self::insert::{InsertOutcome, NewRun};

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::digest::{GroupDigest, StatsBuilder};
use crate::domain::{FlexDateTime, PipelineActivity, PipelineInfo, PipelineSummary};

/// Runs read per step when statistics walk the matches.
const STATS_WALK_PAGE: usize = 10_000;

/// Which records a query wants. Every field is optional; string filters are
/// exact and case-sensitive. Both backends apply exactly these semantics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Keep records whose `start_utc` is at or after this instant.
    pub start_utc: Option<FlexDateTime>,
    /// Keep records whose `end_utc` is at or before this instant.
    pub end_utc: Option<FlexDateTime>,
    pub min_rowcount: Option<i64>,
    pub max_rowcount: Option<i64>,
    pub pipeline_name: Option<String>,
    pub script_name: Option<String>,
    pub pipeline_type: Option<String>,
    pub environment: Option<String>,
}

impl RunFilter {
    /// Whether `record` passes every condition. Naive datetimes count as UTC.
    pub fn matches(&self, record: &PipelineInfo) -> bool {
        let text = |wanted: &Option<String>, actual: Option<&str>| match wanted {
            Some(w) => actual == Some(w.as_str()),
            None => true,
        };
        self.start_utc
            .is_none_or(|b| record.start_utc().instant_micros() >= b.instant_micros())
            && self
                .end_utc
                .is_none_or(|b| record.end_utc().instant_micros() <= b.instant_micros())
            && self.min_rowcount.is_none_or(|m| record.rowcount() >= m)
            && self.max_rowcount.is_none_or(|m| record.rowcount() <= m)
            && text(&self.pipeline_name, record.pipeline_name())
            && text(&self.script_name, record.script_name())
            && text(&self.pipeline_type, record.pipeline_type())
            && text(&self.environment, record.environment())
    }

    /// Whether the filter keeps or drops whole groups: it bounds no time
    /// and no rowcount, so it is a condition on the group fields only.
    pub fn selects_whole_groups(&self) -> bool {
        self.start_utc.is_none()
            && self.end_utc.is_none()
            && self.min_rowcount.is_none()
            && self.max_rowcount.is_none()
    }

    /// Whether the group with these (pipeline_name, script_name,
    /// pipeline_type, environment) values passes the group conditions
    /// (empty texts select nothing, as in every store's queries).
    pub fn matches_group(&self, key: &[Option<Arc<str>>; 4]) -> bool {
        [
            &self.pipeline_name,
            &self.script_name,
            &self.pipeline_type,
            &self.environment,
        ]
        .iter()
        .zip(key)
        .all(
            |(wanted, actual)| match wanted.as_deref().filter(|w| !w.is_empty()) {
                Some(w) => actual.as_deref() == Some(w),
                None => true,
            },
        )
    }
}

/// A position in answer order: the start instant (microseconds since the
/// epoch, naive values read as UTC) and the insertion tiebreak (the
/// record's place in the file on JSON Lines, the identity column on Oracle).
/// Keyset pages continue strictly after one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub start_micros: i64,
    pub seq: i64,
}

/// Where a page starts, in answer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// After skipping this many matches (`Offset(0)`: at the newest).
    Offset(usize),
    /// Strictly after this key: keyset paging, which records inserted
    /// meanwhile never shift, so none is repeated or skipped.
    After(RunKey),
}

impl From<Option<RunKey>> for Position {
    /// After the key, or at the newest match without one.
    fn from(after: Option<RunKey>) -> Self {
        after.map_or(Position::Offset(0), Position::After)
    }
}

/// One page of matches, read from one snapshot of the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPage {
    /// How many records match in all, wherever the page starts; `None`
    /// when not asked for.
    pub total: Option<u64>,
    pub records: Vec<Arc<PipelineInfo>>,
    /// The key of the page's last record when more matches follow it.
    pub next: Option<RunKey>,
}

/// Every match in answer order, handed out a chunk at a time, so an answer
/// of millions of runs never has to be in memory whole. The total is known
/// before the first chunk; a chunk that can no longer be read (the store
/// was replaced meanwhile) is an error, never a silently short answer.
pub struct RunStream {
    pub total: u64,
    chunks: Box<dyn Iterator<Item = Result<Vec<Arc<PipelineInfo>>, RepositoryError>> + Send>,
}

impl RunStream {
    /// A stream of `total` runs read by `chunks`.
    pub fn new(
        total: u64,
        chunks: impl Iterator<Item = Result<Vec<Arc<PipelineInfo>>, RepositoryError>> + Send + 'static,
    ) -> Self {
        Self {
            total,
            chunks: Box::new(chunks),
        }
    }

    /// Runs already read.
    pub fn from_records(records: Vec<Arc<PipelineInfo>>) -> Self {
        let total = records.len() as u64;
        Self::new(total, std::iter::once(Ok(records)))
    }
}

impl Iterator for RunStream {
    type Item = Result<Vec<Arc<PipelineInfo>>, RepositoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.chunks.next()
    }
}

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStream")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage task failed: {0}")]
    Task(String),
    #[error("record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The store cannot be reached now (database down, pool exhausted,
    /// call timed out); answered 503 so clients retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    /// The store refused a value of the run at position `run` of an
    /// insert that the API accepted (say, longer than a database column);
    /// the client can fix it, so it is answered 422. Nothing was stored.
    #[error("value refused by the store: {errors}")]
    Invalid {
        run: usize,
        errors: crate::domain::ValidationErrors,
    },
    /// The store lacks what a feature needs (say, the idempotency columns
    /// of an Oracle table created before they existed).
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// A write failed and nothing of the request is stored (what reached
    /// the file was cut off again); `out_of_space` when the disk, a quota or
    /// a file size limit is full. Answered 507 or 503 so clients retry.
    #[error("write failed, nothing stored: {cause}")]
    WriteFailed { cause: String, out_of_space: bool },
}

/// Storage for pipeline runs. Results are ordered by `start_utc` descending,
/// ties in insertion order.
#[async_trait]
pub trait PipelineInfoRepository: Send + Sync {
    /// `jsonl` or `oracle`.
    fn backend_name(&self) -> &'static str;

    /// Up to `limit` matches of `filter` from `position`, newest start
    /// first (`usize::MAX`: every one), and the key to continue after when
    /// more follow; with `counting`, also how many match in all. The page
    /// and the total come from one snapshot, so they always agree while
    /// records arrive.
    async fn query(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> Result<QueryPage, RepositoryError>;

    /// Stores runs, each with an optional idempotency key, and says what
    /// happened to each, in order. Outcomes are decided with
    /// `insert::plan`, the same way on every backend; everything stored is
    /// stored together (one group commit, one transaction). With `atomic`,
    /// a run that cannot be stored means none is. An error means nothing
    /// was stored.
    async fn insert(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError>;

    /// One summary per (pipeline_name, script_name, pipeline_type,
    /// environment), latest run first.
    async fn summaries(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError>;

    /// Per-pipeline latest run, one entry per summary group.
    async fn activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError>;

    /// The distinct non-empty `archived_file` values of the runs with this
    /// `date_code` (the key the archive endpoint is addressed by), at most
    /// `limit` of them; `None` when no run has this `date_code`. Several
    /// runs may share a `date_code`, so the caller sees whether they agree.
    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError>;

    /// Loads runs that carry no idempotency key, all of them or none
    /// (`pipeline-service import`), the fastest way the store has; returns
    /// how many were stored. By default one atomic insert; PostgreSQL
    /// streams them with `COPY`.
    async fn load(&self, records: Vec<PipelineInfo>) -> Result<u64, RepositoryError> {
        let runs = records.into_iter().map(NewRun::from).collect();
        Ok(self.insert(runs, true).await?.len() as u64)
    }

    /// Whether the store answers a trivial request now (`/ready`).
    async fn ready(&self) -> Result<(), RepositoryError>;

    /// Removes the runs that started before `cutoff` (and, on JSON Lines,
    /// the lines that are not runs), appending them to the JSON Lines file
    /// `archive` first when one is given; with `dry_run` it only counts.
    /// Safe while services use the store: nothing stored meanwhile is lost.
    async fn compact(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&Path>,
        dry_run: bool,
    ) -> Result<CompactReport, RepositoryError>;

    /// What the run statistics of each (pipeline_name, script_name,
    /// pipeline_type, environment) group of the matching runs are computed
    /// from, each with its `latest` latest runs. By default every match is
    /// read by keyset pages of `query`; a store that keeps per-group order
    /// statistics up to date answers from them instead.
    async fn stats(
        &self,
        filter: &RunFilter,
        latest: usize,
    ) -> Result<Vec<GroupDigest>, RepositoryError> {
        let mut builder = StatsBuilder::default();
        let mut after = None;
        loop {
            let page = self
                .query(filter, Position::from(after), STATS_WALK_PAGE, false)
                .await?;
            for run in &page.records {
                builder.add(run);
            }
            match page.next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        Ok(builder.digests(latest))
    }

    /// Every match with its total (an `all_data` answer), as one snapshot
    /// read in chunks. By default one `query` of all matches; a store that
    /// would otherwise build millions of records at once streams them.
    async fn query_all(&self, filter: &RunFilter) -> Result<RunStream, RepositoryError> {
        let page = self
            .query(filter, Position::Offset(0), usize::MAX, false)
            .await?;
        Ok(RunStream::from_records(page.records))
    }
}

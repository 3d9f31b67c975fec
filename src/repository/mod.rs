//! Storage behind one trait, so the HTTP layer never knows which backend
//! answers. The JSON Lines store is embedded; Oracle is the production one.

pub mod insert;
pub mod jsonl;
pub mod oracle;

pub use self::insert::{InsertOutcome, NewRun};

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{FlexDateTime, PipelineInfo, PipelineSummary};
use crate::stats::{GroupDigest, StatsBuilder};

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
}

/// Which slice of the ordered matches to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `limit` records after skipping `offset`.
    Window { limit: usize, offset: usize },
    /// Every match.
    All,
}

impl Page {
    pub fn offset(&self) -> usize {
        match self {
            Page::Window { offset, .. } => *offset,
            Page::All => 0,
        }
    }

    pub fn limit(&self) -> usize {
        match self {
            Page::Window { limit, .. } => *limit,
            Page::All => usize::MAX,
        }
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

/// A keyset page: the records after a key and, when more follow, the key of
/// the last one returned.
#[derive(Debug, Clone, Default)]
pub struct KeysetPage {
    pub records: Vec<Arc<PipelineInfo>>,
    pub next: Option<RunKey>,
}

/// One page of matches with the number of all matches, taken together.
#[derive(Debug, Clone, Default)]
pub struct RunPage {
    pub total: u64,
    pub records: Vec<Arc<PipelineInfo>>,
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

/// The latest state of one pipeline, for per-pipeline metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineActivity {
    /// (pipeline_name, script_name, pipeline_type, environment).
    pub key: [Option<String>; 4],
    pub total_runs: u64,
    /// `start_utc` of the latest run.
    pub last_run: FlexDateTime,
    pub last_elapsed_seconds: f64,
    pub last_rowcount: i64,
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
    /// The store refused a value the API accepted (say, longer than a
    /// database column); the client can fix it, so it is answered 422.
    #[error("value refused by the store: {0}")]
    Invalid(crate::domain::ValidationErrors),
    /// The store lacks what a feature needs (say, the idempotency columns
    /// of an Oracle table created before they existed).
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// Another request with the same idempotency key is being stored.
    #[error("a request with the same idempotency key is being stored")]
    KeyInFlight,
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

    /// The matching records of one page.
    async fn get_pipeline_info(
        &self,
        filter: &RunFilter,
        page: Page,
    ) -> Result<Vec<Arc<PipelineInfo>>, RepositoryError>;

    /// Up to `limit` matches strictly after `after` (from the newest when
    /// `None`), with the key to continue from when more remain. Records
    /// inserted meanwhile never shift a later page: none is repeated or
    /// skipped.
    async fn get_after(
        &self,
        filter: &RunFilter,
        after: Option<RunKey>,
        limit: usize,
    ) -> Result<KeysetPage, RepositoryError>;

    /// The distinct non-empty `archived_file` values of the runs with this
    /// `date_code` (the key the archive endpoint is addressed by), at most
    /// `limit` of them; `None` when no run has this `date_code`. Several
    /// runs may share a `date_code`, so the caller sees whether they agree.
    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError>;

    /// How many records match.
    async fn count_pipeline_info(&self, filter: &RunFilter) -> Result<u64, RepositoryError>;

    /// One summary per (pipeline_name, script_name, pipeline_type,
    /// environment), latest run first.
    async fn get_pipelines_summary(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError>;

    /// Per-pipeline latest run, one entry per summary group.
    async fn get_pipeline_activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError>;

    /// Stores one record; returns it as stored.
    async fn insert_pipeline_info(
        &self,
        record: PipelineInfo,
    ) -> Result<Arc<PipelineInfo>, RepositoryError>;

    /// Stores many records together (one group commit on JSON Lines, array
    /// DML on Oracle); all are stored or the error says none were.
    async fn insert_many(&self, records: Vec<PipelineInfo>) -> Result<usize, RepositoryError>;

    /// Stores runs that may carry idempotency keys, deciding each one's
    /// outcome with `insert::plan`; everything stored is stored together.
    /// With `atomic`, a failure of any run means none is stored.
    async fn insert_runs(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError>;

    /// Whether the store answers a trivial request now (`/ready`).
    async fn ready(&self) -> Result<(), RepositoryError>;

    /// What the run statistics of each (pipeline_name, script_name,
    /// pipeline_type, environment) group of the matching runs are computed
    /// from, each with its `latest` latest runs. By default every match is
    /// read by keyset pages; a store that keeps per-group order statistics
    /// up to date answers from them instead.
    async fn stats(
        &self,
        filter: &RunFilter,
        latest: usize,
    ) -> Result<Vec<GroupDigest>, RepositoryError> {
        let mut builder = StatsBuilder::default();
        let mut after = None;
        loop {
            let page = self.get_after(filter, after, STATS_WALK_PAGE).await?;
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

    /// Every match (an `all_data` answer), as one consistent view read in
    /// chunks. By default one page of all matches; a store that would
    /// otherwise build millions of records at once streams them.
    async fn get_all(&self, filter: &RunFilter) -> Result<RunStream, RepositoryError> {
        let page = self.get_pipeline_info(filter, Page::All).await?;
        Ok(RunStream::from_records(page))
    }

    /// A page and the total count. Backends that can take both from one
    /// snapshot override this so `total` always agrees with the page.
    async fn get_page(&self, filter: &RunFilter, page: Page) -> Result<RunPage, RepositoryError> {
        let total = self.count_pipeline_info(filter).await?;
        let records = self.get_pipeline_info(filter, page).await?;
        Ok(RunPage { total, records })
    }
}

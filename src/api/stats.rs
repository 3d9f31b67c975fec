//! `GET /pipelines/stats`: per-pipeline percentiles, staleness and anomaly
//! flags over the runs matching the filters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::caching;
use super::error::ApiError;
use super::error::{Refusals, UrlTooLong};
use super::extract::{
    documented_params, FromQuery, IntRange, QueryReader, RunFilterParams, ValidQuery,
};
use super::AppState;
use crate::domain::ValidationErrors;
use crate::repository::{PipelineInfoRepository, RepositoryError, RunFilter};
use crate::stats::{self, Flags, PipelineStats, StatsPolicy, MAX_RECENT_RUNS};

/// How many of each group's latest runs to list.
pub const RECENT: IntRange = IntRange {
    min: 0,
    max: Some(MAX_RECENT_RUNS as i64),
    default: Some(0),
};

/// The parameter `/pipelines/stats` adds to the filters (documentation;
/// `StatsQuery` parses, and `RecentRunsParams` adds the bounds it checks).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RecentRunsFields {
    /// Also list each group's latest N runs (`recent`: start, duration,
    /// rows and anomaly flags), for sparklines; 0 leaves the list out.
    recent: Option<u32>,
}

documented_params!(
    /// The statistics parameter with the bounds `StatsQuery` checks.
    RecentRunsParams,
    RecentRunsFields,
    "recent" => RECENT,
);

/// The validated filters (those of `/get_pipeline_info`) and how many
/// recent runs to list.
pub struct StatsQuery {
    filter: RunFilter,
    recent_runs: usize,
}

impl FromQuery for StatsQuery {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut q = QueryReader::new(query);
        let filter = q.filter();
        let recent = q.within("recent", RECENT);
        q.finish(|| StatsQuery {
            filter,
            recent_runs: recent.map_or(0, |n| n as usize),
        })
    }
}

/// Statistics of every pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    /// One entry per (pipeline_name, script_name, pipeline_type,
    /// environment), latest run first.
    pub pipelines: Vec<PipelineStats>,
}

/// Run statistics per pipeline
///
/// For each pipeline (grouped as in `/pipelines`): run count, last run,
/// p50/p95/p99/max duration, median row count, zero-row runs, the typical
/// interval between runs, whether the pipeline is overdue (`stale`), and
/// whether its latest run's duration or row count is an outlier against
/// the runs before it (robust z-score). Definitions are in the study guide.
#[utoipa::path(
    get,
    path = "/pipelines/stats",
    tag = "pipelines",
    params(RunFilterParams, RecentRunsParams),
    responses(
        (status = 200, description = "Statistics, latest run first", body = StatsResponse),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag` (which leaves `seconds_since_last_run` out)"),
        (status = 422, description = "A query parameter is invalid", body = ValidationErrors,
            example = json!({"detail": [{"type": "less_than_equal", "loc": ["query", "recent"], "msg": "Input should be less than or equal to 100", "input": "500", "ctx": {"le": 100}}]})),
        Refusals,
        UrlTooLong,
    ),
    security((), ("api_key" = []))
)]
pub async fn pipeline_stats(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<StatsQuery>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = query.filter;
    let policy = StatsPolicy {
        stale_factor: state.stale_factor,
        baseline_runs: state.baseline_runs,
        now_micros: chrono::Utc::now().timestamp_micros(),
        recent_runs: query.recent_runs,
    };
    let pipelines = compute(state.repository.as_ref(), &filter, policy).await?;
    let etag = entity_tag(&pipelines);
    if caching::matches(&request, &etag) {
        return Ok(caching::not_modified(etag, caching::PRIVATE_REVALIDATE));
    }
    let body = serde_json::to_vec(&StatsResponse { pipelines }).map_err(RepositoryError::from)?;
    Ok(caching::answer(
        &request,
        etag,
        caching::PRIVATE_REVALIDATE,
        "application/json",
        body.into(),
    ))
}

/// The entity tag of an answer: a digest of everything in it except
/// `seconds_since_last_run`, which grows every second without saying
/// anything the client cannot work out from `last_run`. Everything that
/// changes meaning (a new run, a flag turning on as time passes) changes
/// the tag; a client holding the answer is told 304 until then.
fn entity_tag(pipelines: &[PipelineStats]) -> HeaderValue {
    let timeless: Vec<PipelineStats> = pipelines
        .iter()
        .map(|p| PipelineStats {
            seconds_since_last_run: 0.0,
            ..p.clone()
        })
        .collect();
    let mut writer = caching::EntityTagWriter::default();
    // Writing into a digest cannot fail, and these values always serialise.
    let _ = serde_json::to_writer(&mut writer, &timeless);
    writer.finish()
}

/// The statistics flags `/metrics` exports, recomputed at most every
/// `FLAGS_TTL`: on a store that keeps no statistics, computing them walks
/// every run (about a quarter of a second per million on two cores), which
/// a scrape every few seconds — or several scrapers — should not repeat.
/// Alerts see changes at most that late.
#[derive(Default)]
pub struct MetricFlags {
    last: parking_lot::Mutex<Option<(Instant, Arc<Flags>)>>,
}

pub const FLAGS_TTL: Duration = Duration::from_secs(30);

impl MetricFlags {
    pub async fn get(&self, state: &AppState) -> Arc<Flags> {
        if let Some((at, flags)) = self.last.lock().as_ref() {
            if at.elapsed() < FLAGS_TTL {
                return flags.clone();
            }
        }
        let policy = StatsPolicy {
            stale_factor: state.stale_factor,
            baseline_runs: state.baseline_runs,
            now_micros: chrono::Utc::now().timestamp_micros(),
            recent_runs: 0,
        };
        let all = RunFilter::default();
        let flags: Flags = match compute(state.repository.as_ref(), &all, policy).await {
            Ok(stats) => stats
                .into_iter()
                .map(|s| {
                    let key = [
                        s.pipeline_name,
                        s.script_name,
                        s.pipeline_type,
                        s.environment,
                    ];
                    (key, [s.stale, s.duration_anomaly, s.rowcount_anomaly])
                })
                .collect(),
            Err(error) => {
                // Not cached: the next scrape tries again.
                tracing::warn!(%error, "pipeline statistics unavailable for metrics");
                return Arc::default();
            }
        };
        let flags = Arc::new(flags);
        *self.last.lock() = Some((Instant::now(), flags.clone()));
        flags
    }
}

/// The statistics of the matching runs, from the store's per-group digests.
pub async fn compute(
    repository: &dyn PipelineInfoRepository,
    filter: &RunFilter,
    policy: StatsPolicy,
) -> Result<Vec<PipelineStats>, RepositoryError> {
    let digests = repository.stats(filter, policy.latest_runs()).await?;
    Ok(stats::finish(digests, policy))
}

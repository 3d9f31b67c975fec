//! `GET /pipelines/stats`: per-pipeline percentiles, staleness and anomaly
//! flags over the runs matching the filters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{FromQuery, ValidQuery};
use super::openapi::{Refusals, UrlTooLong};
use super::runs::{QueryReader, RunFilterParams};
use super::AppState;
use crate::domain::ValidationErrors;
use crate::repository::{PipelineInfoRepository, RepositoryError, RunFilter};
use crate::stats::{Flags, PipelineStats, StatsBuilder, StatsPolicy};

/// Runs read from the store per step.
const PAGE: usize = 10_000;

/// The validated filters (those of `/get_pipeline_info`).
pub struct StatsQuery(RunFilter);

impl FromQuery for StatsQuery {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut q = QueryReader::new(query);
        let filter = q.filter();
        q.finish(|| StatsQuery(filter))
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
    params(RunFilterParams),
    responses(
        (status = 200, description = "Statistics, latest run first", body = StatsResponse),
        (status = 422, description = "A query parameter is invalid", body = ValidationErrors,
            example = json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}}]})),
        Refusals,
        UrlTooLong,
    ),
    security((), ("api_key" = []))
)]
pub async fn pipeline_stats(
    State(state): State<AppState>,
    ValidQuery(StatsQuery(filter)): ValidQuery<StatsQuery>,
) -> Result<Json<StatsResponse>, ApiError> {
    let policy = StatsPolicy {
        stale_factor: state.stale_factor,
        baseline_runs: state.baseline_runs,
        now_micros: chrono::Utc::now().timestamp_micros(),
    };
    let pipelines = compute(state.repository.as_ref(), &filter, policy).await?;
    Ok(Json(StatsResponse { pipelines }))
}

/// The statistics flags `/metrics` exports, recomputed at most every
/// `FLAGS_TTL`: computing them walks every run (about a quarter of a second
/// per million on two cores), which a scrape every few seconds — or several
/// scrapers — should not repeat. Alerts see changes at most that late.
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

/// Walks every matching run by keyset pages (both backends, bounded
/// memory per page) and computes the statistics.
pub async fn compute(
    repository: &dyn PipelineInfoRepository,
    filter: &RunFilter,
    policy: StatsPolicy,
) -> Result<Vec<PipelineStats>, RepositoryError> {
    let mut builder = StatsBuilder::default();
    let mut after = None;
    loop {
        let page = repository.get_after(filter, after, PAGE).await?;
        for run in &page.records {
            builder.add(run);
        }
        match page.next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    Ok(builder.finish(policy))
}

//! `GET /pipelines/stats`: per-pipeline percentiles, staleness and anomaly
//! flags over the runs matching the filters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorMessage};
use super::extract::{FromQuery, ValidQuery};
use super::runs::QueryReader;
use super::AppState;
use crate::domain::ValidationErrors;
use crate::repository::{PipelineInfoRepository, RepositoryError, RunFilter};
use crate::stats::{self, Flags, PipelineStats, StatsPolicy};

/// Query parameters (documentation; `StatsQuery` parses).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatsParams {
    /// Only this pipeline.
    pipeline_name: Option<String>,
    /// Only this environment.
    environment: Option<String>,
    /// Only runs starting at or after this time.
    #[param(value_type = Option<String>, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-01T00:00:00Z")]
    start_utc: Option<String>,
    /// Only runs ending at or before this time.
    #[param(value_type = Option<String>, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-31T23:59:59Z")]
    end_utc: Option<String>,
}

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
    params(StatsParams),
    responses(
        (status = 200, description = "Statistics, latest run first", body = StatsResponse),
        (status = 401, description = "Reads need an API key and none was sent", body = ErrorMessage),
        (status = 403, description = "The API key is wrong", body = ErrorMessage),
        (status = 422, description = "A query parameter is invalid", body = ValidationErrors),
        (status = 500, description = "Unexpected server fault", body = ErrorMessage),
        (status = 503, description = "Overloaded (with Retry-After) or timed out", body = ErrorMessage),
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
    // The latest run and its baseline.
    let digests = repository
        .stats(filter, policy.baseline_runs.saturating_add(1))
        .await?;
    Ok(stats::finish(digests, policy))
}

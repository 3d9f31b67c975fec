//! Service identity and liveness.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::metrics::METRICS;

/// What this service can do, listed at `/`.
pub const FEATURES: &[&str] = &[
    "runs",
    "filters",
    "pagination",
    "summaries",
    "openapi",
    "cors",
];

#[derive(Debug, Serialize)]
pub struct RootResponse {
    pub message: &'static str,
    pub version: &'static str,
    pub backend: &'static str,
    pub features: &'static [&'static str],
}

/// Service name, version, backend and features (not part of the API document).
pub async fn root(State(state): State<AppState>) -> Json<RootResponse> {
    Json(RootResponse {
        message: "Pipeline Service API",
        version: env!("CARGO_PKG_VERSION"),
        backend: state.repository.backend_name(),
        features: FEATURES,
    })
}

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `healthy` while the process serves.
    #[schema(example = "healthy")]
    pub status: &'static str,
    /// Storage backend in use.
    #[schema(example = "jsonl")]
    pub backend: &'static str,
    /// Service version.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Liveness probe
///
/// Answers while the process serves requests. It never touches storage, so
/// a slow or unreachable database does not make the process look dead.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthResponse))
)]
pub async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "healthy",
        backend: state.repository.backend_name(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Prometheus metrics
///
/// HTTP, storage and process metrics, and per-pipeline gauges of the latest
/// run (`pipeline_last_run_timestamp_seconds`, `pipeline_last_duration_seconds`,
/// `pipeline_last_rowcount`, `pipeline_runs_total`) for alerting on pipelines
/// that stop running or misbehave.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let activity = match state.repository.get_pipeline_activity().await {
        Ok(activity) => activity,
        Err(error) => {
            tracing::warn!(%error, "per-pipeline metrics unavailable");
            Vec::new()
        }
    };
    let text = METRICS.render(activity, state.metrics_max_series);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

//! Service identity and liveness.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
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
    "cursor-pagination",
    "export",
    "bulk-ingest",
    "idempotency-keys",
    "statistics",
    "archived-files",
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
/// `pipeline_last_rowcount`, `pipeline_runs_total`) and flags from the run
/// statistics (`pipeline_stale`, `pipeline_duration_anomaly`,
/// `pipeline_rowcount_anomaly`) for alerting on pipelines that stop running
/// or misbehave.
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
    let flags = state.metric_flags.get(&state).await;
    let text = METRICS.render(activity, &flags, state.metrics_max_series);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// How long readiness waits for the store.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Storage backend in use.
    #[schema(example = "jsonl")]
    pub backend: &'static str,
    /// Why the store is not ready (only when unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Readiness probe
///
/// 200 when the store answers a trivial request within 3 seconds (Oracle:
/// `SELECT 1 FROM DUAL`; JSON Lines: the file is readable and its folder
/// writable), else 503 with the reason. Use it to route traffic; use
/// `/health` for liveness.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = ReadyResponse),
        (status = 503, description = "The store does not answer; `detail` says why", body = ReadyResponse,
            example = json!({"status": "unavailable", "backend": "oracle", "detail": "no answer within 3 seconds"})),
    )
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let backend = state.repository.backend_name();
    let outcome = tokio::time::timeout(READY_TIMEOUT, state.repository.ready()).await;
    let detail = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!(
            "no answer within {} seconds",
            READY_TIMEOUT.as_secs()
        )),
    };
    match detail {
        None => (
            StatusCode::OK,
            Json(ReadyResponse {
                status: "ready",
                backend,
                detail: None,
            }),
        ),
        Some(detail) => {
            tracing::warn!(%detail, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ReadyResponse {
                    status: "unavailable",
                    backend,
                    detail: Some(detail),
                }),
            )
        }
    }
}

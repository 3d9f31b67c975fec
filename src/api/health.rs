//! Service identity and liveness.

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorMessage, SERVER_BUSY};
use super::AppState;
use crate::metrics::{PipelineCollector, METRICS};

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
    "dashboard",
];

#[derive(Debug, Serialize)]
pub struct RootResponse {
    pub message: &'static str,
    pub version: &'static str,
    pub backend: &'static str,
    pub features: &'static [&'static str],
}

/// Service name, version, backend and features (not part of the API
/// document). A browser (asking for HTML) is sent to the dashboard instead.
pub async fn root(State(state): State<AppState>, request: HeaderMap) -> Response {
    // Caches must keep the two answers apart.
    let vary = [(VARY, "accept")];
    if accepts_html(&request) {
        return (vary, Redirect::temporary(super::ui::PAGE_PATH)).into_response();
    }
    let answer = Json(RootResponse {
        message: "Pipeline Service API",
        version: env!("CARGO_PKG_VERSION"),
        backend: state.repository.backend_name(),
        features: FEATURES,
    });
    (vary, answer).into_response()
}

/// Whether `Accept` lists `text/html` (not with `q=0`): what browsers send
/// when a person opens an address. API clients send JSON types, `*/*` or
/// nothing, and keep the JSON answer.
fn accepts_html(request: &HeaderMap) -> bool {
    request
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
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
/// `pipeline_last_rowcount`, `pipeline_runs`) and flags from the run
/// statistics (`pipeline_stale`, `pipeline_duration_anomaly`,
/// `pipeline_rowcount_anomaly`) for alerting on pipelines that stop running
/// or misbehave. Label values are cut to 128 characters. One rendering
/// answers every scrape of the same second; a few scrapes may be in
/// progress at once, more answer 503.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 503, description = "Too many scrapes in progress (with Retry-After)", body = ErrorMessage,
            example = json!({"detail": SERVER_BUSY})),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .exposition
        .get(|| async {
            let activity = match state.repository.activity().await {
                Ok(activity) => activity,
                Err(error) => {
                    tracing::warn!(%error, "per-pipeline metrics unavailable");
                    Vec::new()
                }
            };
            let flags = state.metric_flags.get(&state).await;
            let pipelines = PipelineCollector::new(activity, flags, state.metrics_max_series);
            METRICS.render(state.repository.backend_name(), &pipelines)
        })
        .await
        .map_err(|_| ApiError::Overloaded)?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
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
    /// Why the store is not ready (only when unavailable): a short fixed
    /// reason; the cause is in the service log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// The answer's reason when the store's check fails: storage errors name
/// paths and system details, which are for the log, not for anyone who can
/// reach the probe.
const CHECK_FAILED: &str = "the store failed its check; the cause is in the service log";
/// Says `READY_TIMEOUT`.
const NO_ANSWER: &str = "the store did not answer within 3 seconds";

/// Readiness probe
///
/// 200 when the store answers a trivial request within 3 seconds (Oracle:
/// `SELECT 1 FROM DUAL`; JSON Lines: the file is readable and its folder
/// writable), else 503 with a short fixed reason (the cause goes to the
/// log). Use it to route traffic; use `/health` for liveness.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = ReadyResponse),
        (status = 503, description = "The store does not answer; `detail` gives a fixed reason, the cause is logged", body = ReadyResponse,
            example = json!({"status": "unavailable", "backend": "jsonl", "detail": CHECK_FAILED})),
    )
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let backend = state.repository.backend_name();
    let outcome = tokio::time::timeout(READY_TIMEOUT, state.repository.ready()).await;
    let detail = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the store failed its check");
            Some(CHECK_FAILED)
        }
        Err(_) => {
            tracing::warn!(
                seconds = READY_TIMEOUT.as_secs(),
                "not ready: the store did not answer"
            );
            Some(NO_ANSWER)
        }
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
        Some(detail) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyResponse {
                status: "unavailable",
                backend,
                detail: Some(detail),
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn browsers_ask_for_html_and_api_clients_do_not() {
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(accepts_html(&accept(chromium)));
        assert!(accepts_html(&accept("TEXT/HTML; charset=utf-8")));
        assert!(!accepts_html(&accept("application/json")));
        assert!(!accepts_html(&accept("*/*")));
        assert!(!accepts_html(&accept("text/html;q=0, application/json")));
        assert!(!accepts_html(&HeaderMap::new()));
    }
}

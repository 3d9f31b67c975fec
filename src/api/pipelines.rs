//! `/pipelines`: per-pipeline summaries and run ingestion.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorMessage};
use super::extract::JsonBody;
use super::AppState;
use crate::domain::{PipelineInfo, PipelineSummary, ValidationErrors};
use crate::repository::RepositoryError;

/// Every pipeline's summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineListResponse {
    /// One entry per (pipeline_name, script_name, pipeline_type,
    /// environment), latest run first.
    #[schema(value_type = Vec<PipelineSummary>)]
    pub pipelines: Arc<[PipelineSummary]>,
}

/// Summarise pipelines
///
/// One summary per distinct (pipeline_name, script_name, pipeline_type,
/// environment), nulls included: run count, last run, and the averages of
/// positive durations and row counts. Latest run first.
#[utoipa::path(
    get,
    path = "/pipelines",
    tag = "pipelines",
    responses(
        (status = 200, description = "Summaries, latest run first", body = PipelineListResponse),
        (status = 401, description = "Reads need an API key and none was sent", body = ErrorMessage),
        (status = 403, description = "The API key is wrong", body = ErrorMessage),
        (status = 500, description = "Unexpected server fault", body = ErrorMessage),
        (status = 503, description = "Overloaded (with Retry-After) or timed out", body = ErrorMessage),
    ),
    security((), ("api_key" = []))
)]
pub async fn list_pipelines(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pipelines = state.repository.get_pipelines_summary().await?;
    let body = state.summary_json.body_for(pipelines)?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// The last `/pipelines` answer, reused while the repository hands out the
/// same summary list (the JSON Lines store keeps one until a record arrives),
/// so a busy dashboard costs no serialisation.
#[derive(Default)]
pub struct SummaryJsonCache {
    last: parking_lot::Mutex<Option<(Arc<[PipelineSummary]>, Bytes)>>,
}

impl SummaryJsonCache {
    fn body_for(&self, pipelines: Arc<[PipelineSummary]>) -> Result<Bytes, ApiError> {
        if let Some((cached, body)) = self.last.lock().as_ref() {
            if Arc::ptr_eq(cached, &pipelines) {
                return Ok(body.clone());
            }
        }
        let response = PipelineListResponse {
            pipelines: pipelines.clone(),
        };
        let body = Bytes::from(serde_json::to_vec(&response).map_err(RepositoryError::from)?);
        *self.last.lock() = Some((pipelines, body.clone()));
        Ok(body)
    }
}

/// Record a pipeline run
///
/// Validates the body (lenient numbers, many datetime forms; unknown fields
/// ignored), stores it, and answers with the record as stored.
#[utoipa::path(
    post,
    path = "/pipelines",
    tag = "pipelines",
    request_body(content = PipelineInfo, description = "The finished run", content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and synced to disk; the normalised record", body = PipelineInfo),
        (status = 401, description = "API keys are configured and none was sent", body = ErrorMessage),
        (status = 403, description = "The API key is wrong", body = ErrorMessage),
        (status = 413, description = "The body is larger than the configured limit", body = ErrorMessage),
        (status = 422, description = "The body is not a valid run record; every problem is listed", body = ValidationErrors),
        (status = 500, description = "Unexpected server fault", body = ErrorMessage),
        (status = 503, description = "Overloaded (with Retry-After) or timed out", body = ErrorMessage),
    ),
    security(("api_key" = []), ())
)]
pub async fn create_pipeline_run(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Arc<PipelineInfo>>), ApiError> {
    let record = PipelineInfo::parse(&body, "body")?;
    let stored = state.repository.insert_pipeline_info(record).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

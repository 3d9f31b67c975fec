//! `/pipelines`: per-pipeline summaries and run ingestion.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorMessage};
use super::extract::JsonBody;
use super::AppState;
use crate::domain::{PipelineInfo, PipelineSummary, ValidationErrors};

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
pub async fn list_pipelines(
    State(state): State<AppState>,
) -> Result<Json<PipelineListResponse>, ApiError> {
    let pipelines = state.repository.get_pipelines_summary().await?;
    Ok(Json(PipelineListResponse { pipelines }))
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

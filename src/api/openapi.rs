//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use super::error::ErrorMessage;
use super::health::HealthResponse;
use super::pipelines::PipelineListResponse;
use super::runs::PipelineInfoResponse;
use crate::domain::{LocItem, PipelineInfo, PipelineSummary, ValidationError, ValidationErrors};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pipeline Service",
        description = "Records and serves metadata about data-pipeline runs: pipelines POST one \
record per finished run; dashboards query runs with filters and pagination or read per-pipeline \
summaries.",
    ),
    paths(
        super::health::health,
        super::pipelines::list_pipelines,
        super::pipelines::create_pipeline_run,
        super::runs::get_pipeline_info,
    ),
    components(schemas(
        PipelineInfo,
        PipelineSummary,
        PipelineInfoResponse,
        PipelineListResponse,
        HealthResponse,
        ErrorMessage,
        ValidationErrors,
        ValidationError,
        LocItem,
    )),
    tags(
        (name = "runs", description = "Query recorded runs"),
        (name = "pipelines", description = "Record runs and read per-pipeline summaries"),
        (name = "operations", description = "Probes for orchestrators"),
    )
)]
pub struct ApiDoc;

//! The OpenAPI document served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorMessage;
use super::health::{HealthResponse, ReadyResponse};
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
        super::health::ready,
        super::health::metrics,
        super::pipelines::list_pipelines,
        super::pipelines::create_pipeline_run,
        super::bulk::create_pipeline_runs,
        super::stats::pipeline_stats,
        super::runs::get_pipeline_info,
        super::export::download_pipeline_info,
    ),
    components(schemas(
        PipelineInfo,
        PipelineSummary,
        PipelineInfoResponse,
        PipelineListResponse,
        super::bulk::BulkResponse,
        super::stats::StatsResponse,
        crate::stats::PipelineStats,
        super::bulk::BulkItemResult,
        HealthResponse,
        ReadyResponse,
        ErrorMessage,
        ValidationErrors,
        ValidationError,
        LocItem,
    )),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "runs", description = "Query recorded runs"),
        (name = "pipelines", description = "Record runs and read per-pipeline summaries"),
        (name = "operations", description = "Probes for orchestrators"),
    )
)]
pub struct ApiDoc;

/// Declares the `X-API-Key` header so Swagger UI's Authorize button works.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Needed for writes when PIPELINE_API_KEYS or PIPELINE_API_KEYS_FILE is set, \
and for reads too when PIPELINE_API_KEYS_FOR_READS=true.",
            ))),
        );
    }
}

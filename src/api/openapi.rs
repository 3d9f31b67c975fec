//! The OpenAPI document served at `/openapi.json`, and the Swagger UI
//! settings of `/docs`.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use crate::domain::datetime::schema::{DateTime, DateTimeInput, DateTimeText};
use crate::domain::numbers::schema::{IntegerInput, NumberInput};
use crate::domain::policy::ValidationPolicy;
use crate::domain::record::PipelineInfoInput;

use super::cursor::CursorToken;
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
        super::archive::archived_file,
        super::runs::get_pipeline_info,
        super::export::download_pipeline_info,
    ),
    components(schemas(
        PipelineInfo,
        PipelineInfoInput,
        super::bulk::BulkItem,
        super::bulk::BulkBody,
        PipelineSummary,
        PipelineInfoResponse,
        PipelineListResponse,
        super::bulk::BulkResponse,
        super::stats::StatsResponse,
        crate::stats::PipelineStats,
        crate::stats::RecentRun,
        super::bulk::BulkItemResult,
        HealthResponse,
        ReadyResponse,
        ErrorMessage,
        ValidationErrors,
        ValidationError,
        LocItem,
        DateTime,
        DateTimeText,
        DateTimeInput,
        IntegerInput,
        NumberInput,
        CursorToken,
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

/// The document for these settings: allowed values, when configured, show
/// as enums on the request schemas' `pipeline_type` and `environment`
/// (answers may still hold older values, so their schema does not).
pub fn document(policy: &ValidationPolicy) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let restricted = [
        ("pipeline_type", &policy.allowed_types),
        ("environment", &policy.allowed_environments),
    ];
    let Some(components) = doc.components.as_mut() else {
        return doc;
    };
    for request_schema in ["PipelineInfoInput", "BulkItem"] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(request_schema)
        else {
            continue;
        };
        for (field, allowed) in restricted {
            let Some(allowed) = allowed else { continue };
            let mut values: Vec<serde_json::Value> = allowed
                .iter()
                .map(|v| serde_json::Value::from(v.as_str()))
                .collect();
            values.push(serde_json::Value::Null);
            let property = ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .enum_values(Some(values))
                .description(Some(format!(
                    "One of the values this service allows (PIPELINE_ALLOWED_{}), or null.",
                    if field == "environment" {
                        "ENVIRONMENTS"
                    } else {
                        "TYPES"
                    }
                )))
                .build();
            object
                .properties
                .insert(field.to_owned(), RefOr::T(Schema::Object(property)));
        }
    }
    doc
}

/// Swagger UI at `/docs`: no bar for loading other documents, the API key
/// kept across reloads, request durations shown, and a filter by tag.
pub fn swagger_config() -> Config<'static> {
    Config::from("/openapi.json")
        .use_base_layout()
        .persist_authorization(true)
        .display_request_duration(true)
        .filter(true)
}

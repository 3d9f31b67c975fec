//! `/pipelines`: per-pipeline summaries and run ingestion.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::caching;
use super::error::Refusals;
use super::error::{
    ApiError, ErrorMessage, InsertAnswer, KEY_REUSED, STORAGE_FULL, UNDECODABLE_BODY,
};
use super::extract::JsonBody;
use super::AppState;
use crate::domain::record::PipelineInfoInput;
use crate::domain::{
    FieldError, IdempotencyKey, LocItem, PipelineInfo, PipelineSummary, ValidationErrors,
};
use crate::repository::oracle::KEYS_NEED_COLUMNS;
use crate::repository::{NewRun, RepositoryError};

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
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`"),
        Refusals,
    ),
    security((), ("api_key" = []))
)]
pub async fn list_pipelines(
    State(state): State<AppState>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let pipelines = state.repository.summaries().await?;
    let (body, etag) = state.summary_json.body_for(pipelines)?;
    Ok(caching::answer(
        &request,
        etag,
        caching::PRIVATE_REVALIDATE,
        "application/json",
        body,
    ))
}

/// The last `/pipelines` answer and its entity tag, reused while the
/// repository hands out the same summary list (the JSON Lines store keeps
/// one until a record arrives), so a busy dashboard costs no serialisation
/// and no hashing; a revalidation then costs a pointer comparison.
#[derive(Default)]
pub struct SummaryJsonCache {
    last: parking_lot::Mutex<Option<SummaryJson>>,
}

/// A summary list, its JSON answer and the answer's entity tag.
struct SummaryJson {
    pipelines: Arc<[PipelineSummary]>,
    body: Bytes,
    etag: HeaderValue,
}

impl SummaryJsonCache {
    fn body_for(
        &self,
        pipelines: Arc<[PipelineSummary]>,
    ) -> Result<(Bytes, HeaderValue), ApiError> {
        if let Some(cached) = self.last.lock().as_ref() {
            if Arc::ptr_eq(&cached.pipelines, &pipelines) {
                return Ok((cached.body.clone(), cached.etag.clone()));
            }
        }
        let response = PipelineListResponse {
            pipelines: pipelines.clone(),
        };
        let body = Bytes::from(serde_json::to_vec(&response).map_err(RepositoryError::from)?);
        let etag = caching::entity_tag(&body);
        *self.last.lock() = Some(SummaryJson {
            pipelines,
            body: body.clone(),
            etag: etag.clone(),
        });
        Ok((body, etag))
    }
}

/// Record a pipeline run
///
/// Validates the body (lenient numbers, many datetime forms; unknown fields
/// ignored), stores it, and answers with the record as stored. With an
/// `Idempotency-Key` header, a repeat of the same record answers the
/// original 201 (marked `Idempotent-Replayed: true`) and stores nothing.
#[utoipa::path(
    post,
    path = "/pipelines",
    tag = "pipelines",
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = r"^[!-~]{1,255}$",
            description = "Names this insert (1-255 visible ASCII characters) so a retry stores nothing twice; remembered for PIPELINE_IDEMPOTENCY_RETENTION_S (7 days by default)"),
    ),
    request_body(content = PipelineInfoInput, description = "The finished run", content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and synced to disk (or replayed); the normalised record", body = PipelineInfo,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answer repeats an earlier insert with the same key"))),
        (status = 400, description = "The body is not text in the encoding its first bytes announce (UTF-8 unless a byte-order mark or NUL bytes say UTF-16/32)", body = ErrorMessage,
            example = json!({"detail": UNDECODABLE_BODY})),
        (status = 409, description = "The Idempotency-Key was used with a different record, or its first request is still being stored", body = ErrorMessage,
            example = json!({"detail": KEY_REUSED})),
        (status = 413, description = "The body is larger than the configured limit (PIPELINE_MAX_BODY_BYTES)", body = ErrorMessage,
            example = json!({"detail": "Request body too large: the limit is 1048576 bytes"})),
        (status = 422, description = "The body is not a valid run record; every problem is listed", body = ValidationErrors,
            example = json!({"detail": [{"type": "missing", "loc": ["body", "rowcount"], "msg": "Field required",
                "input": {"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": "2025-08-08T12:07:01Z",
                    "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1325.0, "elapsed_human": "22m 5s",
                    "output_file": "/data/pipeline/sales_daily/output-20250808.csv", "log_file": "/data/logs/sales_daily-20250808_050701.log",
                    "pid": 48213, "date_code": "20250808_050701"}}]})),
        (status = 501, description = "Oracle only: the table lacks the idempotency columns", body = ErrorMessage,
            example = json!({"detail": KEYS_NEED_COLUMNS})),
        Refusals,
        (status = 507, description = "The disk is full: nothing was stored; retry after Retry-After", body = ErrorMessage,
            example = json!({"detail": STORAGE_FULL})),
    ),
    security(("api_key" = []), ())
)]
pub async fn create_pipeline_run(
    State(state): State<AppState>,
    IdempotencyHeader(raw_key): IdempotencyHeader,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let record = state.validation.parse(&body, "body", &[])?;
    let key = raw_key.map(|raw| header_key(&raw, &record)).transpose()?;
    let outcome = state
        .repository
        .insert(vec![NewRun { record, key }], true)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| RepositoryError::Task("the store answered no outcome".into()))?;
    Ok(InsertAnswer::from(outcome).into_response())
}

/// The key the `Idempotency-Key` header gives `record`, or why it is refused.
fn header_key(
    raw: &HeaderValue,
    record: &PipelineInfo,
) -> Result<IdempotencyKey, ValidationErrors> {
    raw.to_str()
        .map_err(|_| {
            FieldError::new(
                "value_error",
                "Value error, Idempotency-Key must be visible ASCII characters without spaces",
            )
        })
        .and_then(|text| IdempotencyKey::parse(text, record))
        .map_err(|error| {
            let loc = vec![LocItem::from("header"), LocItem::from(IDEMPOTENCY_KEY)];
            let input = Value::String(String::from_utf8_lossy(raw.as_bytes()).into_owned());
            ValidationErrors::single(error.at(loc, input))
        })
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header, if sent (taken alone rather than copying
/// every header of every insert).
pub struct IdempotencyHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(IDEMPOTENCY_KEY).cloned()))
    }
}

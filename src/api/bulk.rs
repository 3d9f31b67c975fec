//! `POST /pipelines/bulk`: many runs in one request, each validated with
//! the single-insert rules and answered one by one.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::budget::BodyRefused;
use super::error::Refusals;
use super::error::{
    ApiError, ErrorMessage, InsertAnswer, NOT_STORED, STORAGE_FULL, UNDECODABLE_BODY,
};
use super::extract::QueryReader;
use super::python_json;
use super::AppState;
use crate::domain::numbers::bool_from_str;
use crate::domain::policy::ValidationPolicy;
use crate::domain::record::PipelineInfoInput;
use crate::domain::usual::UsualRecord;
use crate::domain::{FieldError, IdempotencyKey, LocItem, ValidationError, ValidationErrors};
use crate::repository::{InsertOutcome, NewRun, RepositoryError};

/// The member of a bulk item that carries its idempotency key.
pub const ITEM_KEY_FIELD: &str = "_idempotency_key";

/// Query parameters of `POST /pipelines/bulk`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BulkParams {
    /// Store every item or none: any invalid item or refused key stores
    /// nothing and answers 409, with every item's outcome.
    #[param(default = false)]
    atomic: Option<bool>,
}

/// One item of a bulk body: a run record that may carry its own
/// idempotency key.
pub struct BulkItem;

impl utoipa::PartialSchema for BulkItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let mut schema = <PipelineInfoInput as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(item)) = &mut schema {
            let key = crate::domain::text_schema(r"^[!-~]{1,255}$").description(Some(
                "Names this item's insert like the `Idempotency-Key` header of \
`POST /pipelines` (1-255 visible ASCII characters).",
            ));
            item.properties.insert(
                ITEM_KEY_FIELD.to_owned(),
                RefOr::T(Schema::Object(key.build())),
            );
        }
        schema
    }
}

impl ToSchema for BulkItem {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("BulkItem")
    }
}

crate::domain::documentation_type!(
    BulkBody,
    "BulkBody",
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::schema::AnyOfBuilder::new()
                .item(utoipa::openapi::Ref::from_schema_name("BulkItem"))
                .item(
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue),
                )
                .description(Some(
                    "A run record (`BulkItem`). Any other JSON value is taken too and fails \
alone: its result is a 422 with the problems, and the request still answers 200 (with \
atomic=true nothing is stored and the request answers 409).",
                )),
        )
        .description(Some("The runs to store, in order."))
        .into()
);

/// What happened to each item, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    /// Items stored by this request.
    pub stored: usize,
    /// Items whose key had already stored the same record (nothing stored).
    pub replayed: usize,
    /// Items not stored.
    pub failed: usize,
    /// Validation errors left out of the items' `errors` by the caps (at
    /// most 20 listed per item, 1000 per answer); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_omitted: usize,
    pub results: Vec<BulkItemResult>,
}

/// The outcome of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItemResult {
    /// Position in the request (0-based; NDJSON counts non-blank lines).
    pub index: usize,
    /// 201 stored (or replayed), 409 key refused, 422 invalid, 424 valid but
    /// not stored because another item failed an atomic request.
    #[schema(example = 201)]
    pub status: u16,
    /// True when the item's key had already stored this record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Why a 409 or 424.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The item's validation errors (a 422), located at `body`, the index,
    /// then the field — the shape FastAPI gives a list body. Capped: see
    /// `errors_omitted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ValidationError>>,
    /// How many of the item's validation errors are not listed; absent when
    /// none.
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_omitted: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Most validation errors listed for one item.
pub const MAX_ERRORS_PER_ITEM: usize = 20;
/// Most validation errors listed in one answer, over all items.
pub const MAX_ERRORS_LISTED: usize = 1000;

/// Record many pipeline runs
///
/// A JSON array of run records (`application/json`) or one record per line
/// (`application/x-ndjson`), up to the configured maximum. Each item is
/// validated like `POST /pipelines` and may carry an `_idempotency_key`
/// member. All stored items are written and synced together; the answer
/// lists every item's outcome.
#[utoipa::path(
    post,
    path = "/pipelines/bulk",
    operation_id = "create_pipeline_runs_in_bulk",
    tag = "pipelines",
    params(BulkParams),
    request_body(
        description = "A JSON array of run records, or NDJSON (one record per line)",
        content(
            (BulkBody = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Processed; see each item's status", body = BulkResponse),
        (status = 409, description = "atomic=true and an item was invalid or its key refused: nothing stored; `results` gives each item's outcome", body = BulkResponse,
            example = json!({"stored": 0, "replayed": 0, "failed": 2, "results": [
                {"index": 0, "status": 424, "detail": NOT_STORED},
                {"index": 1, "status": 422, "errors": [{"type": "int_parsing", "loc": ["body", 1, "rowcount"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "many"}]}]})),
        (status = 400, description = "The body is not text in the encoding its first bytes announce", body = ErrorMessage,
            example = json!({"detail": UNDECODABLE_BODY})),
        (status = 413, description = "Too many items (PIPELINE_MAX_BULK) or too large a body (PIPELINE_MAX_BULK_BYTES)", body = ErrorMessage,
            example = json!({"detail": "Too many records: the limit is 10000 per request"})),
        (status = 422, description = "The body is not a JSON array or NDJSON, or a query parameter is invalid", body = ValidationErrors,
            example = json!({"detail": [{"type": "json_invalid", "loc": ["body", 10], "msg": "JSON decode error", "input": {}, "ctx": {"error": "Expecting ',' delimiter"}}]})),
        Refusals,
        (status = 507, description = "The disk is full: nothing was stored; retry after Retry-After", body = ErrorMessage,
            example = json!({"detail": STORAGE_FULL})),
    ),
    security(("api_key" = []), ())
)]
pub async fn create_pipeline_runs(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let mut query = QueryReader::new(request.uri().query());
    let atomic = query.parsed("atomic", bool_from_str).unwrap_or(false);
    query.finish(|| ())?;
    let ndjson = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_ndjson);
    let limit = state.limits.max_bulk_bytes;
    // Held until the answer is built: the body and the records made from
    // it stay within the shared budget.
    let (bytes, _reservation) = state
        .bulk_budget
        .read(request.into_body(), limit)
        .await
        .map_err(|refused| match refused {
            BodyRefused::TooLarge => ApiError::PayloadTooLarge(limit),
            BodyRefused::OverBudget => ApiError::Overloaded,
            BodyRefused::Broken => {
                let missing = FieldError::missing().at(vec![LocItem::from("body")], Value::Null);
                ApiError::Validation(ValidationErrors::single(missing))
            }
        })?;
    let max_bulk = state.limits.max_bulk;
    let policy = state.validation.clone();
    // Validation is CPU work proportional to the body: keep it off the
    // threads that serve other requests.
    let checked = tokio::task::spawn_blocking(move || {
        let text = python_json::body_text(&bytes).ok_or(ApiError::UndecodableBody)?;
        let items = split_items(text.as_bytes(), ndjson)?;
        if items.len() > max_bulk {
            return Err(ApiError::TooManyItems(max_bulk));
        }
        Ok(check_items(items, &policy))
    })
    .await
    .map_err(|e| ApiError::Storage(RepositoryError::Task(e.to_string())))??;
    let (runs, positions, mut invalid) = checked;
    let total = positions.len() + invalid.len();
    let outcomes = if atomic && !invalid.is_empty() {
        vec![InsertOutcome::NotStored; runs.len()]
    } else {
        match state.repository.insert(runs, atomic).await {
            Ok(outcomes) => outcomes,
            // A value the store refused, located at its item like the
            // validation errors of any item.
            Err(RepositoryError::Invalid { run, mut errors }) => {
                locate(&mut errors, positions.get(run).copied().unwrap_or(run));
                return Err(ApiError::Validation(errors));
            }
            Err(error) => return Err(error.into()),
        }
    };
    let mut results: Vec<Option<BulkItemResult>> = (0..total).map(|_| None).collect();
    let errors_omitted = invalid.iter().map(|item| item.omitted).sum();
    for item in invalid.drain(..) {
        results[item.index] = Some(BulkItemResult {
            index: item.index,
            status: 422,
            replayed: false,
            detail: None,
            errors: Some(item.listed),
            errors_omitted: item.omitted,
        });
    }
    for (index, outcome) in positions.into_iter().zip(outcomes) {
        let (status, replayed, detail) = match InsertAnswer::from(outcome) {
            InsertAnswer::Stored { replayed, .. } => (201, replayed, None),
            InsertAnswer::Refused(status, text) => (status.as_u16(), false, Some(text)),
        };
        results[index] = Some(BulkItemResult {
            index,
            status,
            replayed,
            detail: detail.map(str::to_owned),
            errors: None,
            errors_omitted: 0,
        });
    }
    let results: Vec<BulkItemResult> = results.into_iter().flatten().collect();
    let count = |f: fn(&BulkItemResult) -> bool| results.iter().filter(|r| f(r)).count();
    let stored = count(|r| r.status == 201 && !r.replayed);
    let replayed = count(|r| r.replayed);
    let failed = count(|r| r.status != 201);
    // An atomic request that stored nothing is refused as a whole, even
    // when the cause is an invalid item: the body's schema admits any item
    // (without atomic=true an invalid one fails alone), so 409 — the
    // request could not be applied as a unit — rather than 422.
    let status = match atomic && failed > 0 {
        false => StatusCode::OK,
        true => StatusCode::CONFLICT,
    };
    Ok((
        status,
        Json(BulkResponse {
            stored,
            replayed,
            failed,
            errors_omitted,
            results,
        }),
    )
        .into_response())
}

fn is_ndjson(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

/// One item of the body.
enum Item<'a> {
    /// Its JSON text, not parsed yet.
    Raw(&'a [u8]),
    Parsed(Value),
}

/// The body's items: the elements of a JSON array, or the non-blank lines
/// of NDJSON (a line that is not JSON fails alone).
fn split_items(bytes: &[u8], ndjson: bool) -> Result<Vec<Item<'_>>, ApiError> {
    let body_error = |kind, msg: &str| {
        ApiError::Validation(ValidationErrors::single(
            FieldError::new(kind, msg).at(vec![LocItem::from("body")], Value::Null),
        ))
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(body_error("missing", "Field required"));
    }
    if ndjson {
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
        return Ok(lines.map(Item::Raw).collect());
    }
    if let Ok(raw) = serde_json::from_slice::<Vec<&RawValue>>(bytes) {
        return Ok(raw
            .into_iter()
            .map(|r| Item::Raw(r.get().as_bytes()))
            .collect());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => Ok(items.into_iter().map(Item::Parsed).collect()),
        Ok(_) => Err(body_error("list_type", "Input should be a valid list")),
        Err(_) => Err(ApiError::Validation(python_json::refusal(bytes))),
    }
}

/// An invalid item's errors, as many as the caps let through.
struct InvalidItem {
    index: usize,
    listed: Vec<ValidationError>,
    omitted: usize,
}

type Checked = (Vec<NewRun>, Vec<usize>, Vec<InvalidItem>);

/// Validates every item: the runs to store with their positions, and the
/// errors of the others. Errors beyond the caps are counted, not kept, so
/// a body of many empty items cannot make an answer many times its size.
fn check_items(items: Vec<Item<'_>>, policy: &ValidationPolicy) -> Checked {
    let mut runs = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    let mut room = MAX_ERRORS_LISTED;
    for (index, item) in items.into_iter().enumerate() {
        let checked = match item {
            Item::Raw(bytes) => match usual_item(bytes, policy) {
                Some(run) => Ok(run),
                None => match serde_json::from_slice::<Value>(bytes) {
                    Ok(value) => check_item(index, value, policy),
                    Err(_) => {
                        let mut errors = python_json::refusal(bytes);
                        locate(&mut errors, index);
                        Err(errors)
                    }
                },
            },
            Item::Parsed(value) => check_item(index, value, policy),
        };
        match checked {
            Ok(run) => {
                runs.push(run);
                positions.push(index);
            }
            Err(errors) => {
                let mut listed = errors.detail;
                let omitted = listed.len().saturating_sub(room.min(MAX_ERRORS_PER_ITEM));
                listed.truncate(listed.len() - omitted);
                room -= listed.len();
                invalid.push(InvalidItem {
                    index,
                    listed,
                    omitted,
                });
            }
        }
    }
    (runs, positions, invalid)
}

/// The fast path for an item in the usual shape; `None` sends it to the
/// validating parser (which gives the same record, or the errors). Strict
/// validation must see unknown members, which this reader skips, so it
/// always takes the validating path.
fn usual_item(bytes: &[u8], policy: &ValidationPolicy) -> Option<NewRun> {
    if policy.strict {
        return None;
    }
    let raw = UsualRecord::read(bytes)?;
    if !raw.within_client_limits() {
        return None;
    }
    let key_text = raw.item_key;
    let name = raw.pipeline_name.flatten();
    let record = raw.into_record(name, |v: &str| Arc::<str>::from(v))?;
    let mut broken = ValidationErrors::default();
    policy.check_record(&record, "body", &mut broken);
    if !broken.detail.is_empty() {
        return None;
    }
    let key = match key_text {
        Some(text) => Some(IdempotencyKey::parse(text, &record).ok()?),
        None => None,
    };
    Some(NewRun { record, key })
}

/// Puts the item's index after `body` in each error location.
fn locate(errors: &mut ValidationErrors, index: usize) {
    for error in &mut errors.detail {
        error.loc.insert(1, LocItem::Index(index));
    }
}

fn check_item(
    index: usize,
    mut value: Value,
    policy: &ValidationPolicy,
) -> Result<NewRun, ValidationErrors> {
    let key = match &mut value {
        Value::Object(fields) => take_key(fields),
        _ => None,
    };
    let mut errors = ValidationErrors::default();
    let record = policy.parse(&value, "body", &[]).map_err(|mut e| {
        locate(&mut e, index);
        e
    });
    let record = match record {
        Ok(record) => Some(record),
        Err(e) => {
            errors.detail.extend(e.detail);
            None
        }
    };
    let key = match (key, &record) {
        (Some(raw), Some(record)) => {
            let loc = || {
                vec![
                    LocItem::from("body"),
                    LocItem::Index(index),
                    LocItem::from(ITEM_KEY_FIELD),
                ]
            };
            match &raw {
                Value::String(text) => match IdempotencyKey::parse(text, record) {
                    Ok(key) => Some(key),
                    Err(error) => {
                        errors.push(error.at(loc(), raw.clone()));
                        None
                    }
                },
                _ => {
                    errors.push(
                        FieldError::new("string_type", "Input should be a valid string")
                            .at(loc(), raw.clone()),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    match record {
        Some(record) if errors.detail.is_empty() => Ok(NewRun { record, key }),
        _ => Err(errors),
    }
}

fn take_key(fields: &mut Map<String, Value>) -> Option<Value> {
    fields.shift_remove(ITEM_KEY_FIELD).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path and the validating parser agree on every generated
    /// item (including legacy ones without classification fields).
    #[test]
    fn usual_items_read_the_same_either_way() {
        let mut buffer = Vec::new();
        crate::generate::generate(&mut buffer, 2000, 5).unwrap();
        let mut fast = 0;
        for (index, line) in buffer.split(|&b| b == b'\n').enumerate() {
            let Ok(value) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let plain = ValidationPolicy::default();
            let slow = check_item(index, value, &plain).ok();
            if let Some(quick) = usual_item(line, &plain) {
                fast += 1;
                let slow = slow.expect("the validating parser accepts it too");
                assert_eq!(quick.record, slow.record);
            }
        }
        assert!(fast > 1900, "{fast}");
        let mut long = crate::domain::record::tests::sample();
        long["rowcount"] = 1.into();
        long["pid"] = 1.into();
        long["elapsed_seconds"] = 1.0.into();
        long.as_object_mut().unwrap().remove("extra");
        let text = long.to_string();
        let plain = ValidationPolicy::default();
        assert!(usual_item(text.as_bytes(), &plain).is_some(), "{text}");
        long["output_file"] = "x".repeat(5000).into();
        assert!(usual_item(long.to_string().as_bytes(), &plain).is_none());
        let errors = check_item(3, long, &plain).unwrap_err();
        assert_eq!(errors.detail[0].kind, "string_too_long");
    }
}

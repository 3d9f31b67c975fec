//! The one error type handlers return, and how each case is answered.

use std::sync::Arc;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::domain::{PipelineInfo, ValidationErrors};
use crate::repository::{InsertOutcome, RepositoryError};

/// `{"detail": "..."}`, FastAPI's shape for non-validation errors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorMessage {
    /// What went wrong.
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request validation failed: {0}")]
    Validation(#[from] ValidationErrors),
    #[error(transparent)]
    Storage(#[from] RepositoryError),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("no API key")]
    MissingApiKey,
    #[error("wrong API key")]
    WrongApiKey,
    /// The body is not text in the encoding its first bytes announce.
    #[error("body is not decodable text")]
    UndecodableBody,
    #[error("body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request timed out")]
    Timeout,
    #[error("too many requests in flight")]
    Overloaded,
    #[error("more than {0} items")]
    TooManyItems(usize),
    /// 403 with a specific reason.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404 with a specific reason.
    #[error("not found: {0}")]
    Missing(&'static str),
    /// The request contradicts stored state (an idempotency key reused).
    #[error("conflict: {0}")]
    Conflict(&'static str),
}

pub const INTERNAL_ERROR: &str = "Internal server error";
pub const STORAGE_FULL: &str = "Insufficient storage: nothing was stored; retry later";
pub const WRITE_FAILED: &str = "Storage write failed: nothing was stored; retry shortly";
pub const NOT_AUTHENTICATED: &str = "Not authenticated";
pub const INVALID_API_KEY: &str = "Invalid API key";
pub const SERVER_BUSY: &str = "Server busy, retry shortly";
/// FastAPI's answer to a body it cannot decode as text.
pub const UNDECODABLE_BODY: &str = "There was an error parsing the body";

pub const KEY_REUSED: &str =
    "This Idempotency-Key was already used with a different record; use a new key for a new run";
pub const KEY_IN_FLIGHT: &str =
    "A request with this Idempotency-Key is still being stored; retry shortly";
pub const NOT_STORED: &str = "Not stored: another item failed and atomic=true";
/// The header that marks an answer repeating an earlier insert.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// How one run of an insert is answered, alone (`POST /pipelines`) or as
/// an item of `POST /pipelines/bulk`.
#[derive(Debug)]
pub enum InsertAnswer {
    /// 201 with the record as stored; `replayed` when an earlier insert
    /// with the run's key stored it and nothing was stored now.
    Stored {
        record: Arc<PipelineInfo>,
        replayed: bool,
    },
    /// Not stored: the status and why.
    Refused(StatusCode, &'static str),
}

impl From<InsertOutcome> for InsertAnswer {
    fn from(outcome: InsertOutcome) -> Self {
        match outcome {
            InsertOutcome::Created(record) => Self::Stored {
                record,
                replayed: false,
            },
            InsertOutcome::Replayed(record) => Self::Stored {
                record,
                replayed: true,
            },
            InsertOutcome::KeyReused => Self::Refused(StatusCode::CONFLICT, KEY_REUSED),
            InsertOutcome::KeyInFlight => Self::Refused(StatusCode::CONFLICT, KEY_IN_FLIGHT),
            InsertOutcome::NotStored => Self::Refused(StatusCode::FAILED_DEPENDENCY, NOT_STORED),
        }
    }
}

impl IntoResponse for InsertAnswer {
    fn into_response(self) -> Response {
        match self {
            Self::Stored {
                record,
                replayed: false,
            } => (StatusCode::CREATED, Json(record)).into_response(),
            Self::Stored {
                record,
                replayed: true,
            } => (
                StatusCode::CREATED,
                [(REPLAYED_HEADER, "true")],
                Json(record),
            )
                .into_response(),
            Self::Refused(status, text) => detail(status, text),
        }
    }
}

/// Refusals every data route may answer, each with its real text.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// An API key is needed and none was sent: writes need one when
    /// PIPELINE_API_KEYS is set, reads too with PIPELINE_API_KEYS_FOR_READS=true
    #[response(status = 401, example = json!({"detail": NOT_AUTHENTICATED}))]
    Unauthenticated(ErrorMessage),
    /// The API key is wrong
    #[response(status = 403, example = json!({"detail": INVALID_API_KEY}))]
    WrongKey(ErrorMessage),
    /// Unexpected server fault (the cause is in the log)
    #[response(status = 500, example = json!({"detail": INTERNAL_ERROR}))]
    Fault(ErrorMessage),
    /// Overloaded (with Retry-After), the database unavailable, a write that
    /// failed and stored nothing (with Retry-After), or timed out — a write
    /// that timed out may have been stored: retry with the same Idempotency-Key
    #[response(status = 503, example = json!({"detail": SERVER_BUSY}))]
    Unavailable(ErrorMessage),
}

/// The refusal of a query string too long for the HTTP layer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum UrlTooLong {
    /// The URL is longer than 65534 bytes (answered before the request is
    /// read, without a body): several long filters together can exceed it
    #[response(status = 414)]
    TooLong,
}

/// The cause of a 5xx answer, carried to the request log line (never to
/// the client).
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

pub fn detail(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(ErrorMessage {
            detail: text.to_owned(),
        }),
    )
        .into_response()
}

/// A generic 500 whose cause goes to the log only.
pub fn internal_error(cause: String) -> Response {
    let mut response = detail(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR);
    response.extensions_mut().insert(ErrorCause(cause));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Validation(errors) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(errors)).into_response()
            }
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, "Not Found"),
            ApiError::MethodNotAllowed => {
                detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            }
            ApiError::MissingApiKey => {
                let mut response = detail(StatusCode::UNAUTHORIZED, NOT_AUTHENTICATED);
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("APIKey"));
                response
            }
            ApiError::WrongApiKey => detail(StatusCode::FORBIDDEN, INVALID_API_KEY),
            ApiError::UndecodableBody => detail(StatusCode::BAD_REQUEST, UNDECODABLE_BODY),
            ApiError::PayloadTooLarge(limit) => detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Request body too large: the limit is {limit} bytes"),
            ),
            ApiError::TooManyItems(limit) => detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Too many records: the limit is {limit} per request"),
            ),
            ApiError::Conflict(text) => detail(StatusCode::CONFLICT, text),
            ApiError::Forbidden(text) => detail(StatusCode::FORBIDDEN, text),
            ApiError::Missing(text) => detail(StatusCode::NOT_FOUND, text),
            ApiError::Storage(RepositoryError::Unsupported(text)) => {
                detail(StatusCode::NOT_IMPLEMENTED, &text)
            }
            ApiError::Timeout => detail(StatusCode::SERVICE_UNAVAILABLE, "Request timed out"),
            ApiError::Overloaded => {
                let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ApiError::Storage(RepositoryError::Unavailable(cause)) => {
                let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable");
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
                response.extensions_mut().insert(ErrorCause(cause));
                response
            }
            ApiError::Storage(RepositoryError::Invalid { errors, .. }) => {
                ApiError::Validation(errors).into_response()
            }
            ApiError::Storage(RepositoryError::WriteFailed {
                cause,
                out_of_space,
            }) => {
                // Nothing was stored, so a plain retry is safe; a full disk
                // takes longer to clear than a passing fault.
                let (status, text, retry_after) = match out_of_space {
                    true => (StatusCode::INSUFFICIENT_STORAGE, STORAGE_FULL, "30"),
                    false => (StatusCode::SERVICE_UNAVAILABLE, WRITE_FAILED, "5"),
                };
                let mut response = detail(status, text);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
                response.extensions_mut().insert(ErrorCause(cause));
                response
            }
            ApiError::Storage(cause) => internal_error(cause.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_a_503_with_retry_after_and_no_cause() {
        let response = ApiError::Storage(RepositoryError::Unavailable(
            "ORA-12541: no listener at db:1521".into(),
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        let cause = response.extensions().get::<ErrorCause>().unwrap();
        assert!(
            cause.0.contains("ORA-12541"),
            "the cause goes to the log line"
        );
    }

    #[test]
    fn a_value_the_store_refuses_is_a_422() {
        let entry = crate::domain::FieldError::new("string_too_long", "too long").at(
            vec![crate::domain::LocItem::from("body")],
            serde_json::Value::Null,
        );
        let response = ApiError::Storage(RepositoryError::Invalid {
            run: 0,
            errors: ValidationErrors::single(entry),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_failed_write_says_nothing_was_stored_and_when_to_retry() {
        let failed = |out_of_space| {
            ApiError::Storage(RepositoryError::WriteFailed {
                cause: "write failed: No space left on device (os error 28)".into(),
                out_of_space,
            })
            .into_response()
        };
        let full = failed(true);
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.headers()[RETRY_AFTER], "30");
        assert!(full.extensions().get::<ErrorCause>().is_some());
        let other = failed(false);
        assert_eq!(other.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(other.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn other_storage_faults_are_a_generic_500() {
        let response = ApiError::Storage(RepositoryError::Database(
            "ORA-00942: table or view does not exist".into(),
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<ErrorCause>().is_some());
    }
}

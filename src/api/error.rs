//! The one error type handlers return, and how each case is answered.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ValidationErrors;
use crate::repository::RepositoryError;

/// `{"detail": "..."}`, FastAPI's shape for non-validation errors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorMessage {
    /// What went wrong.
    #[schema(example = "Internal server error")]
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
}

pub const INTERNAL_ERROR: &str = "Internal server error";

pub fn detail(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(ErrorMessage {
            detail: text.to_owned(),
        }),
    )
        .into_response()
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
            ApiError::Storage(cause) => {
                // The cause is for operators; clients get a generic text.
                tracing::error!(error = %cause, "request failed in storage");
                detail(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
            }
        }
    }
}

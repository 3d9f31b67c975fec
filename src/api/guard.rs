//! Request guards: API keys and load limits.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower::BoxError;

use super::error::ApiError;
use super::AppState;

pub const API_KEY_HEADER: &str = "x-api-key";

/// Checks `X-API-Key` on writes (and on reads when configured). Keys are
/// compared in constant time and every key is tried, so timing reveals
/// neither which key nor how much of it matched.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    let is_read = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if auth.keys.is_empty() || (is_read && !auth.protect_reads) {
        return next.run(request).await;
    }
    let Some(given) = request.headers().get(API_KEY_HEADER) else {
        return ApiError::MissingApiKey.into_response();
    };
    let given = given.as_bytes();
    let matched = auth
        .keys
        .keys()
        .iter()
        .fold(subtle::Choice::from(0), |found, key| {
            found | key.as_bytes().ct_eq(given)
        });
    if bool::from(matched) {
        next.run(request).await
    } else {
        ApiError::WrongApiKey.into_response()
    }
}

/// Turns the limit layers' errors into JSON answers: a request that ran too
/// long is a 503, and one refused because too many are in flight is a 503
/// with `Retry-After`.
pub async fn limit_error(error: BoxError) -> Response<Body> {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded.into_response()
    } else {
        super::error::internal_error(format!("middleware failed: {error}"))
    }
}

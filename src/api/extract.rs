//! Request extractors that reject the way FastAPI does: a JSON body whose
//! problems come back as a 422 `detail` list.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use super::python_json;
use crate::domain::{FieldError, LocItem, ValidationErrors};

/// A query string type that parses itself, collecting every problem.
pub trait FromQuery: Sized {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors>;
}

/// Extracts a `FromQuery` type; its problems answer 422 as FastAPI does.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ValidQuery(T::parse(parts.uri.query())?))
    }
}

/// The body size limit in force, so a 413 can say what it is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The request body as JSON. Bodies are parsed as JSON when the content
/// type is absent or JSON (`application/json`, `application/*+json`), as
/// FastAPI does; any other body reaches validation as text and fails there.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = match req.headers().get(CONTENT_TYPE) {
            None => true,
            Some(value) => value.to_str().map(is_json_content_type).unwrap_or(false),
        };
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(usize::MAX);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                // The client went away or sent a broken body: nothing usable arrived.
                let error = FieldError::missing().at(vec![LocItem::from("body")], Value::Null);
                ApiError::Validation(ValidationErrors::single(error))
            }
        })?;
        if bytes.is_empty() {
            let error = FieldError::missing().at(vec![LocItem::from("body")], Value::Null);
            return Err(ValidationErrors::single(error).into());
        }
        if !is_json {
            return Ok(JsonBody(Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            )));
        }
        let text = python_json::body_text(&bytes).ok_or(ApiError::UndecodableBody)?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Null) => {
                let error = FieldError::missing().at(vec![LocItem::from("body")], Value::Null);
                Err(ValidationErrors::single(error).into())
            }
            Ok(value) => Ok(JsonBody(value)),
            Err(_) => Err(python_json::refusal(text.as_bytes()).into()),
        }
    }
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/vnd.api+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
    }
}

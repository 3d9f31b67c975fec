//! Request extractors that reject the way FastAPI does: a JSON body whose
//! problems come back as a 422 `detail` list.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::error::ApiError;
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
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Null) => {
                let error = FieldError::missing().at(vec![LocItem::from("body")], Value::Null);
                Err(ValidationErrors::single(error).into())
            }
            Ok(value) => Ok(JsonBody(value)),
            Err(error) => Err(json_decode_error(&bytes, &error).into()),
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

/// FastAPI's `json_invalid` entry: the location holds the character offset
/// and `ctx.error` the Python decoder's wording.
pub fn json_decode_error(bytes: &[u8], error: &serde_json::Error) -> ValidationErrors {
    let text = String::from_utf8_lossy(bytes);
    let position = char_offset(&text, error.line(), error.column());
    let message = error.to_string();
    let reason = if message.starts_with("trailing characters") {
        "Extra data"
    } else if message.starts_with("key must be a string") || message.starts_with("trailing comma") {
        "Expecting property name enclosed in double quotes"
    } else if message.starts_with("expected `:`") {
        "Expecting ':' delimiter"
    } else if message.starts_with("expected `,`") {
        "Expecting ',' delimiter"
    } else if message.starts_with("EOF while parsing a string") {
        "Unterminated string starting at"
    } else if message.starts_with("control character") {
        "Invalid control character at"
    } else {
        "Expecting value"
    };
    let entry = FieldError::new("json_invalid", "JSON decode error")
        .with_ctx("error", reason)
        .at(
            vec![LocItem::from("body"), LocItem::from(position)],
            json!({}),
        );
    ValidationErrors::single(entry)
}

/// serde_json reports a 1-based line and column; Python reports the
/// character index where decoding stopped.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (number, content) in text.split('\n').enumerate() {
        if number + 1 == line {
            let before: String = content.chars().take(column.saturating_sub(1)).collect();
            return offset + before.chars().count();
        }
        offset += content.chars().count() + 1;
    }
    text.chars().count()
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

    #[test]
    fn decode_errors_use_python_wording_and_offsets() {
        let cases: [(&str, &str, usize); 4] = [
            ("abc", "Expecting value", 0),
            ("{} x", "Extra data", 3),
            ("{\"a\" 1}", "Expecting ':' delimiter", 5),
            (
                "{\"a\":1,}",
                "Expecting property name enclosed in double quotes",
                7,
            ),
        ];
        for (body, reason, position) in cases {
            let error = serde_json::from_str::<Value>(body).unwrap_err();
            let detail = json_decode_error(body.as_bytes(), &error).detail;
            assert_eq!(detail[0].ctx.as_ref().unwrap()["error"], reason, "{body}");
            assert_eq!(detail[0].loc[1], LocItem::Index(position), "{body}");
        }
    }
}

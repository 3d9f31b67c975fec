//! Request extractors that reject the way FastAPI does, with every problem
//! in a 422 `detail` list: query strings read by `QueryReader` (and the
//! documentation of the parameters it reads, with the bounds it checks),
//! and JSON bodies.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa::openapi::path::Parameter;
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::RefOr;
use utoipa::IntoParams;

use super::cursor;
use super::error::ApiError;
use super::python_json;
use crate::domain::datetime::schema::DateTimeText;
use crate::domain::numbers::int_from_str;
use crate::domain::policy::expected_text;
use crate::domain::record::{check_length, MAX_STRING_CHARS};
use crate::domain::{FieldError, FlexDateTime, LocItem, ValidationErrors};
use crate::repository::{RunFilter, RunKey};

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

/// A rule a query parameter's reader checks, written into the parameter's
/// documentation, so the OpenAPI document states exactly the rule the
/// service applies (`documented_params!`).
pub trait ParamRule {
    fn document(&self, schema: &mut Object);
}

/// What an integer query parameter accepts and means when absent
/// (`QueryReader::within` checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    /// `None`: up to what an integer can hold.
    pub max: Option<i64>,
    pub default: Option<i64>,
}

impl ParamRule for IntRange {
    fn document(&self, schema: &mut Object) {
        let number = |n: i64| utoipa::Number::Int(n as isize);
        schema.minimum = Some(number(self.min));
        if let Some(max) = self.max {
            schema.maximum = Some(number(max));
        }
        if let Some(default) = self.default {
            schema.default = Some(default.into());
        }
    }
}

/// The most characters a text parameter may have (`QueryReader::filter`
/// checks it).
pub struct MaxChars(pub usize);

impl ParamRule for MaxChars {
    fn document(&self, schema: &mut Object) {
        schema.max_length = Some(self.0);
    }
}

/// Writes `rule` into the documentation of the parameter `name`.
pub fn document_rule(params: &mut [Parameter], name: &str, rule: &impl ParamRule) {
    let schema = params
        .iter_mut()
        .find(|p| p.name == name)
        .and_then(|p| p.schema.as_mut());
    if let Some(RefOr::T(Schema::Object(object))) = schema {
        rule.document(object);
    }
}

/// `documented_params!(Name, Fields, "param" => RULE, …)`: a type whose
/// `IntoParams` is that of `Fields` (derived, for the documentation of
/// each parameter) with each `RULE` written into its parameter.
macro_rules! documented_params {
    ($(#[$meta:meta])* $name:ident, $fields:ty, $($param:literal => $rule:expr),+ $(,)?) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                parameter_in: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                let mut params = <$fields as utoipa::IntoParams>::into_params(parameter_in);
                $($crate::api::extract::document_rule(&mut params, $param, &$rule);)+
                params
            }
        }
    };
}
pub(crate) use documented_params;

/// Reads query parameters, checking each and collecting every problem.
pub struct QueryReader {
    values: HashMap<String, String>,
    errors: ValidationErrors,
}

impl QueryReader {
    pub fn new(query: Option<&str>) -> Self {
        // A repeated parameter takes its last value, as Starlette does.
        let values = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Self {
            values,
            errors: ValidationErrors::default(),
        }
    }

    pub fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, FieldError>,
    ) -> Option<T> {
        let raw = self.values.get(name)?;
        match parse(raw) {
            Ok(value) => Some(value),
            Err(error) => {
                let loc = vec![LocItem::from("query"), LocItem::from(name)];
                self.errors.push(error.at(loc, Value::String(raw.clone())));
                None
            }
        }
    }

    fn datetime(&mut self, name: &str) -> Option<FlexDateTime> {
        self.parsed(name, |raw| {
            FlexDateTime::parse(raw).map_err(|e| e.into_field_error())
        })
    }

    /// An integer in `range`, or the range's default when absent.
    pub fn within(&mut self, name: &str, range: IntRange) -> Option<i64> {
        let IntRange { min, max, default } = range;
        self.parsed(name, |raw| {
            let value = int_from_str(raw)?;
            if value < min {
                return Err(FieldError::new(
                    "greater_than_equal",
                    format!("Input should be greater than or equal to {min}"),
                )
                .with_ctx("ge", min));
            }
            match max {
                Some(max) if value > max => Err(FieldError::new(
                    "less_than_equal",
                    format!("Input should be less than or equal to {max}"),
                )
                .with_ctx("le", max)),
                _ => Ok(value),
            }
        })
        .or(default)
    }

    fn integer(&mut self, name: &str) -> Option<i64> {
        self.parsed(name, int_from_str)
    }

    /// A string filter; an empty value means no filter.
    fn text(&mut self, name: &str) -> Option<String> {
        self.parsed(name, |raw| {
            check_length(raw, TEXT_FILTER.0).map(|()| raw.to_owned())
        })
        .filter(|v| !v.is_empty())
    }

    /// The filters every run query shares.
    pub fn filter(&mut self) -> RunFilter {
        let start_utc = self.datetime("start_utc");
        let end_utc = self.datetime("end_utc");
        let min_rowcount = self.integer("min_rowcount");
        let max_rowcount = self.integer("max_rowcount");
        let [pipeline_name, script_name, pipeline_type, environment] =
            TEXT_FILTERS.map(|name| self.text(name));
        RunFilter {
            start_utc,
            end_utc,
            min_rowcount,
            max_rowcount,
            pipeline_name,
            script_name,
            pipeline_type,
            environment,
        }
    }

    /// One of the `choices` (lower-case names), or an `enum` error.
    pub fn choice<T: Copy>(&mut self, name: &str, choices: &[(&str, T)]) -> Option<T> {
        self.parsed(name, |raw| {
            choices
                .iter()
                .find(|(text, _)| *text == raw)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(t, _)| *t).collect();
                    let expected = expected_text(&names);
                    FieldError::new("enum", format!("Input should be {expected}"))
                        .with_ctx("expected", expected)
                })
        })
    }

    /// `cursor`, issued for `filter`: absent, `Some(None)` when empty (start
    /// from the newest run), or the position to continue after.
    pub fn cursor(&mut self, filter: &RunFilter) -> Option<Option<RunKey>> {
        // The filters' fingerprint is only meaningful once they are valid.
        if self.errors.is_empty() {
            self.parsed("cursor", |raw| cursor::decode(raw, filter))
        } else {
            self.values.contains_key("cursor").then_some(None)
        }
    }

    /// The parsed value when every parameter was valid, else every problem.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        self.errors.into_result(value)
    }
}

/// The string filters.
const TEXT_FILTERS: [&str; 4] = [
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
];

/// How long a string filter may be.
const TEXT_FILTER: MaxChars = MaxChars(MAX_STRING_CHARS);

/// The filters every run query takes (documentation; `QueryReader::filter`
/// parses them so that every error is collected).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RunFilterFields {
    /// Keep runs whose `start_utc` is at or after this time (a datetime
    /// text or Unix timestamp; a value without zone counts as UTC), e.g.
    /// `2025-08-01T00:00:00Z`.
    #[param(value_type = Option<DateTimeText>)]
    start_utc: Option<String>,
    /// Keep runs whose `end_utc` is at or before this time, e.g.
    /// `2025-08-31T23:59:59Z`.
    #[param(value_type = Option<DateTimeText>)]
    end_utc: Option<String>,
    /// Keep runs with at least this many rows.
    #[param(minimum = -9_223_372_036_854_775_808_i64, maximum = 9_223_372_036_854_775_807_i64)]
    min_rowcount: Option<i64>,
    /// Keep runs with at most this many rows.
    #[param(minimum = -9_223_372_036_854_775_808_i64, maximum = 9_223_372_036_854_775_807_i64)]
    max_rowcount: Option<i64>,
    /// Exact, case-sensitive pipeline name; empty means no filter.
    pipeline_name: Option<String>,
    /// Exact script name; empty means no filter.
    script_name: Option<String>,
    /// Exact pipeline type; empty means no filter.
    pipeline_type: Option<String>,
    /// Exact environment; empty means no filter.
    environment: Option<String>,
}

documented_params!(
    /// Documentation of the eight filters every run query takes (runs,
    /// export and statistics), with the length limit their reader checks.
    RunFilterParams,
    RunFilterFields,
    "pipeline_name" => TEXT_FILTER,
    "script_name" => TEXT_FILTER,
    "pipeline_type" => TEXT_FILTER,
    "environment" => TEXT_FILTER,
);

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

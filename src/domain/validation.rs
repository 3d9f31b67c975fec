//! Validation errors in the shape FastAPI + pydantic v2 answer with, so that
//! clients written against the Python service keep parsing our 422 bodies.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One element of an error location: a field name or an index.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    Key(String),
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(value: &str) -> Self {
        LocItem::Key(value.to_owned())
    }
}

impl From<usize> for LocItem {
    fn from(value: usize) -> Self {
        LocItem::Index(value)
    }
}

/// What went wrong with one value, before we know where the value sits.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: &'static str,
    pub msg: String,
    pub ctx: Option<Map<String, Value>>,
}

impl FieldError {
    pub fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            kind,
            msg: msg.into(),
            ctx: None,
        }
    }

    pub fn with_ctx(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.ctx
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn missing() -> Self {
        Self::new("missing", "Field required")
    }

    pub fn string_type() -> Self {
        Self::new("string_type", "Input should be a valid string")
    }

    /// Places the error at `loc`, recording the offending input as pydantic does.
    pub fn at(self, loc: Vec<LocItem>, input: Value) -> ValidationError {
        ValidationError {
            kind: self.kind,
            loc,
            msg: self.msg,
            input,
            ctx: self.ctx,
        }
    }
}

/// One entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ValidationError {
    /// Machine-readable error type, as pydantic names it (`missing`, `int_parsing`, …).
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: &'static str,
    /// Where the problem is: `body` or `query`, then the field name.
    #[schema(example = json!(["body", "rowcount"]))]
    pub loc: Vec<LocItem>,
    /// Human-readable explanation.
    #[schema(example = "Field required")]
    pub msg: String,
    /// The offending input.
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// Extra facts about the rule that failed, such as a bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<Map<String, Value>>,
}

/// Every problem found in one request, in field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ValidationErrors {
    pub detail: Vec<ValidationError>,
}

impl ValidationErrors {
    pub fn single(error: ValidationError) -> Self {
        Self {
            detail: vec![error],
        }
    }

    pub fn push(&mut self, error: ValidationError) {
        self.detail.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.detail.is_empty()
    }

    /// `Ok(value)` when nothing was collected, else the collected errors.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.detail.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .detail
            .iter()
            .map(|e| {
                let loc: Vec<String> = e
                    .loc
                    .iter()
                    .map(|l| match l {
                        LocItem::Key(k) => k.clone(),
                        LocItem::Index(i) => i.to_string(),
                    })
                    .collect();
                format!("{}: {}", loc.join("."), e.msg)
            })
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

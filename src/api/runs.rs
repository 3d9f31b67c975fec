//! `GET /get_pipeline_info`: filtered, paginated runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::cursor::{self, CursorToken};
use super::error::ApiError;
use super::extract::{FromQuery, ValidQuery};
use super::openapi::{Refusals, UrlTooLong};
use super::AppState;
use crate::domain::datetime::schema::DateTimeText;
use crate::domain::numbers::{bool_from_str, int_from_str};
use crate::domain::policy::expected_text;
use crate::domain::record::{check_length, MAX_STRING_CHARS};
use crate::domain::{FieldError, FlexDateTime, LocItem, PipelineInfo, ValidationErrors};
use crate::repository::{Position, RunFilter, RunKey};

pub const MAX_LIMIT: i64 = 10_000;
pub const DEFAULT_LIMIT: i64 = 100;

/// The filters every run query takes (documentation only; `QueryReader`
/// parses them so that every error is collected).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RunFilterParams {
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
    #[param(max_length = 4096)]
    pipeline_name: Option<String>,
    /// Exact script name; empty means no filter.
    #[param(max_length = 4096)]
    script_name: Option<String>,
    /// Exact pipeline type; empty means no filter.
    #[param(max_length = 4096)]
    pipeline_type: Option<String>,
    /// Exact environment; empty means no filter.
    #[param(max_length = 4096)]
    environment: Option<String>,
}

/// Paging parameters of `GET /get_pipeline_info` (documentation only).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RunPageParams {
    /// Page size.
    #[param(minimum = 1, maximum = 10000, default = 100)]
    limit: Option<i64>,
    /// Matches to skip before the page starts.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64, default = 0)]
    offset: Option<i64>,
    /// Return every match, ignoring `limit` and `offset` (`true/false`,
    /// `1/0`, `yes/no`, `on/off`, `t/f`, `y/n`).
    #[param(default = false)]
    all_data: Option<bool>,
    /// Keyset pagination: send it empty to start, then the `next_cursor` of
    /// the previous page (with the same filters). Pages stay exact while
    /// runs are being inserted. With a cursor, `offset` skips runs after the
    /// cursor's position and `all_data=true` returns all of them.
    #[param(value_type = Option<CursorToken>)]
    cursor: Option<String>,
    /// `none` skips counting the matches (`total` is then null); cheaper for
    /// dashboards that only page.
    #[param(inline, default = "exact")]
    count: Option<Counting>,
}

/// Whether `total` is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ToSchema, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Counting {
    #[default]
    Exact,
    None,
}

/// Which slice of the ordered matches a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `limit` records after skipping `offset`.
    Window { limit: usize, offset: usize },
    /// Every match (`all_data=true`).
    All,
}

impl Page {
    pub fn offset(&self) -> usize {
        match self {
            Page::Window { offset, .. } => *offset,
            Page::All => 0,
        }
    }

    pub fn limit(&self) -> usize {
        match self {
            Page::Window { limit, .. } => *limit,
            Page::All => usize::MAX,
        }
    }
}

/// A validated `/get_pipeline_info` query.
#[derive(Debug, Clone, PartialEq)]
pub struct RunQuery {
    pub filter: RunFilter,
    pub page: Page,
    /// Present when `cursor=` was sent: keyset paging after this key
    /// (`None`: from the newest record).
    pub cursor: Option<Option<RunKey>>,
    pub counting: Counting,
}

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

    pub fn bounded(&mut self, name: &str, min: i64, max: Option<i64>) -> Option<i64> {
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
    }

    fn integer(&mut self, name: &str) -> Option<i64> {
        self.parsed(name, int_from_str)
    }

    /// A string filter; an empty value means no filter.
    fn text(&mut self, name: &str) -> Option<String> {
        self.parsed(name, |raw| {
            check_length(raw, MAX_STRING_CHARS).map(|()| raw.to_owned())
        })
        .filter(|v| !v.is_empty())
    }

    /// The filters every run query shares.
    pub fn filter(&mut self) -> RunFilter {
        let start_utc = self.datetime("start_utc");
        let end_utc = self.datetime("end_utc");
        let min_rowcount = self.integer("min_rowcount");
        let max_rowcount = self.integer("max_rowcount");
        RunFilter {
            start_utc,
            end_utc,
            min_rowcount,
            max_rowcount,
            pipeline_name: self.text("pipeline_name"),
            script_name: self.text("script_name"),
            pipeline_type: self.text("pipeline_type"),
            environment: self.text("environment"),
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

impl FromQuery for RunQuery {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut q = QueryReader::new(query);
        let filter = q.filter();
        let limit = q
            .bounded("limit", 1, Some(MAX_LIMIT))
            .unwrap_or(DEFAULT_LIMIT);
        let offset = q.bounded("offset", 0, None).unwrap_or(0);
        let all_data = q.parsed("all_data", bool_from_str).unwrap_or(false);
        let counting = q
            .choice(
                "count",
                &[("exact", Counting::Exact), ("none", Counting::None)],
            )
            .unwrap_or_default();
        let cursor = q.cursor(&filter);
        let page = if all_data {
            Page::All
        } else {
            Page::Window {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
            }
        };
        q.finish(|| RunQuery {
            filter,
            page,
            cursor,
            counting,
        })
    }
}

/// One page of runs.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PipelineInfoResponse {
    /// Number of runs matching the filters; null with `count=none`.
    #[schema(example = 1, nullable)]
    total: Option<u64>,
    /// Number of runs in `results`.
    #[schema(example = 1)]
    count: usize,
    /// The runs, latest `start_utc` first.
    results: Vec<PipelineInfo>,
    /// Distinct pipeline names in `results`, sorted.
    #[schema(example = json!(["sales_daily"]))]
    pipelines: Vec<String>,
    /// Only when `cursor` was sent: the cursor of the next page, null on
    /// the last one.
    #[schema(nullable, required = false)]
    next_cursor: Option<String>,
}

/// Query pipeline runs
///
/// Runs matching every given filter, latest `start_utc` first (equal times
/// in insertion order), one page at a time; `all_data=true` returns every
/// match. With `cursor` the pages are keyset pages that stay exact while
/// runs arrive, and the answer carries `next_cursor`.
#[utoipa::path(
    get,
    path = "/get_pipeline_info",
    tag = "runs",
    params(RunFilterParams, RunPageParams),
    responses(
        (status = 200, description = "Matching runs", body = PipelineInfoResponse),
        (status = 422, description = "A query parameter is invalid (including a cursor issued for other filters)", body = ValidationErrors,
            example = json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}}]})),
        Refusals,
        UrlTooLong,
    ),
    security((), ("api_key" = []))
)]
pub async fn get_pipeline_info(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<RunQuery>,
) -> Result<Response, ApiError> {
    // With a cursor, offset and all_data apply after its position.
    let (position, skip) = match query.cursor {
        Some(Some(key)) => (Position::After(key), query.page.offset()),
        _ => (Position::Offset(query.page.offset()), 0),
    };
    let mut page = state
        .repository
        .query(
            &query.filter,
            position,
            skip.saturating_add(query.page.limit()),
            query.counting == Counting::Exact,
        )
        .await?;
    page.records.drain(..skip.min(page.records.len()));
    let next_cursor = query
        .cursor
        .map(|_| page.next.map(|key| cursor::encode(key, &query.filter)));
    Ok(Answer {
        total: page.total,
        records: page.records,
        next_cursor,
    }
    .into_response())
}

/// What a run query answers, before it is written out.
struct Answer {
    total: Option<u64>,
    records: Vec<Arc<PipelineInfo>>,
    /// `Some` only for cursor queries (the inner `None` is the last page).
    next_cursor: Option<Option<String>>,
}

/// Pages larger than this are streamed in chunks instead of being built
/// whole in memory (an `all_data` answer can hold millions of runs).
const STREAM_ABOVE: usize = 1000;
const RECORDS_PER_CHUNK: usize = 256;

impl IntoResponse for Answer {
    /// Writes `PipelineInfoResponse` by hand: the records are serialised
    /// straight into the body, and large answers are streamed.
    fn into_response(self) -> Response {
        let names: BTreeSet<&str> = self
            .records
            .iter()
            .filter_map(|r| r.pipeline_name())
            .collect();
        let mut tail = format!("],\"pipelines\":{}", json(&names));
        if let Some(next) = &self.next_cursor {
            tail.push_str(&format!(",\"next_cursor\":{}", json(next)));
        }
        tail.push('}');
        let count = self.records.len();
        let head = format!(
            r#"{{"total":{},"count":{count},"results":["#,
            json(&self.total)
        );
        let headers = [(CONTENT_TYPE, "application/json")];
        if count <= STREAM_ABOVE {
            let mut body = Vec::with_capacity(head.len() + tail.len() + count * 700);
            body.extend_from_slice(head.as_bytes());
            write_records(&self.records, 0, &mut body);
            body.extend_from_slice(tail.as_bytes());
            return (headers, body).into_response();
        }
        let records = self.records;
        let chunk_of = move |start: usize| {
            let end = (start + RECORDS_PER_CHUNK).min(count);
            let mut chunk = Vec::with_capacity((end - start) * 600);
            write_records(&records[start..end], start, &mut chunk);
            Bytes::from(chunk)
        };
        let parts = std::iter::once(Bytes::from(head))
            .chain((0..count).step_by(RECORDS_PER_CHUNK).map(chunk_of))
            .chain(std::iter::once(Bytes::from(tail)))
            .map(Ok::<Bytes, Infallible>);
        (headers, Body::from_stream(stream::iter(parts))).into_response()
    }
}

/// A JSON value as text (the values here always serialise).
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Appends `records` as comma-separated JSON; `first` is the index of the
/// first one in the whole array (no comma before index 0).
fn write_records(records: &[Arc<PipelineInfo>], first: usize, out: &mut Vec<u8>) {
    for (offset, record) in records.iter().enumerate() {
        if first + offset > 0 {
            out.push(b',');
        }
        record.write_json(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let q = RunQuery::parse(None).unwrap();
        assert_eq!(
            q.page,
            Page::Window {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(q.filter, RunFilter::default());
    }

    #[test]
    fn last_repeated_value_wins_and_empty_text_is_no_filter() {
        let q = RunQuery::parse(Some("limit=5&limit=7&pipeline_name=&environment=prod")).unwrap();
        assert_eq!(
            q.page,
            Page::Window {
                limit: 7,
                offset: 0
            }
        );
        assert_eq!(q.filter.pipeline_name, None);
        assert_eq!(q.filter.environment.as_deref(), Some("prod"));
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let errors = RunQuery::parse(Some(
            "limit=0&offset=-1&start_utc=x&all_data=perhaps&min_rowcount=1.5",
        ))
        .unwrap_err()
        .detail;
        let kinds: Vec<&str> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                "datetime_from_date_parsing",
                "int_parsing",
                "greater_than_equal",
                "greater_than_equal",
                "bool_parsing"
            ]
        );
    }
}

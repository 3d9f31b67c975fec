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

use super::cursor;
use super::error::{ApiError, ErrorMessage};
use super::extract::{FromQuery, ValidQuery};
use super::AppState;
use crate::domain::numbers::{bool_from_str, int_from_str};
use crate::domain::policy::expected_text;
use crate::domain::record::{check_length, MAX_STRING_CHARS};
use crate::domain::{FieldError, FlexDateTime, LocItem, PipelineInfo, ValidationErrors};
use crate::repository::{Page, RepositoryError, RunFilter, RunKey, RunStream};

pub const MAX_LIMIT: i64 = 10_000;
pub const DEFAULT_LIMIT: i64 = 100;

/// Query parameters of `GET /get_pipeline_info` (documentation only; the
/// `RunQuery` extractor does the parsing so that every error is collected).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RunQueryParams {
    /// Keep runs whose `start_utc` is at or after this time (ISO 8601, date
    /// or Unix timestamp; a value without zone counts as UTC).
    #[param(value_type = Option<String>, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-01T00:00:00Z")]
    start_utc: Option<String>,
    /// Keep runs whose `end_utc` is at or before this time.
    #[param(value_type = Option<String>, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-31T23:59:59Z")]
    end_utc: Option<String>,
    /// Keep runs with at least this many rows.
    min_rowcount: Option<i64>,
    /// Keep runs with at most this many rows.
    max_rowcount: Option<i64>,
    /// Exact, case-sensitive pipeline name; empty means no filter.
    pipeline_name: Option<String>,
    /// Exact script name; empty means no filter.
    script_name: Option<String>,
    /// Exact pipeline type; empty means no filter.
    pipeline_type: Option<String>,
    /// Exact environment; empty means no filter.
    environment: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 10000, default = 100)]
    limit: Option<i64>,
    /// Matches to skip before the page starts.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
    /// Return every match, ignoring `limit` and `offset` (`true/false`,
    /// `1/0`, `yes/no`, `on/off`, `t/f`, `y/n`).
    #[param(default = false)]
    all_data: Option<bool>,
    /// Keyset pagination: send it empty to start, then the `next_cursor` of
    /// the previous page (with the same filters). Pages stay exact while
    /// runs are being inserted. With a cursor, `offset` skips runs after the
    /// cursor's position and `all_data=true` returns all of them.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
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

    fn bounded(&mut self, name: &str, min: i64, max: Option<i64>) -> Option<i64> {
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
        // The filters' fingerprint is only meaningful once they are valid.
        let cursor = if q.errors.is_empty() {
            q.parsed("cursor", |raw| cursor::decode(raw, &filter))
        } else {
            q.values.contains_key("cursor").then_some(None)
        };
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
    params(RunQueryParams),
    responses(
        (status = 200, description = "Matching runs", body = PipelineInfoResponse),
        (status = 401, description = "Reads need an API key and none was sent", body = ErrorMessage),
        (status = 403, description = "The API key is wrong", body = ErrorMessage),
        (status = 422, description = "A query parameter is invalid (including a cursor issued for other filters)", body = ValidationErrors),
        (status = 500, description = "Unexpected server fault", body = ErrorMessage),
        (status = 503, description = "Overloaded (with Retry-After) or timed out", body = ErrorMessage),
    ),
    security((), ("api_key" = []))
)]
pub async fn get_pipeline_info(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<RunQuery>,
) -> Result<Response, ApiError> {
    let repository = &state.repository;
    let counted = query.counting == Counting::Exact;
    let answer = match query.cursor {
        Some(after) => {
            // Offset and all_data apply after the cursor's position.
            let skip = query.page.offset();
            let mut page = repository
                .get_after(
                    &query.filter,
                    after,
                    skip.saturating_add(query.page.limit()),
                )
                .await?;
            page.records.drain(..skip.min(page.records.len()));
            let total = match counted {
                true => Some(repository.count_pipeline_info(&query.filter).await?),
                false => None,
            };
            let next = page.next.map(|key| cursor::encode(key, &query.filter));
            Answer {
                total,
                records: page.records,
                next_cursor: Some(next),
            }
        }
        None if query.page == Page::All => {
            let runs = repository.get_all(&query.filter).await?;
            let total = counted.then_some(runs.total);
            return Ok(streamed_answer(total, runs));
        }
        None if counted => {
            let page = repository.get_page(&query.filter, query.page).await?;
            Answer {
                total: Some(page.total),
                records: page.records,
                next_cursor: None,
            }
        }
        None => Answer {
            total: None,
            records: repository
                .get_pipeline_info(&query.filter, query.page)
                .await?,
            next_cursor: None,
        },
    };
    Ok(answer.into_response())
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
        let tail = answer_tail(&names, self.next_cursor.as_ref());
        let count = self.records.len();
        let head = answer_head(self.total, count as u64);
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

/// What precedes an answer's records.
fn answer_head(total: Option<u64>, count: u64) -> String {
    format!(r#"{{"total":{},"count":{count},"results":["#, json(&total))
}

/// What follows an answer's records: the page's pipeline names and, for
/// cursor queries, the next cursor.
fn answer_tail<T: Serialize>(names: &BTreeSet<T>, next_cursor: Option<&Option<String>>) -> String {
    let mut tail = format!("],\"pipelines\":{}", json(names));
    if let Some(next) = next_cursor {
        tail.push_str(&format!(",\"next_cursor\":{}", json(next)));
    }
    tail.push('}');
    tail
}

/// An `all_data` answer, written as the store hands out its runs: memory
/// holds one chunk of records at a time however many match.
fn streamed_answer(total: Option<u64>, runs: RunStream) -> Response {
    let answer = StreamedAnswer {
        head: Some(answer_head(total, runs.total)),
        runs,
        written: 0,
        names: BTreeSet::new(),
        done: false,
    };
    (
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(stream::iter(answer)),
    )
        .into_response()
}

/// The parts of a streamed answer: head, records chunk by chunk, then the
/// tail with the names gathered on the way. A store that fails midway ends
/// the body with an error, so the client sees a broken transfer rather
/// than a short answer.
struct StreamedAnswer {
    head: Option<String>,
    runs: RunStream,
    written: usize,
    names: BTreeSet<String>,
    done: bool,
}

impl Iterator for StreamedAnswer {
    type Item = Result<Bytes, RepositoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(head) = self.head.take() {
            return Some(Ok(Bytes::from(head)));
        }
        if self.done {
            return None;
        }
        match self.runs.next() {
            Some(Ok(chunk)) => {
                for name in chunk.iter().filter_map(|r| r.pipeline_name()) {
                    if !self.names.contains(name) {
                        self.names.insert(name.to_owned());
                    }
                }
                let mut bytes = Vec::with_capacity(chunk.len() * 600);
                write_records(&chunk, self.written, &mut bytes);
                self.written += chunk.len();
                Some(Ok(Bytes::from(bytes)))
            }
            Some(Err(error)) => {
                tracing::error!(%error, "answer stopped");
                self.done = true;
                Some(Err(error))
            }
            None => {
                self.done = true;
                Some(Ok(Bytes::from(answer_tail(&self.names, None))))
            }
        }
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

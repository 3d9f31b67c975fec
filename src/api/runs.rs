//! `GET /get_pipeline_info`: filtered, paginated runs.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::cursor::{self, CursorToken};
use super::error::ApiError;
use super::error::{Refusals, UrlTooLong};
use super::extract::{
    documented_params, FromQuery, IntRange, QueryReader, RunFilterParams, ValidQuery,
};
use super::AppState;
use crate::domain::numbers::bool_from_str;
use crate::domain::{PipelineInfo, ValidationErrors};
use crate::repository::{Position, RepositoryError, RunFilter, RunKey, RunStream};

pub const MAX_LIMIT: i64 = 10_000;
pub const DEFAULT_LIMIT: i64 = 100;
/// Page size.
pub const LIMIT: IntRange = IntRange {
    min: 1,
    max: Some(MAX_LIMIT),
    default: Some(DEFAULT_LIMIT),
};
/// Matches skipped before the page.
pub const OFFSET: IntRange = IntRange {
    min: 0,
    max: None,
    default: Some(0),
};

/// Paging parameters of `GET /get_pipeline_info` (documentation; the
/// bounds `RunQuery` checks are added by `RunPageParams`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RunPageFields {
    /// Page size.
    limit: Option<i64>,
    /// Matches to skip before the page starts.
    #[param(maximum = 9_223_372_036_854_775_807_i64)]
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

documented_params!(
    /// The paging parameters with the bounds `RunQuery` checks.
    RunPageParams,
    RunPageFields,
    "limit" => LIMIT,
    "offset" => OFFSET,
);

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

impl FromQuery for RunQuery {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut q = QueryReader::new(query);
        let filter = q.filter();
        let limit = q.within("limit", LIMIT).unwrap_or(DEFAULT_LIMIT);
        let offset = q.within("offset", OFFSET).unwrap_or(0);
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
    if query.cursor.is_none() && query.page == Page::All {
        let runs = state.repository.query_all(&query.filter).await?;
        let total = (query.counting == Counting::Exact).then_some(runs.total);
        return Ok(streamed_answer(total, runs));
    }
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

//! `GET /download/pipeline_info`: every matching run as a CSV or JSON Lines
//! file, streamed one keyset page at a time, so memory stays constant
//! however many runs match and runs arriving meanwhile never shift the file.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::{stream, StreamExt};
use utoipa::{IntoParams, ToSchema};

use super::csv_cells::write_row;
use super::cursor::CursorToken;
use super::error::ApiError;
use super::error::{Refusals, UrlTooLong};
use super::extract::{
    documented_params, FromQuery, IntRange, QueryReader, RunFilterParams, ValidQuery,
};
use super::AppState;
use crate::domain::{PipelineInfo, ValidationErrors, FIELD_NAMES};
use crate::repository::{PipelineInfoRepository, Position, RepositoryError, RunFilter, RunKey};

/// Runs fetched from the store per step of the stream.
const PAGE: usize = 2000;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportFormat {
    fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    /// What precedes the first record.
    fn header(self) -> Vec<u8> {
        match self {
            ExportFormat::Csv => csv_bytes(|w| w.write_record(FIELD_NAMES)),
            ExportFormat::Jsonl => Vec::new(),
        }
    }

    /// The records' rows; CSV text cells that a spreadsheet would run as a
    /// formula get a `'` in front when `neutralise_formulas`.
    fn write(self, records: &[Arc<PipelineInfo>], neutralise_formulas: bool) -> Vec<u8> {
        match self {
            ExportFormat::Csv => csv_bytes(|w| {
                records
                    .iter()
                    .try_for_each(|record| write_row(w, record.as_ref(), neutralise_formulas))
            }),
            ExportFormat::Jsonl => {
                let mut out = Vec::with_capacity(records.len() * 600);
                for record in records {
                    record.write_json(&mut out);
                    out.push(b'\n');
                }
                out
            }
        }
    }
}

/// CSV text written by `fill`: RFC 4180 quoting, rows ended by `\n` (what
/// spreadsheet and data tools read alike).
fn csv_bytes(fill: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    if let Err(error) = fill(&mut writer) {
        tracing::error!(%error, "CSV row could not be written");
    }
    // Flushing into memory cannot fail; an error here would be a bug.
    writer.into_inner().unwrap_or_else(|error| {
        tracing::error!(%error, "CSV buffer could not be flushed");
        Vec::new()
    })
}

/// How many runs an export holds at most (absent: every match).
pub const EXPORT_LIMIT: IntRange = IntRange {
    min: 1,
    max: None,
    default: None,
};

/// The export's own query parameters (documentation; `ExportQuery` parses,
/// and `ExportFormatParams` adds the bounds it checks).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExportFields {
    /// `csv` (header row, RFC 4180 quoting) or `jsonl` (one JSON record per line).
    #[param(inline, default = "csv")]
    format: Option<ExportFormat>,
    /// Start after this position: a `next_cursor` from
    /// `/get_pipeline_info?cursor=` with the same filters (empty: from the
    /// newest run). With `limit`, the file holds exactly the runs of that
    /// page — what a dashboard shows.
    #[param(value_type = Option<CursorToken>)]
    cursor: Option<String>,
    /// At most this many runs (default: every match).
    limit: Option<i64>,
}

documented_params!(
    /// The export's own parameters with the bounds `ExportQuery` checks.
    ExportFormatParams,
    ExportFields,
    "limit" => EXPORT_LIMIT,
);

/// A validated export request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportQuery {
    pub filter: RunFilter,
    pub format: ExportFormat,
    /// Where the file starts (`None`: at the newest run).
    pub after: Option<RunKey>,
    /// How many runs at most (`usize::MAX`: every match).
    pub limit: usize,
}

impl FromQuery for ExportQuery {
    fn parse(query: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut q = QueryReader::new(query);
        let filter = q.filter();
        let format = q
            .choice(
                "format",
                &[("csv", ExportFormat::Csv), ("jsonl", ExportFormat::Jsonl)],
            )
            .unwrap_or(ExportFormat::Csv);
        let limit = q.within("limit", EXPORT_LIMIT);
        let after = q.cursor(&filter).flatten();
        q.finish(|| ExportQuery {
            filter,
            format,
            after,
            limit: limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        })
    }
}

/// Export runs as a file
///
/// Every run matching the filters (those of `/get_pipeline_info`), latest
/// `start_utc` first, as a CSV or JSON Lines attachment; `cursor` and
/// `limit` narrow it to one keyset page. The file is streamed, so its size
/// is not limited by memory; datetimes are written as in the JSON answers.
/// CSV text cells starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return get a `'` in front so spreadsheets show them rather than run them
/// (numbers are never changed); the service setting
/// `PIPELINE_CSV_NEUTRALISE_FORMULAS=false` turns this off.
#[utoipa::path(
    get,
    path = "/download/pipeline_info",
    tag = "runs",
    params(ExportFormatParams, RunFilterParams),
    responses(
        (status = 200, description = "The file, streamed", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        ), headers(("content-disposition" = String, description = "attachment; filename=\"pipeline_info_<UTC time>.<csv|jsonl>\""))),
        (status = 422, description = "A query parameter is invalid (including an unknown format)", body = ValidationErrors,
            example = json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}}]})),
        Refusals,
        UrlTooLong,
    ),
    security((), ("api_key" = []))
)]
pub async fn download_pipeline_info(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let repository = state.repository.clone();
    // The first page is read before answering, so an unreachable store is
    // still a proper error status rather than a broken download.
    let first = repository
        .query(
            &query.filter,
            query.after.into(),
            PAGE.min(query.limit),
            false,
        )
        .await?;
    let left = query.limit - first.records.len();
    let format = query.format;
    let filename = format!(
        "pipeline_info_{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let neutralise = state.csv_neutralise_formulas;
    let mut head = format.header();
    head.extend_from_slice(&format.write(&first.records, neutralise));
    let rest = stream::unfold(
        (repository, query.filter, first.next, left),
        move |(repository, filter, after, left)| async move {
            let after: RunKey = after.filter(|_| left > 0)?;
            let next = next_chunk(
                repository.as_ref(),
                &filter,
                after,
                left,
                format,
                neutralise,
            )
            .await;
            Some(match next {
                Ok((bytes, more, written)) => {
                    (Ok(bytes), (repository, filter, more, left - written))
                }
                // Ending the body with an error aborts the transfer, so the
                // client sees an incomplete download, never a short file.
                Err(error) => {
                    tracing::error!(%error, "export stopped");
                    (Err(error), (repository, filter, None, 0))
                }
            })
        },
    );
    // Fused: the compression layer polls a finished body once more (for
    // trailers), which an unfused `unfold` answers with a panic.
    let body = stream::once(async move { Ok::<Bytes, RepositoryError>(Bytes::from(head)) })
        .chain(rest)
        .fuse();
    Ok((
        [
            (CONTENT_TYPE, format.media_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The next step of the file: at most `left` runs after `after`, where the
/// one after them is, and how many were written.
async fn next_chunk(
    repository: &dyn PipelineInfoRepository,
    filter: &RunFilter,
    after: RunKey,
    left: usize,
    format: ExportFormat,
    neutralise_formulas: bool,
) -> Result<(Bytes, Option<RunKey>, usize), RepositoryError> {
    let page = repository
        .query(filter, Position::After(after), PAGE.min(left), false)
        .await?;
    let written = page.records.len();
    Ok((
        Bytes::from(format.write(&page.records, neutralise_formulas)),
        page.next,
        written,
    ))
}

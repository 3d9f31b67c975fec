//! Answering from an already opened file: `Last-Modified` and the
//! conditional headers that use it, byte ranges, `Content-Length`.
//!
//! The file is served from the handle it was checked through (see
//! `open`), so this cannot be left to a service that opens by path.

use std::fs::{File, Metadata};
use std::io::SeekFrom;
use std::ops::RangeInclusive;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, IF_MODIFIED_SINCE, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use httpdate::HttpDate;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Bytes read from the file per body chunk.
const CHUNK: usize = 64 * 1024;

/// The answer to a GET (or HEAD) for `file`: 200, 206, 304, 412 or 416.
pub async fn respond(
    request: &HeaderMap,
    file: File,
    meta: &Metadata,
) -> std::io::Result<Response> {
    let size = meta.len();
    // HTTP dates count whole seconds; so does every comparison below.
    let modified = meta.modified().ok().map(HttpDate::from);
    let mut response = match precondition(request, modified) {
        Some(status) => status_only(status),
        None => match wanted_range(request, modified, size) {
            Wanted::Unsatisfiable => {
                let mut response = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
                insert(&mut response, CONTENT_RANGE, format!("bytes */{size}"));
                response
            }
            Wanted::Whole => {
                let mut response = body(file, 0, size).await?;
                insert(&mut response, CONTENT_LENGTH, size.to_string());
                response
            }
            Wanted::Part(range) => {
                let (start, end) = (*range.start(), *range.end());
                let mut response = body(file, start, end - start + 1).await?;
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                insert(&mut response, CONTENT_LENGTH, (end - start + 1).to_string());
                insert(
                    &mut response,
                    CONTENT_RANGE,
                    format!("bytes {start}-{end}/{size}"),
                );
                response
            }
        },
    };
    response
        .headers_mut()
        .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(modified) = modified {
        insert(&mut response, LAST_MODIFIED, modified.to_string());
    }
    Ok(response)
}

/// 412 when `If-Unmodified-Since` fails, 304 when `If-Modified-Since`
/// shows the client's copy is current. A file without a modification time
/// counts as changed.
fn precondition(request: &HeaderMap, modified: Option<HttpDate>) -> Option<StatusCode> {
    if let Some(since) = date(request, &IF_UNMODIFIED_SINCE) {
        if modified.is_none_or(|m| m > since) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    match (date(request, &IF_MODIFIED_SINCE), modified) {
        (Some(since), Some(m)) if m <= since => Some(StatusCode::NOT_MODIFIED),
        _ => None,
    }
}

enum Wanted {
    Whole,
    Part(RangeInclusive<u64>),
    Unsatisfiable,
}

/// Which bytes to send. A `Range` header that does not parse is ignored
/// (RFC 9110 §14.2), as is one asking for several ranges (the whole file
/// is a valid answer to that) or one whose `If-Range` date is not exactly
/// the file's; only a well-formed range outside the file is 416.
fn wanted_range(request: &HeaderMap, modified: Option<HttpDate>, size: u64) -> Wanted {
    let Some(header) = request.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::Whole;
    };
    // An `If-Range` entity tag never matches: no entity tags are given out.
    if request.contains_key(IF_RANGE)
        && (modified.is_none() || date(request, &IF_RANGE) != modified)
    {
        return Wanted::Whole;
    }
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return Wanted::Whole;
    };
    match parsed.validate(size) {
        Err(_) => Wanted::Unsatisfiable,
        Ok(ranges) => match <[_; 1]>::try_from(ranges) {
            Ok([range]) => Wanted::Part(range),
            Err(_) => Wanted::Whole,
        },
    }
}

fn date(request: &HeaderMap, name: &HeaderName) -> Option<HttpDate> {
    request.get(name)?.to_str().ok()?.parse().ok()
}

/// A 200 whose body streams `len` bytes of `file` from `start`.
async fn body(file: File, start: u64, len: u64) -> std::io::Result<Response> {
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let stream = ReaderStream::with_capacity(file.take(len), CHUNK);
    Ok(Response::new(Body::from_stream(stream)))
}

fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Sets a header built from text that is always a valid value (digits,
/// dates, ASCII punctuation).
fn insert(response: &mut Response, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().insert(name, value);
    }
}

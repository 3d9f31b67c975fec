//! Response compression (gzip, Brotli, zstd), negotiated by
//! `Accept-Encoding`, for the text the service sends: JSON, CSV, JSON Lines,
//! the metrics exposition and the pages' HTML, scripts and styles. Streamed
//! answers (large pages, exports) are compressed as they stream.

use axum::body::HttpBody;
use axum::http::header::{ACCEPT_RANGES, CONTENT_TYPE};
use axum::http::Response;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// Bodies smaller than this are sent as they are: the saving would be a
/// few hundred bytes at most, not worth the encoder's time and buffers. A
/// streamed body has no known size and is compressed.
pub const MIN_COMPRESSED_BYTES: u16 = 1024;

/// Media types worth compressing: text of every kind. Images, archives and
/// anything already compressed are left alone.
fn is_text(media_type: &str) -> bool {
    let media_type = media_type.trim_start().to_ascii_lowercase();
    media_type.starts_with("text/")
        || [
            "application/json",
            "application/x-ndjson",
            "application/javascript",
        ]
        .iter()
        .any(|t| media_type.starts_with(t))
}

/// Which answers the layer compresses.
#[derive(Debug, Clone, Copy)]
pub struct WorthCompressing;

impl Predicate for WorthCompressing {
    fn should_compress<B: HttpBody>(&self, response: &Response<B>) -> bool {
        let headers = response.headers();
        let text = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_text);
        // A file offered in byte ranges (archived files) is sent as it is
        // on disk: compressing it would withdraw the ranges a download
        // resumes with.
        text && !headers.contains_key(ACCEPT_RANGES)
            && SizeAbove::new(MIN_COMPRESSED_BYTES).should_compress(response)
    }
}

/// Level 1 of each encoder. The libraries' defaults (gzip 6, Brotli 4,
/// zstd 3) made a 540 KB page cost 7.5 ms of gzip alone, three times what
/// level 1 costs, for a body 25% smaller: answers are made once and read
/// once on networks where the first 85% of the saving is what counts (see
/// BENCHMARKS.md).
const LEVEL: CompressionLevel = CompressionLevel::Precise(1);

/// The layer for the whole application.
pub fn layer() -> CompressionLayer<WorthCompressing> {
    CompressionLayer::new()
        .gzip(true)
        .br(true)
        .zstd(true)
        .quality(LEVEL)
        .compress_when(WorthCompressing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderValue;

    fn response(media_type: &'static str, ranges: bool, size: usize) -> Response<Body> {
        let mut response = Response::new(Body::from(vec![b'x'; size]));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
        if ranges {
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        response
    }

    #[test]
    fn ranged_files_and_tiny_bodies_are_left_alone() {
        let large = usize::from(MIN_COMPRESSED_BYTES);
        assert!(WorthCompressing.should_compress(&response("text/plain", false, large)));
        assert!(!WorthCompressing.should_compress(&response("text/plain", true, large)));
        assert!(!WorthCompressing.should_compress(&response("text/plain", false, large - 1)));
        assert!(!WorthCompressing.should_compress(&response("image/png", false, large)));
    }

    #[test]
    fn text_is_compressed_and_the_rest_is_not() {
        for text in [
            "application/json",
            "application/x-ndjson",
            "text/csv; charset=utf-8",
            "text/plain; version=0.0.4; charset=utf-8",
            "text/javascript",
            "TEXT/HTML",
        ] {
            assert!(is_text(text), "{text}");
        }
        for other in [
            "image/png",
            "application/gzip",
            "application/octet-stream",
            "application/zip",
        ] {
            assert!(!is_text(other), "{other}");
        }
    }
}

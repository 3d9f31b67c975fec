//! `GET /ui`: the dashboard, a single page embedded in the binary.
//!
//! The page (`assets/index.html`) names its scripts and styles by content
//! hash (`app.3f9c….js`), so those can be cached for a year and never go
//! stale: a new build serves a page naming new files. The page itself is
//! revalidated on every load (`no-cache` with an `ETag`, answered 304 when
//! unchanged). Everything is compressed on the way out by a layer local to
//! these routes. The page reads only the public API, so it needs no state.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use super::error::ApiError;

/// Where the dashboard is served.
pub const PAGE_PATH: &str = "/ui";

/// A file served under `/ui/assets/`, as written in the page's template
/// (`{{name}}` stands for its hashed address).
struct Source {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

/// A `Source` for `assets/<name>`, compiled into the binary.
macro_rules! source {
    ($name:literal, $media_type:literal) => {
        Source {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const SOURCES: &[Source] = &[
    source!("app.js", "text/javascript; charset=utf-8"),
    source!("app.css", "text/css; charset=utf-8"),
    // uPlot 1.6.32 from the npm registry, unmodified (MIT).
    source!("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    source!("uPlot.min.css", "text/css; charset=utf-8"),
    source!("uPlot.LICENSE.txt", "text/plain; charset=utf-8"),
];

const TEMPLATE: &str = include_str!("assets/index.html");

/// Hashed assets never change under their name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page is checked with the server on every load.
const REVALIDATE: &str = "no-cache";
/// Only this service's own scripts, styles and API: the page works with no
/// internet access, and injected markup could neither run nor send data
/// elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
frame-ancestors 'none'";

/// A response body and how to validate it.
struct Served {
    media_type: &'static str,
    bytes: Vec<u8>,
    etag: HeaderValue,
}

impl Served {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = Sha256::digest(&bytes);
        // Weak: the compression layer may send these bytes re-encoded.
        let etag = format!("W/\"{}\"", hex(&digest[..12]));
        Self {
            media_type,
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("W/\"\"")),
            bytes,
        }
    }

    /// 200 with the body, or 304 when the client's copy is current.
    fn answer(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, self.etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if matches_etag(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.media_type));
        (headers, self.bytes.clone()).into_response()
    }
}

/// The page and its assets, hashed once.
struct Dashboard {
    page: Served,
    /// By hashed file name.
    assets: HashMap<String, Served>,
}

static DASHBOARD: LazyLock<Dashboard> = LazyLock::new(|| {
    let mut page = TEMPLATE.to_owned();
    let mut assets = HashMap::new();
    for source in SOURCES {
        let asset = Served::new(source.media_type, source.bytes.to_vec());
        let name = hashed_name(source.name, &asset.etag);
        // Relative to `/ui`, so the page also works behind a path prefix.
        page = page.replace(
            &format!("{{{{{}}}}}", source.name),
            &format!("ui/assets/{name}"),
        );
        assets.insert(name, asset);
    }
    Dashboard {
        page: Served::new("text/html; charset=utf-8", page.into_bytes()),
        assets,
    }
});

/// `app.js` → `app.<hash>.js`: the hash goes before the last extension.
fn hashed_name(name: &str, etag: &HeaderValue) -> String {
    let hash: String = etag
        .to_str()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
        None => format!("{name}.{hash}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `If-None-Match` names this entity (weak comparison, as RFC 9110 asks
/// for GET), or is `*`.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(ours))
}

/// The dashboard's routes, compressed (gzip) when the client accepts it.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route("/ui/assets/{file}", get(asset))
        .layer(CompressionLayer::new())
}

/// The dashboard page.
async fn page(request: HeaderMap) -> Response {
    let mut response = DASHBOARD.page.answer(&request, REVALIDATE);
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// A script, style or license file of the page, by hashed name.
async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    match DASHBOARD.assets.get(&file) {
        Some(asset) => asset.answer(&request, IMMUTABLE),
        None => ApiError::NotFound.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_hash() {
        let page = String::from_utf8(DASHBOARD.page.bytes.clone()).unwrap();
        assert!(!page.contains("{{"), "every placeholder replaced");
        for name in DASHBOARD.assets.keys() {
            assert!(page.contains(&format!("ui/assets/{name}")), "{name}");
        }
        assert_eq!(DASHBOARD.assets.len(), SOURCES.len());
        let etag = HeaderValue::from_static("W/\"0123456789abcdef01234567\"");
        assert_eq!(hashed_name("app.js", &etag), "app.0123456789ab.js");
        assert_eq!(
            hashed_name("uPlot.min.css", &etag),
            "uPlot.min.0123456789ab.css"
        );
    }

    #[test]
    fn validators_compare_weakly() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
            matches_etag(&headers, &etag)
        };
        assert!(with("W/\"abc\""));
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!matches_etag(&HeaderMap::new(), &etag));
    }
}

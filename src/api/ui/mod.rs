//! `GET /ui`: the dashboard, a single page embedded in the binary.
//!
//! The page (`assets/index.html`) names its scripts and styles by content
//! hash (`app.3f9c….js`), so those can be cached for a year and never go
//! stale: a new build serves a page naming new files. The page itself is
//! revalidated on every load (`no-cache` with an `ETag`, answered 304 when
//! unchanged). The application's compression layer compresses them on the
//! way out. The page reads only the public API, so it needs no state.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::caching::{self, IMMUTABLE, REVALIDATE};
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

/// Only this service's own scripts, styles and API: the page works with no
/// internet access, and injected markup could neither run nor send data
/// elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
frame-ancestors 'none'";

/// A response body and how to validate it.
struct Served {
    media_type: &'static str,
    bytes: Bytes,
    etag: HeaderValue,
}

impl Served {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            media_type,
            etag: caching::entity_tag(&bytes),
            bytes: Bytes::from(bytes),
        }
    }

    /// 200 with the body, or 304 when the client's copy is current.
    fn answer(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let mut response = caching::answer(
            request,
            self.etag.clone(),
            cache_control,
            self.media_type,
            self.bytes.clone(),
        );
        response
            .headers_mut()
            .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
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

/// The dashboard's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route("/ui/assets/{file}", get(asset))
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
        let page = String::from_utf8(DASHBOARD.page.bytes.to_vec()).unwrap();
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
}

//! What answers say about caching: `Cache-Control` policies, weak entity
//! tags, and `If-None-Match` → 304. Entity tags are weak because the
//! compression layer may send the same content in another encoding (a
//! strong tag names exact bytes), and weak comparison is what RFC 9110
//! asks for on GET.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::internal_error;

/// Content-addressed files: never stale under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Files whose name does not change with their content (the Swagger UI's,
/// which change only with a new release of the service): kept a week, then
/// revalidated by their entity tag.
pub const WEEK: &str = "public, max-age=604800";
/// Kept, but checked with the server before every use.
pub const REVALIDATE: &str = "no-cache";
/// API data: checked before every use, and kept by the client only (the
/// answer may have needed an API key that a shared cache would not check).
pub const PRIVATE_REVALIDATE: &str = "private, no-cache";
/// Everything else the API answers: never kept.
pub const NO_STORE: &str = "no-store";

/// A weak entity tag: 24 hex digits of the SHA-256 of the content, the
/// same for the same content on every replica and after every restart.
#[derive(Default)]
pub struct EntityTagWriter(Sha256);

impl std::io::Write for EntityTagWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl EntityTagWriter {
    pub fn finish(self) -> HeaderValue {
        let digest = self.0.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        // Only `W/"` and hex digits: always a valid header value.
        HeaderValue::from_str(&format!("W/\"{hex}\"")).unwrap_or(HeaderValue::from_static("W/\"\""))
    }
}

/// The weak entity tag of `bytes`.
pub fn entity_tag(bytes: &[u8]) -> HeaderValue {
    let mut writer = EntityTagWriter::default();
    writer.0.update(bytes);
    writer.finish()
}

/// `If-None-Match` names this entity (weak comparison), or is `*`.
pub fn matches(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(ours))
}

/// 304 with the validator and policy, no body.
pub fn not_modified(etag: HeaderValue, cache_control: &'static str) -> Response {
    (
        StatusCode::NOT_MODIFIED,
        [
            (ETAG, etag),
            (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        ],
    )
        .into_response()
}

/// 200 with `body`, or 304 when the client's copy is current.
pub fn answer(
    request: &HeaderMap,
    etag: HeaderValue,
    cache_control: &'static str,
    media_type: &'static str,
    body: Bytes,
) -> Response {
    if matches(request, &etag) {
        return not_modified(etag, cache_control);
    }
    (
        [
            (ETAG, etag),
            (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
            (CONTENT_TYPE, HeaderValue::from_static(media_type)),
        ],
        body,
    )
        .into_response()
}

/// The caching policy of a path the Swagger UI router serves: the page
/// and its generated configuration are revalidated (they name this
/// service's document), the Swagger UI's own files are kept a week, and
/// the API document is revalidated. `None` for the `/docs` redirect.
fn documentation_policy(path: &str) -> Option<&'static str> {
    match path {
        "/openapi.json" | "/docs/" | "/docs/index.html" | "/docs/swagger-initializer.js" => {
            Some(REVALIDATE)
        }
        _ if path.starts_with("/docs/") => Some(WEEK),
        _ => None,
    }
}

/// Entity tags of an application's documentation files by path. Their
/// content is fixed for the application's life (the Swagger UI is compiled
/// in, the document is built with the application), so each is hashed once.
#[derive(Default)]
pub struct DocumentationTags(parking_lot::Mutex<HashMap<String, HeaderValue>>);
/// Paths remembered at most: the Swagger UI has a score of files, and
/// spellings of their names (percent-encoding) must not grow the map.
const MAX_DOCUMENTATION_TAGS: usize = 64;
/// Largest documentation file read to be hashed (the Swagger UI's script
/// bundle is 1.4 MB).
const MAX_DOCUMENTATION_BYTES: usize = 16 << 20;

/// Middleware for the Swagger UI routes and `/openapi.json`: a caching
/// policy and an entity tag on every successful answer, and 304 when the
/// client's copy is current.
pub async fn documentation(
    State(tags): State<Arc<DocumentationTags>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(policy) = documentation_policy(&path) else {
        return next.run(request).await;
    };
    let is_get = request.method() == Method::GET;
    let known = tags.0.lock().get(&path).cloned();
    if let Some(etag) = &known {
        if matches(request.headers(), etag) {
            return not_modified(etag.clone(), policy);
        }
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut response, etag) = match known {
        Some(etag) => (response, etag),
        // A HEAD answer has no body to hash; the next GET tags the file.
        None if !is_get => {
            let mut response = response;
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(policy));
            return response;
        }
        None => {
            let (parts, body) = response.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_DOCUMENTATION_BYTES).await {
                Ok(bytes) => bytes,
                Err(error) => return internal_error(format!("reading {path}: {error}")),
            };
            let etag = entity_tag(&bytes);
            let mut tags = tags.0.lock();
            if tags.len() < MAX_DOCUMENTATION_TAGS {
                tags.insert(path, etag.clone());
            }
            (Response::from_parts(parts, Body::from(bytes)), etag)
        }
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_compare_weakly() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
            matches(&headers, &etag)
        };
        assert!(with("W/\"abc\""));
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!matches(&HeaderMap::new(), &etag));
    }

    #[test]
    fn documentation_pages_are_revalidated_and_files_kept_a_week() {
        for page in [
            "/docs/",
            "/docs/index.html",
            "/docs/swagger-initializer.js",
            "/openapi.json",
        ] {
            assert_eq!(documentation_policy(page), Some(REVALIDATE), "{page}");
        }
        for file in [
            "/docs/swagger-ui-bundle.js",
            "/docs/swagger-ui.css",
            "/docs/favicon-32x32.png",
        ] {
            assert_eq!(documentation_policy(file), Some(WEEK), "{file}");
        }
        assert_eq!(documentation_policy("/docs"), None);
    }

    #[test]
    fn tags_name_the_content() {
        let tag = entity_tag(b"some content");
        assert_eq!(tag, entity_tag(b"some content"));
        assert_ne!(tag, entity_tag(b"other content"));
        let text = tag.to_str().unwrap();
        assert!(text.starts_with("W/\"") && text.len() == 24 + 4, "{text}");
    }
}

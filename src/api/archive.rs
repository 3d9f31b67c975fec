//! `GET /pipelines/archived/{date_code}`: the archived output of a run,
//! served only from the folders listed in `PIPELINE_ARCHIVE_ROOTS`.
//!
//! A stored path is data, not trust: it is checked lexically (`..` and
//! relative paths resolved) before the filesystem is touched, so probing
//! paths outside the roots reveals nothing, and again after resolving
//! symlinks, so a link inside a root cannot lead out of it.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::{ApiError, ErrorMessage, INTERNAL_ERROR, NOT_AUTHENTICATED, SERVER_BUSY};
use super::AppState;

const NO_RUN: &str = "No run with this date_code";
const NO_FILE: &str = "This run has no archived file";
const MISSING: &str = "The archived file does not exist";
const OUTSIDE: &str = "The archived file is outside the folders files are served from";

/// Download a run's archived file
///
/// The `archived_file` of the newest run with this `date_code`, with its
/// type guessed from the name, `Content-Length`, and byte ranges (`Range:
/// bytes=…`, answered 206). Small text, image and JSON files are shown
/// inline; everything else is an attachment. Only files inside the folders
/// of `PIPELINE_ARCHIVE_ROOTS` (after resolving `..` and symlinks) are
/// served.
#[utoipa::path(
    get,
    path = "/pipelines/archived/{date_code}",
    tag = "pipelines",
    params(("date_code" = String, Path, description = "The run's date_code", example = "20250808_050701")),
    responses(
        (status = 200, description = "The file, with the media type its name suggests (`application/octet-stream` when unknown)", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested byte range", content_type = "*/*", body = Vec<u8>),
        (status = 401, description = "Reads need an API key and none was sent", body = ErrorMessage,
            example = json!({"detail": NOT_AUTHENTICATED})),
        (status = 403, description = "The file is outside the configured archive folders (or none are configured), or the API key is wrong", body = ErrorMessage,
            example = json!({"detail": OUTSIDE})),
        (status = 404, description = "No such run, no archived file, or the file is missing", body = ErrorMessage,
            example = json!({"detail": NO_RUN})),
        (status = 416, description = "The range is outside the file"),
        (status = 500, description = "Unexpected server fault", body = ErrorMessage,
            example = json!({"detail": INTERNAL_ERROR})),
        (status = 503, description = "Overloaded (with Retry-After) or timed out", body = ErrorMessage,
            example = json!({"detail": SERVER_BUSY})),
    ),
    security((), ("api_key" = []))
)]
pub async fn archived_file(
    State(state): State<AppState>,
    UrlPath(date_code): UrlPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let run = state
        .repository
        .find_by_date_code(&date_code)
        .await?
        .ok_or(ApiError::Missing(NO_RUN))?;
    let stored = run
        .archived_file()
        .filter(|p| !p.is_empty())
        .ok_or(ApiError::Missing(NO_FILE))?;
    let roots = &state.archive.roots;
    let path = lexical(Path::new(stored));
    if !roots.iter().any(|root| path.starts_with(lexical(root))) {
        return Err(ApiError::Forbidden(OUTSIDE));
    }
    let real = match tokio::fs::canonicalize(&path).await {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::Missing(MISSING))
        }
        Err(_) => return Err(ApiError::Forbidden(OUTSIDE)),
    };
    let mut inside = false;
    for root in roots {
        if let Ok(root) = tokio::fs::canonicalize(root).await {
            inside |= real.starts_with(root);
        }
    }
    if !inside {
        return Err(ApiError::Forbidden(OUTSIDE));
    }
    let size = match tokio::fs::metadata(&real).await {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return Err(ApiError::Missing(MISSING)),
    };
    let served = ServeFile::new(&real).oneshot(request).await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    let media = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let viewable = media.starts_with("text/")
        || media.starts_with("image/")
        || media.starts_with("application/json");
    let inline = viewable && size <= state.archive.inline_max_bytes;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"))
        .unwrap_or_else(|| "archive".to_owned());
    let disposition = format!(
        "{}; filename=\"{name}\"",
        if inline { "inline" } else { "attachment" }
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `path` made absolute (against the working folder) with `.` and `..`
/// resolved by name only, without touching the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_resolution_cannot_climb_out_by_name() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(lexical(Path::new("/a/../../../etc")), PathBuf::from("/etc"));
        assert!(!lexical(Path::new("/srv/archive/../secret")).starts_with("/srv/archive"));
        assert!(lexical(Path::new("relative/file")).is_absolute());
    }
}

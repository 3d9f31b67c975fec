//! `GET /pipelines/archived/{date_code}`: the archived output of a run,
//! served only from the folders listed in `PIPELINE_ARCHIVE_ROOTS`.
//!
//! A stored path is data, not trust. It is first checked by name (`..` and
//! relative paths resolved), so probing paths outside the roots reveals
//! nothing; then it is opened once beneath its root's directory handle,
//! refusing any resolution that would leave the root (`open`), and served
//! from that handle (`serve`). The bytes are someone else's too: only a few
//! types that cannot run script are shown inline, and every file goes out
//! with `nosniff` and a sandboxing content security policy.

mod open;
mod serve;

use std::path::{Component, Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use self::open::OpenError;
use super::error::{
    internal_error, ApiError, ErrorMessage, INTERNAL_ERROR, NOT_AUTHENTICATED, SERVER_BUSY,
};
use super::AppState;

/// Archived-file serving: only below `roots` (after resolving symlinks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePolicy {
    pub roots: Vec<PathBuf>,
    /// Larger files are always attachments.
    pub inline_max_bytes: u64,
}

const NO_RUN: &str = "No run with this date_code";
const NO_FILE: &str = "This run has no archived file";
const AMBIGUOUS: &str =
    "Runs with this date_code name different archived files, so none of them is served";
const MISSING: &str = "The archived file does not exist";
const OUTSIDE: &str = "The archived file is outside the folders files are served from";
const UNREADABLE: &str = "The archived file cannot be read by the service";

/// The type of everything not shown inline: a download, never interpreted.
const OPAQUE: &str = "application/octet-stream";

/// Download a run's archived file
///
/// The `archived_file` named by the runs with this `date_code`. When runs
/// sharing the `date_code` name different files the answer is 409: none
/// is served, rather than whichever was posted last. Plain text (`.txt`,
/// `.log`), PNG, JPEG and JSON files up to `MAX_FILE_SIZE_MB` are shown
/// inline; everything else is an attachment typed
/// `application/octet-stream`. Every file carries
/// `X-Content-Type-Options: nosniff` and `Content-Security-Policy:
/// sandbox`, `Content-Length`, `Last-Modified` (with `If-Modified-Since`
/// and `If-Unmodified-Since`) and byte ranges (`Range: bytes=…`, answered
/// 206). Only files inside the folders of `PIPELINE_ARCHIVE_ROOTS` are
/// served; symlinks below a root are followed only when relative and
/// staying inside it.
#[utoipa::path(
    get,
    path = "/pipelines/archived/{date_code}",
    tag = "pipelines",
    params(("date_code" = String, Path, description = "The run's date_code", example = "20250808_050701")),
    responses(
        (status = 200, description = "The file: `text/plain`, `image/png`, `image/jpeg` or `application/json` when shown inline, otherwise `application/octet-stream` as an attachment", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested byte range", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 401, description = "Reads need an API key and none was sent", body = ErrorMessage,
            example = json!({"detail": NOT_AUTHENTICATED})),
        (status = 403, description = "The file is outside the configured archive folders (or none are configured), unreadable, or the API key is wrong", body = ErrorMessage,
            example = json!({"detail": OUTSIDE})),
        (status = 404, description = "No such run, no archived file, or the file is missing or not a regular file", body = ErrorMessage,
            example = json!({"detail": NO_RUN})),
        (status = 409, description = "Runs with this date_code name different files", body = ErrorMessage,
            example = json!({"detail": AMBIGUOUS})),
        (status = 412, description = "Modified since `If-Unmodified-Since`"),
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
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let stored = named_file(&state, &date_code).await?;
    let path = lexical(Path::new(&stored));
    let (root, relative) =
        beneath_a_root(&state.archive.roots, &path).ok_or(ApiError::Forbidden(OUTSIDE))?;
    let opened = tokio::task::spawn_blocking(move || open::open_beneath(&root, &relative))
        .await
        .unwrap_or_else(|e| Err(OpenError::Fault(std::io::Error::other(e))));
    let (file, meta) = match opened {
        Ok(opened) => opened,
        Err(OpenError::Missing) => return Err(ApiError::Missing(MISSING)),
        Err(OpenError::Outside) => return Err(ApiError::Forbidden(OUTSIDE)),
        Err(OpenError::Denied) => return Err(ApiError::Forbidden(UNREADABLE)),
        Err(OpenError::Fault(e)) => return Ok(internal_error(format!("opening {stored}: {e}"))),
    };
    let name = path
        .file_name()
        .map_or_else(|| "archive".into(), |n| n.to_string_lossy());
    let shown = inline_type(&name).filter(|_| meta.len() <= state.archive.inline_max_bytes);
    let kind = if shown.is_some() {
        "inline"
    } else {
        "attachment"
    };
    let mut response = match serve::respond(&request, file, &meta).await {
        Ok(response) => response,
        Err(e) => return Ok(internal_error(format!("reading {stored}: {e}"))),
    };
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(shown.unwrap_or(OPAQUE)),
    );
    headers.insert(CONTENT_DISPOSITION, disposition(kind, &name));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Kept by the client only, and revalidated by `Last-Modified`.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(super::caching::PRIVATE_REVALIDATE),
    );
    // Opened as a page anyway, the file is sandboxed: no script, no forms,
    // and an origin of its own, so it can reach nothing of this service's.
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    Ok(response)
}

/// The one file the runs with `date_code` name. Several runs may share a
/// `date_code` (a retried post, or two pipelines started in the same
/// second); when they name the same file it is served, when they disagree
/// nothing is, so a later writer can never redirect the download.
async fn named_file(state: &AppState, date_code: &str) -> Result<String, ApiError> {
    let files = state
        .repository
        .archived_files(date_code, 2)
        .await?
        .ok_or(ApiError::Missing(NO_RUN))?;
    match <[String; 1]>::try_from(files) {
        Ok([file]) => Ok(file),
        Err(files) if files.is_empty() => Err(ApiError::Missing(NO_FILE)),
        Err(_) => Err(ApiError::Conflict(AMBIGUOUS)),
    }
}

/// The outermost root `path` lies in by name, and the rest of the path
/// below it: nested roots allow at least what the outer one does.
fn beneath_a_root(roots: &[PathBuf], path: &Path) -> Option<(PathBuf, PathBuf)> {
    roots
        .iter()
        .map(|root| lexical(root))
        .filter_map(|root| {
            let relative = path.strip_prefix(&root).ok()?.to_path_buf();
            Some((root, relative))
        })
        .min_by_key(|(root, _)| root.components().count())
}

/// The type a file is shown inline with, for the few whose content a
/// browser displays without running anything: plain text, PNG, JPEG and
/// JSON. HTML, SVG, XML, PDF and the rest are downloads.
fn inline_type(name: &str) -> Option<&'static str> {
    let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "txt" | "log" | "text" => Some("text/plain; charset=utf-8"),
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "json" => Some("application/json"),
        _ => None,
    }
}

/// `Content-Disposition` for any file name (RFC 6266): an ASCII
/// `filename` every client understands, with anything it cannot carry
/// (controls, quotes, backslashes, `%`, non-ASCII) replaced by `_`, and,
/// when that changed the name, the exact name as `filename*` in UTF-8
/// (RFC 8187).
fn disposition(kind: &'static str, name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' | '%' => '_',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let mut value = format!("{kind}; filename=\"{fallback}\"");
    if fallback != name {
        value.push_str("; filename*=UTF-8''");
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                value.push(char::from(byte));
            } else {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static(kind))
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
    fn dispositions_carry_any_name_validly() {
        let cases = [
            ("report.txt", "inline; filename=\"report.txt\""),
            ("a b.txt", "inline; filename=\"a b.txt\""),
            (
                "x\r\n\"q\"\\%.txt",
                "inline; filename=\"x___q___.txt\"; filename*=UTF-8''x%0D%0A%22q%22%5C%25.txt",
            ),
            (
                "café 日本.txt",
                "inline; filename=\"caf_ __.txt\"; filename*=UTF-8''caf%C3%A9%20%E6%97%A5%E6%9C%AC.txt",
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(disposition("inline", name), expected, "{name:?}");
        }
    }

    #[test]
    fn only_inert_types_are_shown_inline() {
        for name in ["a.txt", "b.LOG", "c.png", "d.JPG", "e.jpeg", "f.json"] {
            assert!(inline_type(name).is_some(), "{name}");
        }
        for name in [
            "a.html", "b.htm", "c.svg", "d.xml", "e.pdf", "f.js", "g.csv.gz", "txt", "h.",
        ] {
            assert_eq!(inline_type(name), None, "{name}");
        }
    }

    #[test]
    fn the_outermost_root_a_path_lies_in_is_chosen() {
        let roots = [
            PathBuf::from("/srv/a/b"),
            PathBuf::from("/srv/a"),
            PathBuf::from("/other"),
        ];
        assert_eq!(
            beneath_a_root(&roots, Path::new("/srv/a/b/c.txt")),
            Some((PathBuf::from("/srv/a"), PathBuf::from("b/c.txt")))
        );
        assert_eq!(beneath_a_root(&roots, Path::new("/srv/ab/c.txt")), None);
    }

    #[test]
    fn lexical_resolution_cannot_climb_out_by_name() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(lexical(Path::new("/a/../../../etc")), PathBuf::from("/etc"));
        assert!(!lexical(Path::new("/srv/archive/../secret")).starts_with("/srv/archive"));
        assert!(lexical(Path::new("relative/file")).is_absolute());
    }
}

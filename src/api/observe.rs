//! One log line and the HTTP metrics for every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorCause;
use crate::metrics::METRICS;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id kept from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's request id is kept when it is 1 to 128 characters of
/// `A-Z a-z 0-9 . _ -`: enough for UUIDs and tracing ids, and nothing that
/// could bloat or forge log lines.
fn is_usable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops an `x-request-id` the service will not keep (or several), so a
/// fresh one is generated in its place.
pub async fn discard_unusable_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut given = headers.get_all(REQUEST_ID_HEADER).iter();
    let usable = match (given.next(), given.next()) {
        (Some(value), None) => is_usable_request_id(value.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !usable {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

/// The matched route template (a bounded set, safe as a metric label).
pub fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// Known methods keep their name; anything else is `OTHER`, so clients
/// cannot invent label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Routes machines call on a schedule (probes, scrapes) and the static
/// files of the two browser pages. Under an orchestrator they would be most
/// of the log, so a successful answer is logged at DEBUG; an answer of 400
/// or more is logged like any other request.
const ROUTINE_ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/ui/assets/{file}",
    "/docs/{*rest}",
];

/// Whether the request's line goes to DEBUG rather than INFO.
fn is_routine(route: &str, status: u16) -> bool {
    status < 400 && ROUTINE_ROUTES.contains(&route)
}

/// Counts and times the request and logs one line for it. The request id
/// is not a field of that line: the request's span carries it, and every
/// line logged within the request, this one included, shows the span.
pub async fn observe(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = route_of(&request);
    let path = request.uri().path().to_owned();
    METRICS.http_in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    let latency = started.elapsed();
    METRICS.http_in_flight.dec();
    let status = response.status();
    METRICS
        .http_requests
        .with_label_values(&[method, route.as_str(), status.as_str()])
        .inc();
    METRICS
        .http_duration
        .with_label_values(&[method, route.as_str()])
        .observe(latency.as_secs_f64());
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let status = status.as_u16();
    match response.extensions().get::<ErrorCause>() {
        Some(ErrorCause(error)) => tracing::error!(
            method,
            route,
            path,
            status,
            latency_ms,
            error = error.as_str(),
            "request finished"
        ),
        None if is_routine(&route, status) => {
            tracing::debug!(method, route, path, status, latency_ms, "request finished")
        }
        None => tracing::info!(method, route, path, status, latency_ms, "request finished"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_and_plain() {
        for kept in ["a", "trace-me-42", "A.b_c-9", &"x".repeat(128)] {
            assert!(is_usable_request_id(kept.as_bytes()), "{kept}");
        }
        for refused in ["", "has space", "a/b", "<script>", "é", &"x".repeat(129)] {
            assert!(!is_usable_request_id(refused.as_bytes()), "{refused}");
        }
    }

    #[test]
    fn probes_scrapes_and_static_files_are_routine_until_they_fail() {
        for route in [
            "/health",
            "/ready",
            "/metrics",
            "/ui/assets/{file}",
            "/docs/{*rest}",
        ] {
            assert!(is_routine(route, 200), "{route}");
            assert!(is_routine(route, 304), "{route}");
            assert!(!is_routine(route, 405), "{route}");
            assert!(!is_routine(route, 503), "{route}");
        }
        for route in ["/pipelines", "/ui", "/docs/", "/openapi.json", "unmatched"] {
            assert!(!is_routine(route, 200), "{route}");
        }
    }
}

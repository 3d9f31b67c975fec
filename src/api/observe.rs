//! One log line and the HTTP metrics for every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorCause;
use crate::metrics::METRICS;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

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

pub async fn observe(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = route_of(&request);
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
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
            request_id,
            method,
            route,
            path,
            status,
            latency_ms,
            error = error.as_str(),
            "request finished"
        ),
        None => tracing::info!(
            request_id,
            method,
            route,
            path,
            status,
            latency_ms,
            "request finished"
        ),
    }
    response
}

//! The HTTP surface: routes, shared state, error answers and middleware.

pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod pipelines;
pub mod runs;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Request, Response, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use self::error::{detail, ApiError, INTERNAL_ERROR};
use crate::config::CorsPolicy;
use crate::repository::PipelineInfoRepository;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub repository: Arc<dyn PipelineInfoRepository>,
}

/// The complete application: routes, documentation and middleware.
pub fn app(state: AppState, cors: &CorsPolicy) -> Router {
    Router::new()
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .route(
            "/pipelines",
            get(pipelines::list_pipelines).post(pipelines::create_pipeline_run),
        )
        .route("/get_pipeline_info", get(runs::get_pipeline_info))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(not_found)
        .with_state(state)
        .layer(cors_layer(cors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
}

/// Routes a trailing slash is redirected away from, as Starlette does.
const SLASHLESS_ROUTES: &[&str] = &[
    "/health",
    "/pipelines",
    "/get_pipeline_info",
    "/openapi.json",
];

/// 404, except that `/pipelines/` and the like redirect (307) to the route
/// without the slash, so clients written against FastAPI keep working.
async fn not_found(uri: Uri) -> Response<Body> {
    if let Some(route) = uri.path().strip_suffix('/') {
        if SLASHLESS_ROUTES.contains(&route) {
            let target = match uri.query() {
                Some(query) => format!("{route}?{query}"),
                None => route.to_owned(),
            };
            return Redirect::temporary(&target).into_response();
        }
    }
    ApiError::NotFound.into_response()
}

fn request_span(request: &Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        path = %request.uri().path(),
    )
}

fn log_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::error!(status, latency_ms, "request finished");
    } else {
        tracing::info!(status, latency_ms, "request finished");
    }
}

/// A handler panic is a server fault: log it, answer a generic 500.
fn panic_response(cause: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "request handler panicked");
    detail(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
}

fn cors_layer(policy: &CorsPolicy) -> CorsLayer {
    match policy {
        CorsPolicy::AllowAll => CorsLayer::permissive(),
        CorsPolicy::Origins(origins) => {
            let origins: Vec<HeaderValue> = origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods(AllowMethods::mirror_request())
                .allow_headers(AllowHeaders::mirror_request())
                .allow_credentials(true)
        }
    }
}

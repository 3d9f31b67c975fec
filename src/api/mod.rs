//! The HTTP surface: routes, shared state, error answers and middleware.

pub mod archive;
pub mod budget;
pub mod bulk;
pub mod caching;
pub mod compression;
pub mod csv_cells;
pub mod cursor;
pub mod error;
pub mod export;
pub mod extract;
pub mod guard;
pub mod health;
pub mod observe;
pub mod openapi;
pub mod pipelines;
pub mod python_json;
pub mod runs;
pub mod scrape;
pub mod stats;
pub mod ui;

use std::any::Any;
use std::sync::Arc;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderName, HeaderValue, Request, Response, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa_swagger_ui::SwaggerUi;

use self::error::{internal_error, ApiError};
use self::guard::CorsPolicy;
use self::observe::REQUEST_ID_HEADER;
use crate::repository::PipelineInfoRepository;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub repository: Arc<dyn PipelineInfoRepository>,
    pub auth: Arc<guard::ApiKeyCheck>,
    /// Cap on per-pipeline metric label sets.
    pub metrics_max_series: usize,
    pub summary_json: Arc<pipelines::SummaryJsonCache>,
    pub limits: guard::Limits,
    pub stale_factor: f64,
    pub baseline_runs: usize,
    pub validation: Arc<crate::domain::policy::ValidationPolicy>,
    pub archive: Arc<archive::ArchivePolicy>,
    pub metric_flags: Arc<stats::MetricFlags>,
    /// CSV exports prefix cells a spreadsheet would run as formulas.
    pub csv_neutralise_formulas: bool,
    /// Memory for bulk bodies, shared by all requests.
    pub bulk_budget: Arc<budget::BodyBudget>,
    /// The latest `/metrics` rendering, shared by the scrapes of a second.
    pub exposition: Arc<scrape::ExpositionCache>,
}

/// The complete application: routes, documentation and middleware.
pub fn app(state: AppState, cors: &CorsPolicy) -> Router {
    let limits = state.limits;
    let document = openapi::document(&state.validation);
    // The data routes: authenticated, size-limited, time-limited, and shed
    // when too many are in flight. Probes, metrics and docs stay outside so
    // an overloaded service still answers its orchestrator.
    let data = Router::new()
        .route(
            "/pipelines",
            get(pipelines::list_pipelines).post(pipelines::create_pipeline_run),
        )
        .route("/pipelines/stats", get(stats::pipeline_stats))
        .route(
            "/pipelines/archived/{date_code}",
            get(archive::archived_file),
        )
        .route(
            "/pipelines/bulk",
            axum::routing::post(bulk::create_pipeline_runs),
        )
        .route("/get_pipeline_info", get(runs::get_pipeline_info))
        .route(
            "/download/pipeline_info",
            get(export::download_pipeline_info),
        )
        .route_layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .route_layer(axum::Extension(extract::BodyLimit(limits.max_body_bytes)))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(guard::limit_error))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(limits.max_concurrency))
                .layer(TimeoutLayer::new(limits.request_timeout)),
        );
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(data)
        .merge(ui::routes())
        .merge(
            Router::from(
                SwaggerUi::new("/docs")
                    .url("/openapi.json", document)
                    .config(openapi::swagger_config()),
            )
            .layer(middleware::from_fn_with_state(
                Arc::new(caching::DocumentationTags::default()),
                caching::documentation,
            )),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(not_found)
        .with_state(state)
        .layer(compression::layer())
        // What sets no policy of its own (errors, probes, writes, pages of
        // runs, exports) is not kept by any cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static(caching::NO_STORE),
        ))
        .layer(cors_layer(cors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(observe::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::map_request(
            observe::discard_unusable_request_id,
        ))
}

/// Routes a trailing slash is redirected away from, as Starlette does.
const SLASHLESS_ROUTES: &[&str] = &[
    "/health",
    "/pipelines",
    "/pipelines/bulk",
    "/pipelines/stats",
    "/get_pipeline_info",
    "/download/pipeline_info",
    "/openapi.json",
    ui::PAGE_PATH,
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

/// The span every log line of a request belongs to.
fn request_span(request: &Request<Body>) -> Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", request_id)
}

/// A handler panic is a server fault: answer a generic 500, log the cause.
fn panic_response(cause: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    internal_error(format!("handler panicked: {message}"))
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

//! The HTTP surface: routes, middleware (CORS, body limits, tracing, security headers) and the
//! handlers that are not GraphQL.

mod client_ip;
mod files;
mod graphql;
mod health;
mod hf;
mod limits;
mod metrics;
mod multipart;
mod persisted;
mod playground;
mod response_cache;
mod rest;
mod root_fields;
mod socket;
mod tus;
mod upload_plan;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header},
    response::Redirect,
    routing::{get, post},
};
use tower_http::{
    LatencyUnit,
    cors::{AllowOrigin, Any, CorsLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{graphql::AppSchema, state::AppState};
use response_cache::ResponseCache;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The application state.
    pub app: AppState,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// The same, with the limits of introspection documents.
    pub introspection: AppSchema,
    /// Recent answers to catalog reads; `None` when switched off.
    pub cache: Option<Arc<ResponseCache>>,
    /// The queries clients persisted (APQ).
    pub persisted: Arc<persisted::PersistedQueries>,
}

/// Builds the router with every route and middleware.
pub fn router(app: AppState, schema: AppSchema, introspection: AppSchema) -> Router {
    let cors = cors_layer(&app.config.cors_origins);
    let max_upload = app.config.max_upload_bytes;
    let max_request = app.config.max_request_bytes;
    metrics::handle();
    let cache = ResponseCache::new(app.config.response_cache_ttl).map(Arc::new);
    let state = HttpState {
        app,
        schema,
        introspection,
        cache,
        persisted: Arc::default(),
    };
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/playground") }))
        .route("/graphql", get(graphql::handle).post(graphql::handle))
        .route("/playground", get(playground::index))
        .route("/playground/assets/{file}", get(playground::asset))
        .route("/files/{version_id}", get(files::by_version))
        .route("/files/{version_id}/{*path}", get(files::by_file))
        .route("/api/v1/models/{model_id}/download", get(files::by_model))
        .route("/api/v1/models/", get(rest::list).post(rest::create))
        .route("/api/v1/models", get(rest::list).post(rest::create))
        .route("/api/v1/models/{model_id}", get(rest::show))
        .route(
            "/api/v1/models/{model_id}/predict",
            post(rest::predict).layer(axum::extract::DefaultBodyLimit::max(max_request)),
        )
        .route("/api/v1/admin/analytics/dashboard", get(rest::dashboard))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .merge(hf::routes())
        .merge(tus::routes())
        .route_layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            max_upload,
            tus::capabilities,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(axum::middleware::from_fn(assign_request_id))
}

/// `response` with `Connection: close`: for a refusal given before the request's body was
/// read, so that the rest of it is not.
fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request's id, in its extensions and in its answer's `X-Request-Id`.
#[derive(Clone)]
struct RequestId(String);

/// Gives every request an id: in its log lines, in its answer's `X-Request-Id`, and with
/// any internal error it meets (`extensions.requestId`).
async fn assign_request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = uuid::Uuid::now_v7().simple().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = crate::error::with_request_id(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    response
}

/// The span of one request: its id, method and path. The query string is left out because it
/// can carry a signed download token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|RequestId(id)| id.as_str())
        .unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// CORS for browser clients: any origin by default (the API uses bearer tokens, not cookies),
/// or the configured list.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(tower_http::cors::AllowHeaders::list(
            [
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::RANGE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("apollo-require-preflight"),
                HeaderName::from_static("x-apollo-operation-name"),
            ]
            .into_iter()
            .chain(tus::REQUEST_HEADERS),
        ))
        .expose_headers(tower_http::cors::ExposeHeaders::list(
            [
                header::CONTENT_DISPOSITION,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::ETAG,
                header::RETRY_AFTER,
                header::LINK,
                HeaderName::from_static("x-request-id"),
                // The Hugging Face protocol's.
                HeaderName::from_static("x-repo-commit"),
                HeaderName::from_static("x-linked-etag"),
                HeaderName::from_static("x-linked-size"),
                HeaderName::from_static("x-error-code"),
                HeaderName::from_static("x-error-message"),
            ]
            .into_iter()
            .chain(tus::ANSWER_HEADERS),
        ))
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

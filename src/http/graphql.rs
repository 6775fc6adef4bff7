//! `GET|POST /graphql`: authenticates the caller once, parses the request (JSON, query string,
//! or a multipart upload), and executes it.

use async_graphql::{BatchRequest, BatchResponse, ParseRequestError, ServerError};
use async_graphql_axum::GraphQLBatchRequest;
use bytes::Bytes;
use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::Limited;

use async_graphql::ErrorExtensions;

use super::{
    HttpState, client_ip, limits,
    response_cache::{Answer, ResponseCache},
    socket,
};
use crate::{
    auth::Viewer,
    error::AppError,
    graphql::AppSchema,
    graphql::{ClientIp, Loaders},
    services::{access, accounts},
};

/// The bearer token of a request, if it has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Handles one GraphQL request (or batch).
pub async fn handle(State(state): State<HttpState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let viewer = match accounts::authenticate(&state.app, bearer_token(request.headers())).await {
        Ok(viewer) => viewer,
        Err(err) => return error_response(err.code().status(), err.into()),
    };
    let client = ClientIp(client_ip::resolve(
        peer,
        request.headers(),
        &state.app.config.trusted_proxies,
    ));
    if socket::is_upgrade(request.headers()) {
        return socket::upgrade(state, request, client).await;
    }
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    if is_multipart {
        // An upload the caller may not make is refused before a byte of its files is read,
        // and the connection closed rather than the rest of the body read.
        return match super::multipart::read(&state.app, &state.persisted, &viewer, request).await {
            Ok((batch, files)) => {
                let response = execute(
                    &state,
                    batch.data(files.clone()).data(client),
                    viewer,
                    false,
                )
                .await;
                files.discard_all(&state.app.blobs).await;
                response
            }
            // A persisted query's miss was read to its end; the client asks again.
            Err(err @ AppError::PersistedQueryNotFound) => {
                error_response(err.code().status(), err.into())
            }
            Err(err) => super::closing(error_response(err.code().status(), err.into())),
        };
    }
    let limit = state.app.config.max_request_bytes;
    let is_get = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !is_get && !is_json(request.headers()) {
        return refusal_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST a GraphQL request as application/json (or multipart/form-data with files)",
        );
    }
    let (parts, body) = request.into_parts();
    let limited = Request::from_parts(parts, Body::new(Limited::new(body, limit)));
    let batch = match GraphQLBatchRequest::<Rejection>::from_request(limited, &()).await {
        Ok(batch) => batch.into_inner(),
        Err(rejection) => return rejection.respond(limit as u64),
    };
    execute(&state, batch.data(client), viewer, is_get).await
}

async fn execute(
    state: &HttpState,
    mut batch: BatchRequest,
    viewer: Viewer,
    is_get: bool,
) -> Response {
    if let Err(err) = state.persisted.resolve(&mut batch) {
        return error_response(err.code().status(), err.into());
    }
    // A catalog read answered recently for this viewer is answered again as it was. Only
    // answers to requests that passed the limits below are ever stored, so a hit skips them.
    let cached = match (&state.cache, &batch) {
        (Some(cache), BatchRequest::Single(request)) => {
            let key = ResponseCache::key(&viewer, request, state.app.changes.current());
            if let Some(answer) = cache.get(&key).await {
                return answer.into_response();
            }
            Some((cache, key))
        }
        _ => None,
    };
    let shape = match limits::check(&mut batch, is_get) {
        Ok(shape) => shape,
        Err(refusal) => {
            return refusal_response(StatusCode::BAD_REQUEST, refusal.code, refusal.message);
        }
    };
    // Every mutation's credential requirement, from the one table, before anything runs.
    for mutation in &shape.mutations {
        if let Err(err) = access::ensure_may_call(&viewer, mutation) {
            return error_response(err.code().status(), err.into());
        }
    }
    let schema = if shape.introspection {
        &state.introspection
    } else {
        &state.schema
    };
    match cached.filter(|_| shape.catalog_read) {
        // Concurrent misses of one key wait for a single execution.
        Some((cache, key)) => cache
            .get_or_compute(key, run(state, schema, batch, viewer))
            .await
            .into_response(),
        None => run(state, schema, batch, viewer).await.into_response(),
    }
}

/// Executes a request that passed the limits.
async fn run(state: &HttpState, schema: &AppSchema, batch: BatchRequest, viewer: Viewer) -> Answer {
    let loaders = std::sync::Arc::new(Loaders::new(&state.app, &viewer));
    let batch = batch.data(viewer).data(loaders);
    let mut response = schema.execute_batch(batch).await;
    let shareable = matches!(&response, BatchResponse::Single(single) if single.is_ok());
    limits::add_missing_codes(&mut response);
    let body = match serde_json::to_vec(&response) {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a GraphQL response");
            return Answer::internal();
        }
    };
    Answer {
        status: limits::status(&response),
        retry_after: limits::retry_after(&response),
        body,
        shareable,
    }
}

/// Whether the body is declared as JSON (`application/json`, or any `+json` type).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

/// A request refused before execution, with its own code.
fn refusal_response(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    let error =
        async_graphql::Error::new(message.into()).extend_with(|_, ext| ext.set("code", code));
    error_response(status, error)
}

/// A GraphQL-shaped error answer with no data.
pub fn error_response(status: StatusCode, error: async_graphql::Error) -> Response {
    let retry_after = error
        .extensions
        .as_ref()
        .and_then(|e| e.get("retryAfter"))
        .and_then(|v| match v {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        });
    let server_error: ServerError = error.into_server_error(async_graphql::Pos::default());
    let body = serde_json::json!({ "errors": [server_error] });
    Answer {
        status,
        retry_after,
        body: Bytes::from(body.to_string()),
        shareable: false,
    }
    .into_response()
}

/// A request that could not be parsed: answered as GraphQL errors with a code.
pub struct Rejection(ParseRequestError);

impl From<ParseRequestError> for Rejection {
    fn from(err: ParseRequestError) -> Self {
        Self(err)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.respond(0)
    }
}

impl Rejection {
    /// The error answer; `limit` is the body limit that applied.
    fn respond(self, limit: u64) -> Response {
        let too_large = match &self.0 {
            ParseRequestError::PayloadTooLarge => true,
            ParseRequestError::Io(e) => e.to_string().contains("length limit exceeded"),
            _ => false,
        };
        let err = if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                AppError::PayloadTooLarge { limit },
            )
        } else {
            let message = match &self.0 {
                ParseRequestError::InvalidRequest(e) => format!("invalid GraphQL request: {e}"),
                ParseRequestError::UnsupportedBatch => "batch requests are not supported".into(),
                other => format!("invalid GraphQL request: {other}"),
            };
            (
                StatusCode::BAD_REQUEST,
                AppError::bad_input("body", message),
            )
        };
        error_response(err.0, err.1.into())
    }
}

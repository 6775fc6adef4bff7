//! `GET /graphql` with `Upgrade: websocket`: GraphQL subscriptions over `graphql-transport-ws`
//! (Apollo Client, `graphql-ws`) or the older `graphql-ws` protocol. The caller is
//! authenticated from the connection's init payload (`authorization`, `Authorization`,
//! `authToken` or `token`, with or without `Bearer `, or `headers.authorization`), or from the
//! upgrade request's `Authorization` header, by the same policy as HTTP requests. Only
//! subscriptions run over the socket: queries and mutations go over HTTP, where their limits
//! and rules are checked.

use std::sync::Arc;

use async_graphql::{
    Data, Executor, Request, Response, ServerError,
    futures_util::stream::{self, BoxStream, StreamExt},
    http::ALL_WEBSOCKET_PROTOCOLS,
    parser::types::{DocumentOperations, OperationType},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    extract::{FromRequestParts, WebSocketUpgrade},
    response::{IntoResponse, Response as HttpResponse},
};
use serde_json::Value;

use super::{HttpState, graphql::bearer_token};
use crate::{
    graphql::{AppSchema, ClientIp, EventLoaders, SocketCredential},
    services::{access, accounts},
    state::AppState,
};

/// Whether the request asks to become a WebSocket.
pub fn is_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upgrades the request and serves subscriptions on the socket.
pub async fn upgrade(
    state: HttpState,
    request: axum::extract::Request,
    client: ClientIp,
) -> HttpResponse {
    let header_token = bearer_token(request.headers()).map(str::to_owned);
    let (mut parts, _) = request.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(status) => return status.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let app = state.app.clone();
    let executor = SubscriptionsOnly(state.schema.clone());
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, executor, protocol)
                .on_connection_init(move |payload| connect(app, payload, header_token, client))
                .serve()
        })
        .into_response()
}

/// Authenticates a connection from its init payload; its data is what its subscriptions see.
async fn connect(
    app: AppState,
    payload: Value,
    header_token: Option<String>,
    client: ClientIp,
) -> async_graphql::Result<Data> {
    let token = token_in(&payload).or(header_token);
    let viewer = accounts::authenticate(&app, token.as_deref()).await?;
    access::ensure_may_read(&viewer)?;
    let mut data = Data::default();
    data.insert(viewer);
    data.insert(SocketCredential { token });
    data.insert(Arc::new(EventLoaders::default()));
    data.insert(client);
    Ok(data)
}

/// The bearer token of an init payload, wherever the common clients put it.
fn token_in(payload: &Value) -> Option<String> {
    let keys = ["authorization", "Authorization", "authToken", "token"];
    let raw = keys
        .iter()
        .find_map(|key| payload.get(key))
        .or_else(|| {
            let headers = payload.get("headers")?;
            headers
                .get("authorization")
                .or_else(|| headers.get("Authorization"))
        })?
        .as_str()?
        .trim();
    let token = match raw.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => raw,
    };
    (!token.is_empty()).then(|| token.to_owned())
}

/// The schema, running subscriptions only.
#[derive(Clone)]
struct SubscriptionsOnly(AppSchema);

impl Executor for SubscriptionsOnly {
    async fn execute(&self, _request: Request) -> Response {
        refusal()
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let name = request.operation_name.clone();
        let is_subscription = request.parsed_query().is_ok_and(|document| {
            let operation = match (&document.operations, name.as_deref()) {
                (DocumentOperations::Single(op), _) => Some(op),
                (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
                (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
                _ => None,
            };
            operation.is_some_and(|op| op.node.ty == OperationType::Subscription)
        });
        if !is_subscription && request.parsed_query().is_ok() {
            return stream::once(async { refusal() }).boxed();
        }
        // A document that does not parse gets the executor's own syntax error.
        Executor::execute_stream(&self.0, request, session_data)
    }
}

/// The answer to a query or mutation sent over the socket.
fn refusal() -> Response {
    let mut error = ServerError::new(
        "only subscriptions run over WebSocket; send queries and mutations over HTTP",
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "OPERATION_NOT_SUPPORTED");
    Response::from_errors(vec![error])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_where_clients_put_them() {
        for payload in [
            serde_json::json!({ "authorization": "Bearer abc" }),
            serde_json::json!({ "Authorization": "bearer abc" }),
            serde_json::json!({ "authToken": "abc" }),
            serde_json::json!({ "token": " abc " }),
            serde_json::json!({ "headers": { "Authorization": "Bearer abc" } }),
        ] {
            assert_eq!(token_in(&payload).as_deref(), Some("abc"), "{payload}");
        }
        for payload in [
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!({ "token": "" }),
            serde_json::json!({ "token": 5 }),
        ] {
            assert_eq!(token_in(&payload), None, "{payload}");
        }
    }
}

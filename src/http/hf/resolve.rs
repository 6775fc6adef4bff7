//! `HEAD`/`GET /{owner}/{name}/resolve/{revision}/{path}`: one file of a revision, with what
//! the client needs to cache it (`X-Repo-Commit`, the file's SHA-256 as `ETag` and
//! `X-Linked-Etag`, `X-Linked-Size`), served like `/files/{versionId}/{path}` (Range, counting,
//! the inspection gate, which refuses a held file's bytes). A `HEAD` reads the database only.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{HubError, X_REPO_COMMIT};
use crate::{
    http::{
        HttpState, client_ip,
        files::{Served, serve},
        graphql::bearer_token,
    },
    services::{
        accounts,
        downloads::{self, AcceptRisk},
        hub,
    },
};

#[derive(Debug, Deserialize)]
pub struct ResolveParams {
    /// Download a held file anyway (its owner or an administrator).
    #[serde(default, rename = "acceptRisk")]
    accept_risk: bool,
}

/// `HEAD`/`GET /{owner}/{name}/resolve/{revision}/{path}`.
pub async fn file(
    State(state): State<HttpState>,
    Path((owner, name, revision, path)): Path<(String, String, String, String)>,
    Query(params): Query<ResolveParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let client = client_ip::resolve(Some(peer.ip()), &headers, &state.app.config.trusted_proxies);
    let result: Result<Response, HubError> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let model = hub::repository(&state.app, &viewer, &owner, &name).await?;
        let version = hub::revision(&state.app, &model, &revision).await?;
        let commit = version.commit_id.clone();
        let at = |e| HubError::at(e, &commit);
        // Found just now, by the same policy: not read again.
        let grant = downloads::grant_found(&viewer, model, version).map_err(at)?;
        let file = downloads::file_of(&state.app, &grant, &path)
            .await
            .map_err(at)?;
        // A HEAD sends no bytes: it tells a held file's size and hash (as GraphQL does), so
        // that the client's GET meets the refusal and shows its reason.
        if method != Method::HEAD {
            downloads::ensure_file_risk_accepted(
                &state.app,
                &grant,
                &file,
                AcceptRisk(params.accept_risk),
            )
            .map_err(at)?;
        }
        let served = Served::file(&file).map_err(at)?;
        let mut response = serve(&state, &grant, served, &method, &headers, client)
            .await
            .map_err(at)?;
        let out = response.headers_mut();
        for (name, value) in [
            (X_REPO_COMMIT, commit.clone()),
            (
                HeaderName::from_static("x-linked-etag"),
                format!("\"{}\"", file.sha256),
            ),
            (
                HeaderName::from_static("x-linked-size"),
                file.size_bytes.to_string(),
            ),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.insert(name, value);
            }
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

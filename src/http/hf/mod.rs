//! The Hugging Face Hub protocol, the part its clients (`huggingface_hub`, `transformers`, the
//! `hf` CLI) call with `HF_ENDPOINT` set to this server: file downloads by repository,
//! revision and path, repository metadata and listings, and uploads (repositories, commits and
//! the Git LFS transfer; not Xet). Errors take the protocol's form:
//! `X-Error-Code` and `X-Error-Message` headers and a JSON `{"error": …}` body, with
//! `X-Repo-Commit` once the revision is known. Datasets and spaces are not served: every
//! path of theirs answers `RepoNotFound`.

mod lfs;
mod repo;
mod resolve;
mod upload;

use axum::{
    Json, Router,
    http::{HeaderName, HeaderValue},
    response::{IntoResponse, Response},
    routing::{any, get, post, put},
};

use super::HttpState;
use crate::{
    auth::Viewer,
    error::AppError,
    services::{
        access::{self, ModelEdit},
        hub,
    },
};

/// The protocol's routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/{owner}/{name}/resolve/{revision}/{*path}",
            get(resolve::file).head(resolve::file),
        )
        .route("/api/models/{owner}/{name}", get(repo::info))
        .route(
            "/api/models/{owner}/{name}/revision/{revision}",
            get(repo::info_at),
        )
        .route(
            "/api/models/{owner}/{name}/tree/{revision}",
            get(repo::tree),
        )
        .route(
            "/api/models/{owner}/{name}/tree/{revision}/{*path}",
            get(repo::tree_under),
        )
        .route("/api/models", get(repo::list))
        .route(
            "/api/models/{owner}/{name}/paths-info/{revision}",
            post(repo::paths_info),
        )
        .route("/api/models/{owner}/{name}/refs", get(repo::refs))
        .route(
            "/api/models/{owner}/{name}/commits/{revision}",
            get(repo::commits),
        )
        .route("/api/whoami-v2", get(repo::whoami))
        .route("/api/repos/create", post(upload::create_repo))
        .route("/api/validate-yaml", post(upload::validate_card))
        .route(
            "/api/models/{owner}/{name}/preupload/{revision}",
            post(upload::preupload),
        )
        .route(
            "/api/models/{owner}/{name}/commit/{revision}",
            post(upload::commit),
        )
        .route("/{owner}/{name}/info/lfs/objects/batch", post(lfs::batch))
        .route(
            "/{owner}/{name}/info/lfs/objects/{oid}",
            put(lfs::put_whole).post(lfs::complete),
        )
        .route(
            "/{owner}/{name}/info/lfs/objects/{oid}/{part}",
            put(lfs::put_part),
        )
        .route("/{owner}/{name}/info/lfs/verify", post(lfs::verify))
        .route("/api/datasets/{*rest}", any(not_a_model_repository))
        .route("/api/spaces/{*rest}", any(not_a_model_repository))
        .route("/datasets/{*rest}", any(not_a_model_repository))
        .route("/spaces/{*rest}", any(not_a_model_repository))
}

/// The address of repository `login/slug`.
fn repo_url(state: &HttpState, login: &str, slug: &str) -> String {
    let mut url = state.app.config.public_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.clear().extend([login, slug]);
    }
    url.to_string()
}

/// The repository `owner/name` and the right to change it (with its owner's login).
async fn repository_for_edit<'v>(
    state: &HttpState,
    viewer: &'v Viewer,
    owner: &str,
    name: &str,
) -> Result<(ModelEdit<'v>, String), HubError> {
    let (model, login) = hub::repository_and_owner(&state.app, viewer, owner, name).await?;
    Ok((access::edit(viewer, Some(model))?, login))
}

/// Datasets and spaces: not served, so answered as repositories that do not exist.
async fn not_a_model_repository() -> HubError {
    HubError::from(AppError::NotFound(hub::REPOSITORY))
}

const X_REPO_COMMIT: HeaderName = HeaderName::from_static("x-repo-commit");
const X_ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
const X_ERROR_MESSAGE: HeaderName = HeaderName::from_static("x-error-message");

/// An error in the protocol's form; `commit` is the revision's commit id once known (the
/// client caches a missing file under it).
pub(super) struct HubError {
    error: AppError,
    commit: Option<String>,
}

impl From<AppError> for HubError {
    fn from(error: AppError) -> Self {
        Self {
            error,
            commit: None,
        }
    }
}

impl HubError {
    fn at(error: AppError, commit: &str) -> Self {
        Self {
            error,
            commit: Some(commit.to_owned()),
        }
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let code = match &self.error {
            AppError::NotFound(hub::REPOSITORY) | AppError::NotFound("model") => {
                Some("RepoNotFound")
            }
            AppError::NotFound(hub::REVISION) | AppError::NotFound("model version") => {
                Some("RevisionNotFound")
            }
            AppError::NotFound(_) => Some("EntryNotFound"),
            _ => None,
        };
        let mut message = self.error.message();
        if let Some(id) = self.error.log() {
            message = format!("{message} (request {id})");
        }
        let status = self.error.code().status();
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        let headers = response.headers_mut();
        if let Some(code) = code {
            headers.insert(X_ERROR_CODE, HeaderValue::from_static(code));
        }
        // Header values are visible ASCII: anything else in a message becomes `?`.
        let printable: String = message
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&printable) {
            headers.insert(X_ERROR_MESSAGE, value);
        }
        if let Some(commit) = self.commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(X_REPO_COMMIT, commit);
        }
        response
    }
}

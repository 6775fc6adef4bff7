//! Repository metadata and listings: `GET /api/models/{owner}/{name}` (and at a revision),
//! `GET …/tree/{revision}[/{path}]`, `POST …/paths-info/{revision}`, `GET …/refs`, `GET …/commits/{revision}`, `GET
//! /api/models` and `GET /api/whoami-v2`.

use std::collections::BTreeSet;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HubError;
use crate::{
    auth::{Credential, Scope},
    entities::{model, model_version, version_file},
    error::{AppError, AuthFailure},
    http::{HttpState, graphql::bearer_token},
    services::{
        access, accounts, hub,
        models::{self, ModelFilter, ModelSortField, SortDirection},
        pagination::Cursor,
    },
};

/// The size of the pointer file Git LFS would keep in place of a file.
const POINTER_SIZE: u64 = 134;
/// Most tree entries in one answer; the rest follow `Link: <…>; rel="next"`.
const TREE_PAGE: usize = 1000;

type HubResult<T> = Result<T, HubError>;

/// A repository and one of its revisions, as the caller may see them.
async fn lookup(
    state: &HttpState,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
    revision: &str,
) -> HubResult<(model::Model, model_version::Model, String)> {
    let viewer = accounts::authenticate(&state.app, bearer_token(headers)).await?;
    let (model, login) = hub::repository_and_owner(&state.app, &viewer, owner, name).await?;
    let version = hub::revision(&state.app, &model, revision).await?;
    Ok((model, version, login))
}

fn lfs(file: &version_file::Model) -> Value {
    json!({ "sha256": file.sha256, "oid": file.sha256, "size": file.size_bytes, "pointerSize": POINTER_SIZE })
}

/// What `model_info` reads.
fn info_json(
    owner: &str,
    model: &model::Model,
    version: &model_version::Model,
    files: &[version_file::Model],
) -> Value {
    let card = version.metadata.get("card").cloned().unwrap_or(Value::Null);
    let report = version.inspection.as_ref();
    let parameters = report
        .and_then(|r| r.get("parameter_count"))
        .and_then(Value::as_u64);
    let dtypes: Vec<&str> = report
        .and_then(|r| r.get("dtypes"))
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let safetensors = files
        .iter()
        .any(|f| f.path.ends_with(".safetensors"))
        .then(|| {
            let total = parameters.unwrap_or(0);
            // Counts by dtype are known only when there is one dtype.
            let by_dtype = match dtypes.as_slice() {
                [one] => json!({ *one: total }),
                _ => json!({}),
            };
            json!({ "parameters": by_dtype, "total": total })
        });
    json!({
        "_id": model.id,
        "id": format!("{owner}/{}", model.slug),
        "modelId": format!("{owner}/{}", model.slug),
        "author": owner,
        "sha": version.commit_id,
        "lastModified": version.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "createdAt": model.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "private": !access::is_public(model),
        "gated": false,
        "disabled": version.withdrawn_at.is_some(),
        "downloads": model.downloads,
        "likes": 0,
        "tags": model.tags,
        "pipeline_tag": model.task_type,
        "library_name": card.get("library_name").cloned().unwrap_or_else(|| json!(model.framework)),
        "cardData": card,
        "siblings": files
            .iter()
            .map(|f| json!({ "rfilename": f.path, "size": f.size_bytes, "lfs": lfs(f) }))
            .collect::<Vec<_>>(),
        "safetensors": safetensors,
        "gguf": gguf_json(files),
    })
}

/// What `model_info` shows of a GGUF model: its largest `.gguf` file's parameter count,
/// architecture, context length and chat template, as its inspection read them.
fn gguf_json(files: &[version_file::Model]) -> Option<Value> {
    let file = files
        .iter()
        .filter(|f| f.path.ends_with(".gguf"))
        .max_by_key(|f| f.size_bytes)?;
    let report = file.inspection.as_ref()?;
    let meta = report.get("metadata")?;
    let mut gguf = json!({
        "total": report.get("parameter_count").cloned().unwrap_or(Value::Null),
        "architecture": meta.get("architecture").cloned().unwrap_or(Value::Null),
        "context_length": meta.get("context_length").cloned().unwrap_or(Value::Null),
    });
    let kv = meta.get("kv");
    for (key, name) in [
        ("tokenizer.chat_template", "chat_template"),
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(value) = kv.and_then(|kv| kv.get(key)) {
            gguf[name] = value.clone();
        }
    }
    Some(gguf)
}

async fn info_of(
    state: &HttpState,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
    revision: &str,
) -> HubResult<Response> {
    let (model, version, owner) = lookup(state, headers, owner, name, revision).await?;
    let files = hub::files(&state.app.db, version.id).await?;
    Ok(Json(info_json(&owner, &model, &version, &files)).into_response())
}

/// `GET /api/models/{owner}/{name}`: the repository at `main`.
pub async fn info(
    State(state): State<HttpState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    info_of(&state, &headers, &owner, &name, "main")
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/models/{owner}/{name}/revision/{revision}`.
pub async fn info_at(
    State(state): State<HttpState>,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    info_of(&state, &headers, &owner, &name, &revision)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct TreeParams {
    #[serde(default)]
    recursive: Option<String>,
    /// Where the previous page ended (an entry's index).
    #[serde(default)]
    cursor: Option<usize>,
}

/// A folder's id: stable for a commit and path.
fn folder_oid(commit: &str, path: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::auth::api_token::hex(&Sha256::digest(format!("tree\n{commit}\n{path}\n")))[..40]
        .to_owned()
}

/// The entries under `folder` (`""` for the root): files and folders, only direct children
/// unless `recursive`, sorted by path.
fn tree_entries(
    commit: &str,
    files: &[version_file::Model],
    folder: &str,
    recursive: bool,
) -> Vec<Value> {
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let mut folders = BTreeSet::new();
    let mut entries: Vec<(String, Value)> = Vec::new();
    for file in files.iter().filter(|f| f.path.starts_with(&prefix)) {
        let rest = &file.path[prefix.len()..];
        // The folders on the way to the file: only the first one unless recursive.
        let ends = rest.match_indices('/').map(|(i, _)| i);
        for end in ends.take(if recursive { usize::MAX } else { 1 }) {
            folders.insert(format!("{prefix}{}", &rest[..end]));
        }
        if recursive || !rest.contains('/') {
            entries.push((
                file.path.clone(),
                json!({ "type": "file", "oid": file.sha256, "size": file.size_bytes, "path": file.path, "lfs": lfs(file) }),
            ));
        }
    }
    entries.extend(folders.into_iter().map(|path| {
        let entry = json!({ "type": "directory", "oid": folder_oid(commit, &path), "size": 0, "path": path });
        (path, entry)
    }));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, entry)| entry).collect()
}

async fn tree_of(
    state: &HttpState,
    headers: &HeaderMap,
    (owner, name, revision): (String, String, String),
    folder: &str,
    params: &TreeParams,
) -> HubResult<Response> {
    let (_, version, _) = lookup(state, headers, &owner, &name, &revision).await?;
    let commit = version.commit_id.clone();
    let files = hub::files(&state.app.db, version.id).await?;
    let folder = folder.trim_matches('/');
    let recursive = params
        .recursive
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("true") || r == "1");
    let entries = tree_entries(&commit, &files, folder, recursive);
    if !folder.is_empty() && entries.is_empty() {
        return Err(HubError::at(AppError::NotFound("path"), &commit));
    }
    let start = params.cursor.unwrap_or(0).min(entries.len());
    let end = (start + TREE_PAGE).min(entries.len());
    let mut response = Json(&entries[start..end]).into_response();
    if end < entries.len() {
        let mut next = state.app.config.public_url.clone();
        if let Ok(mut segments) = next.path_segments_mut() {
            segments
                .clear()
                .extend(["api", "models", &owner, &name, "tree", &revision])
                .extend(folder.split('/').filter(|s| !s.is_empty()));
        }
        next.query_pairs_mut()
            .append_pair("recursive", if recursive { "true" } else { "false" })
            .append_pair("cursor", &end.to_string());
        if let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(response)
}

/// `GET /api/models/{owner}/{name}/tree/{revision}`.
pub async fn tree(
    State(state): State<HttpState>,
    Path(repo): Path<(String, String, String)>,
    Query(params): Query<TreeParams>,
    headers: HeaderMap,
) -> Response {
    tree_of(&state, &headers, repo, "", &params)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/models/{owner}/{name}/tree/{revision}/{path}`.
pub async fn tree_under(
    State(state): State<HttpState>,
    Path((owner, name, revision, path)): Path<(String, String, String, String)>,
    Query(params): Query<TreeParams>,
    headers: HeaderMap,
) -> Response {
    tree_of(&state, &headers, (owner, name, revision), &path, &params)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/whoami-v2`: the caller's account.
pub async fn whoami(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let result: HubResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let auth = viewer
            .authenticated()
            .ok_or(AppError::Unauthenticated(AuthFailure::Missing))?;
        let role = if auth.scopes.contains(Scope::Write) {
            "write"
        } else {
            "read"
        };
        let kind = match auth.credential {
            Credential::ApiToken(_) => "access_token",
            Credential::Session(_) => "session",
        };
        Ok(Json(json!({
            "type": "user",
            "id": auth.user.id,
            "name": auth.user.username,
            "fullname": auth.user.username,
            "email": auth.user.email,
            "isPro": false,
            "orgs": [],
            "auth": { "type": kind, "accessToken": { "role": role } },
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/models/{owner}/{name}/refs`: `main` and a tag per version.
pub async fn refs(
    State(state): State<HttpState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result: HubResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let model = hub::repository(&state.app, &viewer, &owner, &name).await?;
        let history = hub::history(&state.app, &model).await?;
        let current = history
            .iter()
            .find(|(v, _)| Some(v.id) == model.current_version_id);
        let branches: Vec<Value> = current
            .map(|(v, _)| json!({ "name": "main", "ref": "refs/heads/main", "targetCommit": v.commit_id }))
            .into_iter()
            .collect();
        let tags: Vec<Value> = history
            .iter()
            .map(|(v, _)| json!({ "name": v.version, "ref": format!("refs/tags/{}", v.version), "targetCommit": v.commit_id }))
            .collect();
        Ok(Json(json!({ "branches": branches, "converts": [], "tags": tags, "pullRequests": [] }))
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/models/{owner}/{name}/commits/{revision}`: the versions up to the revision's,
/// newest first, as commits (title: the version; message: its changelog).
pub async fn commits(
    State(state): State<HttpState>,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let result: HubResult<Response> = async {
        let (model, version, _) = lookup(&state, &headers, &owner, &name, &revision).await?;
        let history = hub::history(&state.app, &model).await?;
        let commits: Vec<Value> = history
            .iter()
            .skip_while(|(v, _)| v.id != version.id)
            .map(|(v, login)| {
                json!({
                    "id": v.commit_id,
                    "title": v.version,
                    "message": v.changelog.clone().unwrap_or_default(),
                    "authors": [{ "user": login }],
                    "date": v.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                })
            })
            .collect();
        Ok(Json(commits).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    author: Option<String>,
    search: Option<String>,
    sort: Option<String>,
    /// `1` for ascending; descending otherwise.
    direction: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Most models in one page of `GET /api/models`; the rest follow `Link: <…>; rel="next"`.
const MODELS_PAGE: usize = 100;

/// `GET /api/models?author=&search=&sort=&direction=&limit=`: the models the caller may see,
/// as `list_models` reads them.
pub async fn list(
    State(state): State<HttpState>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Response {
    let result: HubResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let field = match params.sort.as_deref() {
            None | Some("downloads") => ModelSortField::Downloads,
            Some("lastModified") => ModelSortField::UpdatedAt,
            Some("createdAt") => ModelSortField::CreatedAt,
            Some("id") => ModelSortField::Name,
            Some(other) => {
                return Err(AppError::bad_input(
                    "sort",
                    format!("`{other}` is not a sort (downloads, lastModified, createdAt, id)"),
                )
                .into());
            }
        };
        let direction = match params.direction.as_deref() {
            Some("1") => SortDirection::Asc,
            _ => SortDirection::Desc,
        };
        let filter = ModelFilter {
            search: params.search.clone(),
            owner: params.author.clone(),
            ..ModelFilter::default()
        };
        let size = params.limit.unwrap_or(MODELS_PAGE).clamp(1, MODELS_PAGE);
        let after = params
            .cursor
            .as_deref()
            .map(|c| Cursor::decode("cursor", c))
            .transpose()?;
        let page = models::list(&state.app, &viewer, &filter, (field, direction), size, after, false)
            .await?;
        let owners = hub::logins(&state.app, page.items.iter().map(|(_, m)| m.owner_id)).await?;
        let commits =
            hub::commit_ids(&state.app, page.items.iter().filter_map(|(_, m)| m.current_version_id))
                .await?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|(_, m)| {
                let owner = owners.get(&m.owner_id).map_or("", String::as_str);
                json!({
                    "_id": m.id,
                    "id": format!("{owner}/{}", m.slug),
                    "modelId": format!("{owner}/{}", m.slug),
                    "author": owner,
                    "sha": m.current_version_id.and_then(|v| commits.get(&v)),
                    "lastModified": m.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "createdAt": m.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "private": !access::is_public(m),
                    "gated": false,
                    "downloads": m.downloads,
                    "likes": 0,
                    "tags": m.tags,
                    "pipeline_tag": m.task_type,
                    "library_name": m.framework,
                })
            })
            .collect();
        let mut response = Json(items).into_response();
        // The client follows the link until it has `limit` models.
        if page.has_next
            && let Some((cursor, _)) = page.items.last()
        {
            let mut next = state.app.config.public_url.clone();
            next.set_path("/api/models");
            {
                let mut query = next.query_pairs_mut();
                for (key, value) in [
                    ("author", &params.author),
                    ("search", &params.search),
                    ("sort", &params.sort),
                    ("direction", &params.direction),
                ] {
                    if let Some(value) = value {
                        query.append_pair(key, value);
                    }
                }
                if let Some(limit) = params.limit {
                    query.append_pair("limit", &limit.to_string());
                }
                query.append_pair("cursor", &cursor.encode());
            }
            if let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
                response.headers_mut().insert(header::LINK, link);
            }
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/models/{owner}/{name}/paths-info/{revision}` (form `paths=…`, repeated): the
/// tree entries of those paths; paths the revision lacks are left out.
pub async fn paths_info(
    State(state): State<HttpState>,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result: HubResult<Response> = async {
        let (_, version, _) = lookup(&state, &headers, &owner, &name, &revision).await?;
        let asked: BTreeSet<String> = url::form_urlencoded::parse(&body)
            .filter(|(key, _)| key == "paths" || key == "paths[]")
            .map(|(_, path)| path.trim_matches('/').to_owned())
            .collect();
        let files = hub::files(&state.app.db, version.id).await?;
        let entries: Vec<Value> = tree_entries(&version.commit_id, &files, "", true)
            .into_iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| asked.contains(p)))
            .collect();
        Ok(Json(entries).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> version_file::Model {
        version_file::Model {
            id: uuid::Uuid::nil(),
            version_id: uuid::Uuid::nil(),
            path: path.into(),
            path_key: path.to_lowercase(),
            format: crate::entities::enums::ModelFormat::Other,
            size_bytes: 1,
            sha256: "0".repeat(64),
            inspection_status: crate::entities::enums::InspectionStatus::Safe,
            inspection: None,
            inspection_rules: None,
            created_at: chrono::Utc::now(),
        }
    }

    fn listed(entries: &[Value]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn trees_list_children_or_everything_under_a_folder() {
        let files = [
            file("a/b/c.json"),
            file("a/d.json"),
            file("e.json"),
            file("ab.json"),
        ];
        assert_eq!(
            listed(&tree_entries("c", &files, "", false)),
            ["directory a", "file ab.json", "file e.json"]
        );
        assert_eq!(
            listed(&tree_entries("c", &files, "", true)),
            [
                "directory a",
                "directory a/b",
                "file a/b/c.json",
                "file a/d.json",
                "file ab.json",
                "file e.json"
            ]
        );
        assert_eq!(
            listed(&tree_entries("c", &files, "a", false)),
            ["directory a/b", "file a/d.json"]
        );
        assert!(tree_entries("c", &files, "a/b/c.json", false).is_empty());
    }
}

//! Writes: `POST /api/repos/create`, `POST /api/models/{owner}/{name}/preupload/{revision}`
//! and `POST /api/models/{owner}/{name}/commit/{revision}` (NDJSON: a `header` line, then
//! `file`, `lfsFile`, `deletedFile` and `deletedFolder` lines). Inline files are decoded and
//! staged line by line, so a commit's memory is one line at most. See
//! [`crate::services::hub_commits`].

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HubError, repo_url, repository_for_edit};
use crate::{
    domain::file_path::FilePath,
    error::{AppError, AppResult},
    graphql::UploadedFile,
    http::{HttpState, graphql::bearer_token},
    services::{
        accounts,
        hub_commits::{self, Commit, Content, Operation},
        version_facts,
    },
};

/// The longest line of a commit: an inline file of up to about 12 MiB, base64-encoded.
/// Larger files go through the LFS transfer (preupload says so for every file with content).
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct CreateRepo {
    name: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// `POST /api/repos/create` (`{name, organization?, type?}`): an empty private model.
pub async fn create_repo(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<Response, HubError> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let request: CreateRepo = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_input("body", format!("not a repository: {e}")))?;
        if request.kind.as_deref().is_some_and(|k| k != "model") {
            return Err(
                AppError::bad_input("type", "only model repositories are served here").into(),
            );
        }
        let login = viewer
            .authenticated()
            .map(|a| a.user.username.clone())
            .unwrap_or_default();
        let created = hub_commits::create_repository(
            &state.app,
            &viewer,
            request.organization.as_deref(),
            &request.name,
        )
        .await;
        let model = match created {
            Ok(model) => model,
            // The client reads the address from the refusal too (`exist_ok`).
            Err(AppError::Conflict(message)) => {
                let body =
                    json!({ "error": message, "url": repo_url(&state, &login, &request.name) });
                return Ok((axum::http::StatusCode::CONFLICT, Json(body)).into_response());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Json(json!({
            "url": repo_url(&state, &login, &model.slug),
            "name": format!("{login}/{}", model.slug),
            "id": model.id,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct CardText {
    content: String,
}

/// `POST /api/validate-yaml` (`{content}`): whether a model card's front matter can be read,
/// which the client asks before it uploads a `README.md`.
pub async fn validate_card(body: axum::body::Bytes) -> Response {
    let card: CardText = match serde_json::from_slice(&body) {
        Ok(card) => card,
        Err(e) => {
            let error = AppError::bad_input("body", format!("not a model card: {e}"));
            return HubError::from(error).into_response();
        }
    };
    match version_facts::card_problem(&card.content) {
        None => Json(json!({ "errors": [], "warnings": [] })).into_response(),
        Some(problem) => (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": problem, "errors": [{ "message": problem }], "warnings": [] })),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct PreuploadFile {
    path: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
pub struct Preupload {
    files: Vec<PreuploadFile>,
}

/// `POST /api/models/{owner}/{name}/preupload/{revision}`: how to send each file.
pub async fn preupload(
    State(state): State<HttpState>,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<Response, HubError> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let (target, _) = repository_for_edit(&state, &viewer, &owner, &name).await?;
        let request: Preupload = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_input("body", format!("not a preupload request: {e}")))?;
        let most = state.app.config.max_files_per_version;
        if request.files.len() > most {
            return Err(
                AppError::bad_input("files", format!("at most {most} files at once")).into(),
            );
        }
        let files: Vec<(String, u64)> = request
            .files
            .into_iter()
            .map(|f| (f.path, f.size))
            .collect();
        let modes = hub_commits::upload_modes(&state.app, &target, &revision, &files).await?;
        let files: Vec<Value> = modes
            .into_iter()
            .map(|m| {
                let mut file = json!({
                    "path": m.path,
                    "uploadMode": if m.lfs { "lfs" } else { "regular" },
                    "shouldIgnore": false,
                });
                if let Some(oid) = m.oid {
                    file["oid"] = json!(oid);
                }
                file
            })
            .collect();
        Ok(Json(json!({ "files": files, "commitOid": Value::Null })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct CommitParams {
    #[serde(default)]
    create_pr: Option<String>,
}

/// One line of a commit.
#[derive(Debug, Deserialize)]
#[serde(tag = "key", content = "value", rename_all = "camelCase")]
enum Line {
    Header {
        #[serde(default)]
        summary: String,
        #[serde(default)]
        description: String,
        #[serde(default, rename = "parentCommit")]
        parent_commit: Option<String>,
    },
    File {
        path: String,
        content: String,
        #[serde(default)]
        encoding: Option<String>,
    },
    LfsFile {
        path: String,
        oid: String,
        #[serde(default)]
        algo: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
    DeletedFile {
        path: String,
    },
    DeletedFolder {
        path: String,
    },
}

/// A commit's lines as they arrive: the header and the operations, inline files staged.
struct Received {
    header: Option<(String, String, Option<String>)>,
    operations: Vec<Operation>,
    /// Every inline file staged, to discard at the end (once stored, a staged copy is gone
    /// already).
    staged: Vec<crate::storage::StagedBlob>,
}

async fn stage_inline(state: &HttpState, path: &str, bytes: Vec<u8>) -> AppResult<UploadedFile> {
    let mut upload = state
        .app
        .blobs
        .begin_upload()
        .await
        .map_err(AppError::internal)?;
    if let Err(e) = upload.write(Bytes::from(bytes)).await {
        upload.abort().await;
        return Err(AppError::internal(e));
    }
    let blob = upload.finish().await.map_err(AppError::internal)?;
    Ok(UploadedFile {
        filename: Some(path.rsplit('/').next().unwrap_or(path).to_owned()),
        content_type: None,
        blob,
    })
}

/// Reads one line into `received`.
async fn take_line(state: &HttpState, line: &[u8], received: &mut Received) -> AppResult<()> {
    let line: Line = serde_json::from_slice(line).map_err(|e| {
        AppError::bad_input("body", format!("a commit line could not be read: {e}"))
    })?;
    let operation = match line {
        Line::Header {
            summary,
            description,
            parent_commit,
        } => {
            received.header = Some((summary, description, parent_commit));
            return Ok(());
        }
        Line::File {
            path,
            content,
            encoding,
        } => {
            if encoding.as_deref().is_some_and(|e| e != "base64") {
                return Err(AppError::bad_input("encoding", "inline files are base64"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.as_bytes())
                .map_err(|e| {
                    AppError::bad_input("content", format!("`{path}`: not base64 ({e})"))
                })?;
            let file = FilePath::parse("path", &path)?;
            let upload = stage_inline(state, &path, bytes).await?;
            received.staged.push(upload.blob.clone());
            Operation::Add(file, Content::Inline(upload))
        }
        Line::LfsFile {
            path,
            oid,
            algo,
            size,
        } => {
            if algo.as_deref().is_some_and(|a| a != "sha256") {
                return Err(AppError::bad_input(
                    "algo",
                    "LFS objects are named by SHA-256",
                ));
            }
            Operation::Add(
                FilePath::parse("path", &path)?,
                Content::Lfs {
                    sha256: oid.to_lowercase(),
                    size,
                },
            )
        }
        Line::DeletedFile { path } => Operation::DeleteFile(path),
        Line::DeletedFolder { path } => Operation::DeleteFolder(path),
    };
    let most = state.app.config.max_files_per_version;
    if received.operations.len() >= most {
        return Err(AppError::bad_input(
            "body",
            format!("at most {most} files in one commit"),
        ));
    }
    received.operations.push(operation);
    Ok(())
}

/// Reads a commit's NDJSON body line by line.
async fn read_commit(state: &HttpState, body: Body, received: &mut Received) -> AppResult<()> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    loop {
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line = buffer.split_to(end + 1);
            let line = line.trim_ascii();
            if !line.is_empty() {
                take_line(state, line, received).await?;
            }
        }
        if buffer.len() > MAX_LINE {
            return Err(AppError::bad_input(
                "body",
                format!(
                    "a commit line is longer than {MAX_LINE} bytes; send large files through LFS"
                ),
            ));
        }
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| {
                    AppError::bad_input("body", format!("the commit was cut off ({e})"))
                })?;
                buffer.extend_from_slice(chunk.chunk());
            }
            None => break,
        }
    }
    let rest = buffer.trim_ascii();
    if !rest.is_empty() {
        take_line(state, rest, received).await?;
    }
    Ok(())
}

/// `POST /api/models/{owner}/{name}/commit/{revision}[?create_pr=1]`.
pub async fn commit(
    State(state): State<HttpState>,
    Path((owner, name, revision)): Path<(String, String, String)>,
    Query(params): Query<CommitParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut received = Received {
        header: None,
        operations: Vec::new(),
        staged: Vec::new(),
    };
    let result: Result<Response, HubError> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let (target, login) = repository_for_edit(&state, &viewer, &owner, &name).await?;
        hub_commits::authorize(&state.app, &target, &revision).await?;
        read_commit(&state, body, &mut received).await?;
        let (summary, description, parent) = received
            .header
            .take()
            .ok_or_else(|| AppError::bad_input("body", "the commit has no header line"))?;
        let create_pr = params
            .create_pr
            .as_deref()
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let slug = target.model().slug.clone();
        let model_id = target.model().id;
        let commit = Commit {
            summary,
            description,
            parent,
            operations: std::mem::take(&mut received.operations),
            create_pr,
        };
        let committed = hub_commits::commit(&state.app, &viewer, target, &revision, commit).await?;
        let url = repo_url(&state, &login, &slug);
        let mut answer = json!({
            "commitUrl": format!("{url}/commit/{}", committed.version.commit_id),
            "commitOid": committed.version.commit_id,
            "success": true,
        });
        if create_pr {
            let number = hub_commits::version_count(&state.app, model_id).await?;
            answer["pullRequestUrl"] = json!(format!("{url}/discussions/{number}"));
        }
        Ok(Json(answer).into_response())
    }
    .await;
    for staged in &received.staged {
        state.app.blobs.discard(staged).await;
    }
    result.unwrap_or_else(IntoResponse::into_response)
}

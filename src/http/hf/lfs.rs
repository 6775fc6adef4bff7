//! The Git LFS transfer under `/{owner}/{name}.git/info/lfs/`: `POST objects/batch` (the
//! caller's token) says where to send each object; `PUT objects/{oid}` takes an object whole
//! and `PUT objects/{oid}/{part}` one part of it, `POST objects/{oid}` completes an object
//! sent in parts (these three carry a signed link instead of credentials, as the client sends
//! none there); `POST verify` confirms an object arrived. See [`crate::services::lfs`].

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HubError, repo_url, repository_for_edit};
use crate::{
    auth::jwt::LfsStep,
    error::{AppError, AppResult},
    http::{HttpState, graphql::bearer_token},
    services::{
        accounts,
        lfs::{self, Answer, Wanted},
    },
    storage::{StagedBlob, Upload},
};

const LFS_JSON: &str = "application/vnd.git-lfs+json";

/// The repository name in an LFS path: `{name}.git`.
fn repository_name(segment: &str) -> Result<&str, HubError> {
    segment
        .strip_suffix(".git")
        .ok_or_else(|| HubError::from(AppError::NotFound(crate::services::hub::REPOSITORY)))
}

fn lfs_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(LFS_JSON));
    response
}

#[derive(Debug, Deserialize)]
pub struct BatchObject {
    oid: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    operation: String,
    #[serde(default)]
    objects: Vec<BatchObject>,
}

/// `POST /{owner}/{name}.git/info/lfs/objects/batch`.
pub async fn batch(
    State(state): State<HttpState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<Response, HubError> = async {
        let name = repository_name(&name)?;
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let (target, login) = repository_for_edit(&state, &viewer, &owner, name).await?;
        let request: BatchRequest = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_input("body", format!("not an LFS batch request: {e}")))?;
        if request.operation != "upload" {
            return Err(AppError::bad_input(
                "operation",
                "only uploads go through LFS here; download files from /resolve/",
            )
            .into());
        }
        let wanted: Vec<Wanted> = request
            .objects
            .into_iter()
            .map(|o| Wanted {
                oid: o.oid,
                size: o.size,
            })
            .collect();
        let url = repo_url(&state, &login, &target.model().slug);
        let answers = lfs::batch(&state.app, &viewer, &target, &url, &wanted).await?;
        let verify = json!({ "href": format!("{url}.git/info/lfs/verify") });
        let mut multipart = false;
        let objects: Vec<Value> = wanted
            .iter()
            .zip(answers)
            .map(|(w, answer)| {
                let mut object = json!({ "oid": w.oid, "size": w.size, "authenticated": true });
                match answer {
                    Answer::Held => {}
                    Answer::Whole(href) => {
                        object["actions"] = json!({ "upload": { "href": href }, "verify": verify });
                    }
                    Answer::Parts {
                        chunk_size,
                        parts,
                        complete,
                    } => {
                        multipart = true;
                        let mut header = serde_json::Map::new();
                        header.insert("chunk_size".into(), json!(chunk_size.to_string()));
                        for (i, part) in parts.into_iter().enumerate() {
                            header.insert((i + 1).to_string(), json!(part));
                        }
                        object["actions"] = json!({
                            "upload": { "href": complete, "header": header },
                            "verify": verify,
                        });
                    }
                    Answer::Refused(code, message) => {
                        object["error"] = json!({ "code": code, "message": message });
                    }
                }
                object
            })
            .collect();
        let transfer = if multipart { "multipart" } else { "basic" };
        Ok(lfs_json(
            StatusCode::OK,
            json!({ "transfer": transfer, "objects": objects, "hash_algo": "sha256" }),
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct LinkParams {
    #[serde(default)]
    token: String,
}

/// Streams a request body into `upload`, at most `limit` bytes.
async fn receive(mut upload: Upload, body: Body, limit: u64) -> AppResult<StagedBlob> {
    let mut stream = body.into_data_stream();
    let outcome: AppResult<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                AppError::bad_input("body", format!("the upload was cut off ({e})"))
            })?;
            if upload.size() + chunk.len() as u64 > limit {
                return Err(AppError::PayloadTooLarge { limit });
            }
            upload.write(chunk).await.map_err(AppError::internal)?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => upload.finish().await.map_err(AppError::internal),
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// `PUT /{owner}/{name}.git/info/lfs/objects/{oid}?token=`: the whole object.
pub async fn put_whole(
    State(state): State<HttpState>,
    Path((_owner, _name, oid)): Path<(String, String, String)>,
    Query(link): Query<LinkParams>,
    body: Body,
) -> Response {
    let result: Result<Response, HubError> = async {
        let sending = lfs::authorize(&state.app, &link.token, &oid, LfsStep::Whole).await?;
        let upload = state
            .app
            .blobs
            .begin_upload()
            .await
            .map_err(AppError::internal)?;
        let staged = receive(upload, body, sending.limit()).await?;
        lfs::keep(&state.app, &sending, staged).await?;
        Ok(StatusCode::OK.into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /{owner}/{name}.git/info/lfs/objects/{oid}/{part}?token=`: one part; its `ETag`
/// names it in the completion.
pub async fn put_part(
    State(state): State<HttpState>,
    Path((_owner, _name, oid, part)): Path<(String, String, String, u32)>,
    Query(link): Query<LinkParams>,
    body: Body,
) -> Response {
    let result: Result<Response, HubError> = async {
        let sending = lfs::authorize(&state.app, &link.token, &oid, LfsStep::Part(part)).await?;
        let upload = state
            .app
            .blobs
            .begin_part(&sending.parts_key())
            .await
            .map_err(AppError::internal)?;
        let staged = receive(upload, body, sending.limit()).await?;
        let kept = lfs::keep_part(&state.app, &sending, staged).await?;
        let mut response = StatusCode::OK.into_response();
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", kept.sha256)) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    #[serde(rename = "partNumber")]
    part_number: u32,
    etag: String,
}

#[derive(Debug, Deserialize)]
pub struct Completion {
    oid: String,
    parts: Vec<CompletedPart>,
}

/// `POST /{owner}/{name}.git/info/lfs/objects/{oid}?token=`: completes an object sent in parts.
pub async fn complete(
    State(state): State<HttpState>,
    Path((_owner, _name, oid)): Path<(String, String, String)>,
    Query(link): Query<LinkParams>,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<Response, HubError> = async {
        let sending = lfs::authorize(&state.app, &link.token, &oid, LfsStep::Complete).await?;
        let completion: Completion = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_input("body", format!("not a completion: {e}")))?;
        if completion.oid != sending.oid {
            return Err(AppError::bad_input("oid", "the completion names another object").into());
        }
        let claimed: Vec<(u32, String)> = completion
            .parts
            .into_iter()
            .map(|p| (p.part_number, p.etag))
            .collect();
        lfs::complete(&state.app, &sending, &claimed).await?;
        Ok(lfs_json(
            StatusCode::OK,
            json!({ "oid": sending.oid, "size": sending.size }),
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /{owner}/{name}.git/info/lfs/verify` (`{oid, size}`): 200 once the object arrived.
pub async fn verify(
    State(state): State<HttpState>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<Response, HubError> = async {
        let name = repository_name(&name)?;
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let (target, _) = repository_for_edit(&state, &viewer, &owner, name).await?;
        let object: BatchObject = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_input("body", format!("not an LFS object: {e}")))?;
        let wanted = Wanted {
            oid: object.oid,
            size: object.size,
        };
        lfs::verify(&state.app, &viewer, &target, &wanted).await?;
        Ok(lfs_json(
            StatusCode::OK,
            json!({ "oid": wanted.oid, "size": wanted.size }),
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

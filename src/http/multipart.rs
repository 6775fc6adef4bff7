//! The GraphQL multipart request spec (`operations`, `map`, then file parts), read as a stream:
//! each file goes straight to the blob store's staging area while it is hashed, under the
//! configured size limit, so memory stays flat whatever the file size. A file's upload is
//! finished (made durable) while the next one arrives.
//!
//! Accepts what real clients send: `operations`/`map` parts with no or any content type, map
//! keys of any name (Apollo starts at "1"), one file mapped to several variables, chunked
//! bodies. The body is always read to its end so the keep-alive connection stays usable.

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use async_graphql::BatchRequest;
use axum::{body::BodyDataStream, extract::Request, http::header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::persisted::PersistedQueries;
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    graphql::{UploadedFile, UploadedFiles},
    services::versions,
    state::AppState,
    storage::{BlobStore, StagedBlob, StorageError, Upload},
};
use tokio::task::JoinHandle;

/// Largest `map` part (room for the most files a version may have).
const MAX_MAP_BYTES: u64 = 1024 * 1024;
/// How much trailing data after the closing boundary is read (and dropped) before giving up.
const MAX_EPILOGUE_BYTES: u64 = 64 * 1024;

/// The body stream, shared so that it can be drained after multer is done with it.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<BodyDataStream>>);

impl Stream for SharedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.lock() {
            Ok(mut body) => body.poll_next_unpin(cx),
            Err(_) => Poll::Ready(None),
        }
    }
}

impl SharedBody {
    /// Reads and drops what is left of the body, up to `most` bytes; whether it ended.
    async fn drain(mut self, most: u64) -> bool {
        let mut seen = 0u64;
        while let Some(chunk) = self.next().await {
            let Ok(chunk) = chunk else {
                return false;
            };
            seen += chunk.len() as u64;
            if seen > most {
                return false;
            }
        }
        true
    }
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_input("multipart", message)
}

pub(super) fn multer_error(err: multer::Error, max_file_bytes: u64) -> AppError {
    match err {
        multer::Error::FieldSizeExceeded { field_name, limit } => match field_name.as_deref() {
            Some("operations") => AppError::PayloadTooLarge { limit },
            Some("map") => bad(format!("the `map` part exceeds {limit} bytes")),
            _ => AppError::PayloadTooLarge {
                limit: max_file_bytes,
            },
        },
        multer::Error::StreamSizeExceeded { .. } => AppError::PayloadTooLarge {
            limit: max_file_bytes,
        },
        other => bad(format!("malformed multipart body: {other}")),
    }
}

/// Reads a multipart GraphQL request: the operations with file references substituted, and
/// the staged files. The viewer is authorized for what the operations would store as soon as
/// they and the `map` are read, before any file part. On any error, whatever was staged is
/// removed.
pub async fn read(
    state: &AppState,
    persisted: &PersistedQueries,
    viewer: &Viewer,
    request: Request,
) -> AppResult<(BatchRequest, UploadedFiles)> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = multer::parse_boundary(&content_type)
        .map_err(|_| bad("the Content-Type has no multipart boundary"))?;
    let body = SharedBody(Arc::new(Mutex::new(request.into_body().into_data_stream())));
    let max_file_bytes = state.config.max_upload_bytes;
    let limits = multer::SizeLimit::new()
        .per_field(max_file_bytes.saturating_add(1))
        .for_field("operations", state.config.max_request_bytes as u64)
        .for_field("map", MAX_MAP_BYTES);
    let mut multipart = multer::Multipart::with_constraints(
        body.clone(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut staged: Vec<UploadedFile> = Vec::new();
    let mut finishing: VecDeque<Finishing> = VecDeque::new();
    let result = read_parts(
        state,
        persisted,
        viewer,
        &mut multipart,
        (&mut staged, &mut finishing),
        max_file_bytes,
    )
    .await;
    drop(multipart);
    match result {
        Ok(batch) => {
            body.drain(MAX_EPILOGUE_BYTES).await;
            Ok((batch, UploadedFiles::new(staged)))
        }
        // The client sends the whole request again with its query; it expects an answer to
        // this one, so the rest of the body is read (not stored) rather than the connection
        // closed on it.
        Err(AppError::PersistedQueryNotFound) => {
            if body.drain(state.config.max_version_bytes).await {
                Err(AppError::PersistedQueryNotFound)
            } else {
                Err(AppError::PayloadTooLarge {
                    limit: state.config.max_version_bytes,
                })
            }
        }
        Err(err) => {
            // Files still finishing are waited for, so that nothing staged outlives the answer.
            while let Some(file) = finishing.pop_front() {
                if let Ok(file) = file.wait().await {
                    staged.push(file);
                }
            }
            for file in &staged {
                state.blobs.discard(&file.blob).await;
            }
            Err(err)
        }
    }
}

async fn read_parts(
    state: &AppState,
    persisted: &PersistedQueries,
    viewer: &Viewer,
    multipart: &mut multer::Multipart<'static>,
    (staged, finishing): (&mut Vec<UploadedFile>, &mut VecDeque<Finishing>),
    max_file_bytes: u64,
) -> AppResult<BatchRequest> {
    let error = |e| multer_error(e, max_file_bytes);
    let mut operations: Option<Value> = None;
    let mut map: Option<HashMap<String, Vec<String>>> = None;
    // Map key → index of its file in `staged`.
    let mut received: HashMap<String, usize> = HashMap::new();
    // Bytes of every file so far (`finishing` holds files received in full, still being made
    // durable; they join `staged` in order).
    let mut sent = 0u64;
    while let Some(mut field) = multipart.next_field().await.map_err(error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "operations" if operations.is_none() => {
                let bytes = field.bytes().await.map_err(error)?;
                let mut read = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("`operations` is not valid JSON: {e}")))?;
                persisted.resolve_json(&mut read)?;
                operations = Some(read);
            }
            "map" if map.is_none() => {
                if operations.is_none() {
                    return Err(bad("the `operations` part must come before `map`"));
                }
                let bytes = field.bytes().await.map_err(error)?;
                map = Some(serde_json::from_slice(&bytes).map_err(|e| {
                    bad(format!(
                        "`map` must be a JSON object of arrays of paths: {e}"
                    ))
                })?);
                if let Some(operations) = &operations {
                    let targets = super::upload_plan::targets(operations)?;
                    if targets.is_empty() && map.as_ref().is_some_and(|m| !m.is_empty()) {
                        return Err(bad(
                            "files are taken only by createModel and createModelVersion",
                        ));
                    }
                    versions::authorize_upload(state, viewer, &targets).await?;
                }
            }
            "operations" | "map" => return Err(bad(format!("the `{name}` part is repeated"))),
            _ => {
                let Some(map) = &map else {
                    return Err(bad(
                        "the `operations` and `map` parts must come before files",
                    ));
                };
                if !map.contains_key(&name) {
                    return Err(bad(format!("file part `{name}` is not named in `map`")));
                }
                if received.contains_key(&name) {
                    return Err(bad(format!("file part `{name}` is repeated")));
                }
                let most = state.config.max_files_per_version;
                if staged.len() + finishing.len() >= most {
                    return Err(bad(format!("at most {most} files per request")));
                }
                let filename = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(ToString::to_string);
                // Each file within its own limit and all within a version's.
                let room = state.config.max_version_bytes.saturating_sub(sent);
                let upload = stream_file(state, &mut field, max_file_bytes.min(room)).await?;
                sent += upload.size();
                received.insert(name, staged.len() + finishing.len());
                if finishing.len() == MAX_FINISHING
                    && let Some(oldest) = finishing.pop_front()
                {
                    staged.push(oldest.wait().await?);
                }
                finishing.push_back(Finishing::start(state, upload, filename, content_type));
            }
        }
    }
    while let Some(file) = finishing.pop_front() {
        staged.push(file.wait().await?);
    }
    let mut operations = operations.ok_or_else(|| bad("the `operations` part is missing"))?;
    let map = map.ok_or_else(|| bad("the `map` part is missing"))?;
    for (key, paths) in &map {
        let index = *received
            .get(key)
            .ok_or_else(|| bad(format!("`map` names file part `{key}`, which was not sent")))?;
        for path in paths {
            set_path(&mut operations, path, UploadedFiles::reference(index))?;
        }
    }
    serde_json::from_value(operations).map_err(|e| bad(format!("invalid `operations`: {e}")))
}

/// How many received files may be finishing (their last part written, fsynced) while the
/// next one arrives.
const MAX_FINISHING: usize = 2;

/// A file received in full whose upload is being finished on a task of its own, so that the
/// next file's bytes arrive meanwhile. Dropped before [`Self::wait`] (the request failed or
/// was abandoned), it discards what it staged once the task is done.
struct Finishing {
    filename: Option<String>,
    content_type: Option<String>,
    task: Option<JoinHandle<Result<StagedBlob, StorageError>>>,
    blobs: BlobStore,
}

impl Finishing {
    fn start(
        state: &AppState,
        upload: Upload,
        filename: Option<String>,
        content_type: Option<String>,
    ) -> Self {
        Self {
            filename,
            content_type,
            task: Some(tokio::spawn(upload.finish())),
            blobs: state.blobs.clone(),
        }
    }

    /// The staged file, once durable.
    async fn wait(mut self) -> AppResult<UploadedFile> {
        let task = self
            .task
            .take()
            .ok_or_else(|| AppError::internal("an upload was finished twice"))?;
        let blob = task
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?;
        Ok(UploadedFile {
            filename: self.filename.take(),
            content_type: self.content_type.take(),
            blob,
        })
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let blobs = self.blobs.clone();
            tokio::spawn(async move {
                if let Ok(Ok(staged)) = task.await {
                    blobs.discard(&staged).await;
                }
            });
        }
    }
}

/// Streams one file part of a form into the staging area, within `max_file_bytes`, and makes
/// it durable.
pub(super) async fn stage_part(
    state: &AppState,
    field: &mut multer::Field<'static>,
    max_file_bytes: u64,
) -> AppResult<UploadedFile> {
    let filename = field.file_name().map(str::to_owned);
    let content_type = field.content_type().map(ToString::to_string);
    let upload = stream_file(state, field, max_file_bytes).await?;
    Finishing::start(state, upload, filename, content_type)
        .wait()
        .await
}

/// Streams one file part into the staging area, enforcing the size limit as bytes arrive;
/// the upload is left for the caller to finish.
async fn stream_file(
    state: &AppState,
    field: &mut multer::Field<'static>,
    max_file_bytes: u64,
) -> AppResult<Upload> {
    let mut upload: Upload = state
        .blobs
        .begin_upload()
        .await
        .map_err(AppError::internal)?;
    let outcome: AppResult<()> = async {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multer_error(e, max_file_bytes))?
        {
            if upload.size() + chunk.len() as u64 > max_file_bytes {
                return Err(AppError::PayloadTooLarge {
                    limit: max_file_bytes,
                });
            }
            upload.write(chunk).await.map_err(AppError::internal)?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => Ok(upload),
        Err(err) => {
            upload.abort().await;
            Err(err)
        }
    }
}

/// Sets the value at a dotted path (`variables.file`, `0.variables.files.1`) in `operations`.
fn set_path(operations: &mut Value, path: &str, value: Value) -> AppResult<()> {
    let missing = || {
        bad(format!(
            "`map` path `{path}` does not exist in `operations`"
        ))
    };
    let in_variables =
        path.starts_with("variables.") || path.split('.').nth(1).is_some_and(|s| s == "variables");
    if !in_variables {
        return Err(bad(format!(
            "`map` path `{path}` must point into `variables`"
        )));
    }
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last().ok_or_else(missing)?;
    let mut node = operations;
    for segment in parents {
        node = match node {
            Value::Object(object) => object.get_mut(*segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(missing)?;
    }
    match node {
        Value::Object(object) => {
            object.insert((*last).to_owned(), value);
        }
        Value::Array(items) => {
            let slot = last
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(missing)?;
            *slot = value;
        }
        _ => return Err(missing()),
    }
    Ok(())
}

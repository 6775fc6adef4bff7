//! The `Upload` scalar of the GraphQL multipart request spec. The HTTP layer streams each file
//! part into the blob store's staging area and puts the results in the request's
//! [`UploadedFiles`]; the variables then hold references to them, which this scalar resolves.

use std::sync::Arc;

use async_graphql::{
    Context, ID, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, Value,
};
use uuid::Uuid;

use super::context::RequestContext;
use crate::{
    domain::file_path::FilePath,
    error::{AppError, AppResult},
    services::{resumable, version_upload::Files},
    storage::{BlobStore, StagedBlob},
};

/// How a variable refers to the n-th uploaded file.
const REFERENCE_PREFIX: &str = "modelhub-upload:";

/// One uploaded file, complete in the staging area.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The name the client gave, if any.
    pub filename: Option<String>,
    /// The content type the client gave, if any.
    pub content_type: Option<String>,
    /// The staged bytes: size, SHA-256 and first bytes.
    pub blob: StagedBlob,
}

/// The files of one multipart request, in the order of their parts (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct UploadedFiles(Arc<Vec<UploadedFile>>);

impl UploadedFiles {
    /// Wraps the files of a request.
    pub fn new(files: Vec<UploadedFile>) -> Self {
        Self(Arc::new(files))
    }

    /// The value a variable gets for file `index`.
    pub fn reference(index: usize) -> serde_json::Value {
        serde_json::Value::String(format!("{REFERENCE_PREFIX}{index}"))
    }

    /// Removes whatever is still staged. Files that were committed have moved already.
    pub async fn discard_all(&self, blobs: &BlobStore) {
        for file in self.0.iter() {
            blobs.discard(&file.blob).await;
        }
    }
}

/// A file sent with the request per the GraphQL multipart request spec.
#[derive(Debug, Clone, Copy)]
pub struct Upload(usize);

#[Scalar(name = "Upload")]
/// A file part of a `multipart/form-data` request (GraphQL multipart request spec).
impl ScalarType for Upload {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s
                .strip_prefix(REFERENCE_PREFIX)
                .and_then(|n| n.parse().ok())
                .map(Upload)
                .ok_or_else(|| {
                    InputValueError::custom(
                        "send files as multipart/form-data parts named in `map`",
                    )
                }),
            _ => Err(InputValueError::custom(
                "send files as multipart/form-data parts named in `map`",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(format!("{REFERENCE_PREFIX}{}", self.0))
    }
}

impl Upload {
    /// The uploaded file this value refers to.
    pub fn file(&self, ctx: &Context<'_>) -> AppResult<UploadedFile> {
        ctx.data_opt::<UploadedFiles>()
            .and_then(|files| files.0.get(self.0).cloned())
            .ok_or_else(|| AppError::bad_input("file", "no file part was sent for this variable"))
    }
}

/// One file of a version of several files, and where it goes.
#[derive(InputObject)]
pub struct FileUpload {
    /// The relative path in the version, `/`-separated (`tokenizer/vocab.json`).
    path: String,
    /// The file part (multipart request); or give `uploadId`.
    file: Option<Upload>,
    /// A finished resumable upload of the caller's (tus, at `/uploads/`), instead of a file
    /// part: the id at the end of its `Location`. Taken once the mutation succeeds.
    upload_id: Option<ID>,
}

/// The files a mutation names, and the resumable uploads among them (to forget once it has
/// succeeded: see [`forget`]).
pub type Named<T> = (T, Vec<Uuid>);

/// Files sent at paths, each path checked (`files[i].path` names one in an error).
pub async fn at_paths(
    ctx: &Context<'_>,
    files: Vec<FileUpload>,
) -> AppResult<Named<Vec<(FilePath, UploadedFile)>>> {
    let mut named = Vec::with_capacity(files.len());
    let mut resumable = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let path = FilePath::parse(&format!("files[{i}].path"), &f.path)?;
        let file = match (f.file, f.upload_id) {
            (Some(file), None) => file.file(ctx)?,
            (None, Some(id)) => {
                let field = format!("files[{i}].uploadId");
                let id = Uuid::parse_str(&id)
                    .map_err(|_| AppError::bad_input(&field, "not an upload id"))?;
                resumable.push(id);
                resumable::take(ctx.state(), ctx.viewer(), &field, id).await?
            }
            _ => {
                return Err(AppError::bad_input(
                    format!("files[{i}]"),
                    "give either `file` or `uploadId`",
                ));
            }
        };
        named.push((path, file));
    }
    Ok((named, resumable))
}

/// The files a mutation was sent: `file` (one file, named after the upload) or `files` (any
/// number, at their paths), not both.
pub async fn files_of(
    ctx: &Context<'_>,
    file: Option<Upload>,
    files: Option<Vec<FileUpload>>,
) -> AppResult<Named<Files>> {
    match (file, files) {
        (Some(file), None) => Ok((Files::One(file.file(ctx)?), Vec::new())),
        (None, Some(files)) => {
            let (files, resumable) = at_paths(ctx, files).await?;
            Ok((Files::Many(files), resumable))
        }
        (Some(_), Some(_)) => Err(AppError::bad_input(
            "files",
            "send either `file` or `files`, not both",
        )),
        (None, None) => Err(AppError::bad_input(
            "file",
            "send the version's file as `file`, or its files as `files`",
        )),
    }
}

/// Forgets the resumable uploads a mutation took, once it has succeeded (what is left of them
/// otherwise goes when they expire).
pub async fn forget(ctx: &Context<'_>, resumable: &[Uuid]) {
    if let Err(e) = resumable::consumed(ctx.state(), resumable).await {
        tracing::warn!(error = %e.cause().unwrap_or_else(|| e.message()), "taken uploads will go when they expire");
    }
}

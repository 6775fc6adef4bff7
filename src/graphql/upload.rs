//! The `Upload` scalar of the GraphQL multipart request spec. The HTTP layer streams each file
//! part into the blob store's staging area and puts the results in the request's
//! [`UploadedFiles`]; the variables then hold references to them, which this scalar resolves.

use std::sync::Arc;

use async_graphql::{
    Context, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, Value,
};

use crate::{
    domain::file_path::FilePath,
    error::{AppError, AppResult},
    services::version_upload::Files,
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
    /// The file part.
    file: Upload,
}

/// Files sent at paths, each path checked (`files[i].path` names one in an error).
pub fn at_paths(
    ctx: &Context<'_>,
    files: Vec<FileUpload>,
) -> AppResult<Vec<(FilePath, UploadedFile)>> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let path = FilePath::parse(&format!("files[{i}].path"), &f.path)?;
            Ok((path, f.file.file(ctx)?))
        })
        .collect()
}

/// The files a mutation was sent: `file` (one file, named after the upload) or `files` (any
/// number, at their paths), not both.
pub fn files_of(
    ctx: &Context<'_>,
    file: Option<Upload>,
    files: Option<Vec<FileUpload>>,
) -> AppResult<Files> {
    match (file, files) {
        (Some(file), None) => Ok(Files::One(file.file(ctx)?)),
        (None, Some(files)) => at_paths(ctx, files).map(Files::Many),
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

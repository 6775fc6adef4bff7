//! Storing a new version's files. They arrive already staged, durable and hashed (see
//! `http::multipart`); here their paths and formats are checked and each file is inspected,
//! then, in one transaction holding every blob's lock (see [`blobs`]), the files move to their
//! content addresses and the rows are written. If the rows cannot be written, each file is
//! removed again unless another version uses the same bytes.

use std::collections::BTreeSet;

use futures_util::{StreamExt, TryStreamExt};
use modelhub_inspect::{Declared, Report};
use sea_orm::{ActiveModelTrait, DatabaseTransaction, Set};
use uuid::Uuid;

use super::{
    blobs, gate,
    version_facts::{self, FactFile, Facts},
};
use crate::{
    config::UnsafeUploads,
    domain::{
        file_path::{self, FilePath, ManifestEntry},
        format,
    },
    entities::{
        enums::{InspectionStatus, ModelFormat},
        version_file,
    },
    error::{AppError, AppResult},
    graphql::UploadedFile,
    state::AppState,
    storage::StagedBlob,
};

/// How many files of one upload are inspected at once.
const INSPECTING_AT_ONCE: usize = 4;

/// The files of an upload: one file (named after the uploaded file), or several at paths.
pub enum Files {
    One(UploadedFile),
    Many(Vec<(FilePath, UploadedFile)>),
}

/// A file of a new version, checked: where it goes and what it is.
pub struct Planned {
    pub path: FilePath,
    pub upload: UploadedFile,
    pub format: ModelFormat,
}

/// A new version's files, checked together.
pub struct Plan {
    pub files: Vec<Planned>,
    /// The version's format: its one file's, or its main file's.
    pub format: ModelFormat,
    /// The uploaded file's name, for a one-file version.
    pub filename: Option<String>,
}

/// What a version's row says about its files as a whole.
pub struct Contents {
    pub format: ModelFormat,
    pub size: u64,
    /// A one-file version's file's SHA-256, or the digest.
    pub sha256: String,
    pub digest: String,
    pub file_count: usize,
    pub filename: Option<String>,
}

impl Contents {
    /// The contents of files given as (path, SHA-256, size).
    pub fn of<'a>(
        format: ModelFormat,
        filename: Option<String>,
        files: impl IntoIterator<Item = (&'a str, &'a str, u64)> + Clone,
    ) -> Self {
        let digest = file_path::digest(
            files
                .clone()
                .into_iter()
                .map(|(path, sha256, size)| ManifestEntry { path, sha256, size }),
        );
        let all: Vec<(&str, &str, u64)> = files.into_iter().collect();
        Self {
            format,
            size: all.iter().map(|(_, _, size)| size).sum(),
            sha256: match all.as_slice() {
                [(_, sha256, _)] => (*sha256).to_owned(),
                _ => digest.clone(),
            },
            digest,
            file_count: all.len(),
            filename,
        }
    }
}

impl Plan {
    /// The version's size: the sum of its files'.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.upload.blob.size).sum()
    }

    /// What the version's row says about these files.
    pub fn contents(&self) -> Contents {
        Contents::of(
            self.format,
            self.filename.clone(),
            self.files.iter().map(|f| {
                (
                    f.path.as_str(),
                    f.upload.blob.sha256.as_str(),
                    f.upload.blob.size,
                )
            }),
        )
    }
}

/// File names (besides extensions) of text files in model folders.
const TEXT_NAMES: &[&str] = &["mlmodel", "license", "notice", "readme", ".gitattributes"];
/// Extensions of text files in model folders.
const TEXT_EXTENSIONS: &[&str] = &[
    "json", "jsonl", "yaml", "yml", "txt", "md", "markdown", "toml", "csv", "tsv", "jinja", "cfg",
    "ini",
];

/// How the inspector reads a file of `format` at `path`: text files by their names.
pub fn declared(format: ModelFormat, path: &str) -> Declared {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match format {
        ModelFormat::Other
            if TEXT_NAMES.contains(&name.as_str()) || TEXT_EXTENSIONS.contains(&extension) =>
        {
            Declared::Text
        }
        other => other.declared(),
    }
}

/// Checks an upload's files: a one-file upload as before (not empty, its declared format
/// matching its content); several files with valid, distinct paths, each of the format its
/// content and name say, within the server's limits on count and total size. `declared`, if
/// given, must then be one of theirs; the version's format is otherwise its largest model
/// file's.
pub fn plan(state: &AppState, declared: Option<ModelFormat>, files: Files) -> AppResult<Plan> {
    match files {
        Files::One(upload) => {
            let blob = &upload.blob;
            if blob.size == 0 {
                return Err(AppError::bad_input("file", "is empty"));
            }
            let format =
                format::resolve(declared, &blob.head, blob.size, upload.filename.as_deref())?;
            let fallback = format!("model.{}", format::file_extension(format));
            let path = file_path::from_filename(upload.filename.as_deref(), &fallback);
            let filename = upload
                .filename
                .as_deref()
                .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
                .map(|f| f.chars().take(255).collect::<String>())
                .filter(|f| !f.trim().is_empty());
            Ok(Plan {
                files: vec![Planned {
                    path,
                    upload,
                    format,
                }],
                format,
                filename,
            })
        }
        Files::Many(files) => {
            let limit = state.config.max_files_per_version;
            if files.is_empty() {
                return Err(AppError::bad_input("files", "must name at least one file"));
            }
            if files.len() > limit {
                return Err(AppError::bad_input(
                    "files",
                    format!("at most {limit} files per version"),
                ));
            }
            file_path::check_set("files", files.iter().map(|(path, _)| path))?;
            let planned: Vec<Planned> = files
                .into_iter()
                .map(|(path, upload)| Planned {
                    format: format::detect(
                        &upload.blob.head,
                        upload.blob.size,
                        Some(path.file_name()),
                    ),
                    path,
                    upload,
                })
                .collect();
            let plan = Plan {
                format: main_format(
                    declared,
                    planned.iter().map(|f| (f.format, f.upload.blob.size)),
                )?,
                files: planned,
                filename: None,
            };
            let max = state.config.max_version_bytes;
            if plan.size() > max {
                return Err(AppError::bad_input(
                    "files",
                    format!("the files come to more than {max} bytes"),
                ));
            }
            Ok(plan)
        }
    }
}

/// The format of a version of several files: the declared one (which a file must have), else
/// that of its largest file of a model format, else OTHER.
pub fn main_format(
    declared: Option<ModelFormat>,
    files: impl IntoIterator<Item = (ModelFormat, u64)>,
) -> AppResult<ModelFormat> {
    let files: Vec<(ModelFormat, u64)> = files.into_iter().collect();
    if let Some(format) = declared {
        return match files.iter().any(|(f, _)| *f == format) {
            true => Ok(format),
            false => Err(AppError::bad_input(
                "input.format",
                format!(
                    "no file of the version is {}",
                    format::label(format).to_lowercase()
                ),
            )),
        };
    }
    Ok(files
        .iter()
        .filter(|(f, _)| *f != ModelFormat::Other)
        .max_by_key(|(_, size)| *size)
        .map_or(ModelFormat::Other, |(f, _)| *f))
}

/// Inspects an uploaded file on the inspector's threads (see [`super::inspection`]).
async fn inspect(state: &AppState, file: &Planned) -> AppResult<Report> {
    inspect_staged(
        state,
        &file.upload.blob,
        declared(file.format, file.path.as_str()),
    )
    .await
}

/// Inspects a staged upload read as `declared`.
pub(super) async fn inspect_staged(
    state: &AppState,
    blob: &StagedBlob,
    declared: Declared,
) -> AppResult<Report> {
    let copy = state
        .blobs
        .upload_copy(blob)
        .await
        .map_err(AppError::internal)?;
    let report = state.inspector.inspect(copy, blob.size, declared).await;
    metrics::counter!("modelhub_inspections_total", "status" => report.status().as_str())
        .increment(1);
    Ok(report)
}

/// What the inspection found in a new version's files: each file's report, the version's,
/// and what the files say together.
pub struct Inspected {
    pub files: Vec<Report>,
    pub version: Report,
    pub facts: Facts,
}

/// The version's report from its files' (with what they say together), and those facts.
pub fn version_report(files: &[FactFile<'_>]) -> (Report, Facts) {
    let mut version = match files {
        [one] => one.report.clone(),
        many => Report::combine(many.iter().map(|f| (f.path, f.report))),
    };
    let facts = version_facts::gather(files);
    facts.apply(&mut version);
    (version, facts)
}

/// The file rows of a version, as stored.
pub async fn insert_files(
    txn: &DatabaseTransaction,
    state: &AppState,
    version_id: Uuid,
    plan: &Plan,
    reports: &[Report],
) -> AppResult<()> {
    let now = super::now();
    for (file, report) in plan.files.iter().zip(reports) {
        version_file::ActiveModel {
            id: Set(Uuid::now_v7()),
            version_id: Set(version_id),
            path: Set(file.path.as_str().to_owned()),
            path_key: Set(file.path.case_key()),
            format: Set(file.format),
            size_bytes: Set(i64::try_from(file.upload.blob.size).map_err(AppError::internal)?),
            sha256: Set(file.upload.blob.sha256.clone()),
            inspection_status: Set(InspectionStatus::from(report.status())),
            inspection: Set(Some(report.to_json())),
            inspection_rules: Set(Some(state.inspector.fingerprint().to_owned())),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

/// Inspects the planned files, applies the unsafe-upload policy, then, in one transaction,
/// puts every file at its content address and runs `write` with what the inspection found;
/// the files are removed again if anything fails and no other version uses them.
/// What an upload's files are: a whole version (judged together), or files added to a draft
/// (each judged on its own; the version is judged when the draft is committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Version,
    DraftFiles,
}

pub async fn store<T, F>(state: &AppState, plan: &Plan, batch: Batch, write: F) -> AppResult<T>
where
    F: AsyncFnOnce(&DatabaseTransaction, &Inspected) -> AppResult<T>,
{
    let outcome = async {
        let files: Vec<Report> = futures_util::stream::iter(0..plan.files.len())
            .map(|i| inspect(state, &plan.files[i]))
            .buffered(INSPECTING_AT_ONCE)
            .try_collect()
            .await?;
        // Facts span a whole version: a draft's files are read together when it is committed.
        let mut facts_of = Vec::with_capacity(plan.files.len());
        for (file, report) in plan.files.iter().zip(&files) {
            let (path, blob) = (file.path.as_str(), &file.upload.blob);
            facts_of.push(FactFile {
                path,
                size: blob.size,
                report,
                bytes: match batch {
                    Batch::Version => {
                        let copy = state.blobs.upload_copy(blob);
                        version_facts::read_if_fact(path, blob.size, copy).await?
                    }
                    Batch::DraftFiles => None,
                },
            });
        }
        let (version, facts) = version_report(&facts_of);
        let judged = match batch {
            Batch::Version => gate::hold_reason(&version),
            Batch::DraftFiles => files.iter().find_map(gate::hold_reason),
        };
        if let Some(why) = judged
            && state.config.unsafe_uploads == UnsafeUploads::Reject
        {
            return Err(AppError::bad_input(
                "file",
                format!("the inspection holds this file: {why}; this server refuses such uploads"),
            ));
        }
        for file in &plan.files {
            state
                .blobs
                .prepare(&file.upload.blob)
                .await
                .map_err(AppError::internal)?;
        }
        let txn = blobs::begin_with(state, plan.files.iter().map(|f| &f.upload.blob)).await?;
        let value = write(
            &txn,
            &Inspected {
                files,
                version,
                facts,
            },
        )
        .await?;
        super::commit_change(state, txn).await?;
        Ok(value)
    }
    .await;
    let size = plan.size();
    match &outcome {
        Ok(_) => {
            // The content is stored: a later use of the same file in this request reads it
            // there. After a failure the staged copy stays for such a use (the request
            // discards it at its end).
            for file in &plan.files {
                state.blobs.discard(&file.upload.blob).await;
            }
            metrics::counter!("modelhub_uploads_total", "outcome" => "stored").increment(1);
            metrics::counter!("modelhub_upload_bytes_total").increment(size);
        }
        Err(_) => {
            metrics::counter!("modelhub_uploads_total", "outcome" => "refused").increment(1);
            let hashes: BTreeSet<&str> = plan
                .files
                .iter()
                .map(|f| f.upload.blob.sha256.as_str())
                .collect();
            for sha256 in hashes {
                blobs::release(state, sha256).await;
            }
        }
    }
    outcome
}

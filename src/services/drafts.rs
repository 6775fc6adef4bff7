//! Version drafts, for versions too big for one request: `create` one, `add_files` in any
//! number of requests (files uploaded, or reused by hash from what the caller may already
//! read; a path added again replaces its file), then `commit` it — the version appears at
//! once, whole — or `discard` it. A draft lives in the database, so any replica can continue
//! it; one left alone expires after `MODELHUB_DRAFT_TTL_HOURS` and `gc` removes it and frees
//! the bytes only it used.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use modelhub_inspect::{Declared, Report};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    audit::{self, Subject},
    blobs, gate, lfs,
    version_facts::{self, FactFile, Facts},
    version_upload::{self, Batch, Contents, Files, Inspected},
    versions::{self, NewVersion, is_listed_locked, refresh_current_version},
};
use crate::{
    auth::Viewer,
    domain::{
        file_path::{self, FilePath},
        format, model as rules,
        version::Version,
    },
    entities::{
        draft_file,
        enums::{InspectionStatus, ModelFormat},
        lfs_object, model, model_version, version_draft, version_file,
    },
    error::{AppError, AppResult},
    graphql::UploadedFile,
    state::AppState,
};

/// Most hashes one `missingBlobs` question or one addition may name.
pub const MAX_HASHES: usize = 10_000;

fn expiry(state: &AppState) -> AppResult<chrono::DateTime<Utc>> {
    Ok(super::now()
        + chrono::Duration::from_std(state.config.draft_ttl).map_err(AppError::internal)?)
}

/// Starts a draft of version `input.version` of the model (whose editor the caller is).
pub async fn create(
    state: &AppState,
    target: &ModelEdit<'_>,
    input: NewVersion,
) -> AppResult<version_draft::Model> {
    let model = target.model();
    let version = Version::parse("input.version", &input.version)?;
    let taken = model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model.id))
        .filter(model_version::Column::VersionKey.eq(version.sort_key()))
        .one(&state.db)
        .await?;
    if taken.is_some() {
        return Err(AppError::Conflict(format!(
            "version: {} already exists for this model",
            version.label()
        )));
    }
    let now = super::now();
    let draft = version_draft::ActiveModel {
        id: Set(Uuid::now_v7()),
        model_id: Set(model.id),
        created_by: Set(target.actor()),
        version: Set(version.label().to_owned()),
        version_key: Set(version.sort_key()),
        format: Set(input.format),
        changelog: Set(rules::text("input.changelog", input.changelog.as_deref())?),
        metadata: Set(rules::json_object("input.metadata", input.metadata)?),
        performance_metrics: Set(rules::json_object(
            "input.performanceMetrics",
            input.performance_metrics,
        )?),
        created_at: Set(now),
        expires_at: Set(expiry(state)?),
    }
    .insert(&state.db)
    .await?;
    tracing::info!(draft_id = %draft.id, model_id = %model.id, version = %draft.version, "draft created");
    Ok(draft)
}

/// The draft with this id and the right to change it: only its model's editors see it, and an
/// expired draft is gone.
pub async fn find_for_edit<'v>(
    state: &AppState,
    viewer: &'v Viewer,
    id: Uuid,
) -> AppResult<(version_draft::Model, ModelEdit<'v>)> {
    let draft = version_draft::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|d| d.expires_at > Utc::now())
        .ok_or(AppError::NotFound("draft"))?;
    let model = model::Entity::find_by_id(draft.model_id)
        .one(&state.db)
        .await?;
    let target = access::edit(viewer, model).map_err(|e| match e {
        AppError::NotFound(_) => AppError::NotFound("draft"),
        other => other,
    })?;
    Ok((draft, target))
}

/// A file the hub holds, named by hash, to put in a draft at a path.
pub struct Reuse {
    pub path: FilePath,
    pub sha256: String,
}

/// Whether `sha256` is a well-formed hash (lower-case hex SHA-256).
fn is_hash(sha256: &str) -> bool {
    sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The files the viewer may read with these hashes: files of versions it can see that are not
/// withdrawn, which the inspection gate releases or whose model's private side it may read.
pub(super) async fn readable(
    state: &AppState,
    viewer: &Viewer,
    hashes: &[String],
) -> AppResult<Vec<version_file::Model>> {
    let visible_versions = Query::select()
        .column((model_version::Entity, model_version::Column::Id))
        .from(model_version::Entity)
        .inner_join(
            model::Entity,
            Expr::col((model::Entity, model::Column::Id))
                .equals((model_version::Entity, model_version::Column::ModelId)),
        )
        .cond_where(access::visible_condition(
            viewer,
            state.db.get_database_backend(),
        ))
        .and_where(Expr::col((model_version::Entity, model_version::Column::WithdrawnAt)).is_null())
        .to_owned();
    let files = version_file::Entity::find()
        .filter(version_file::Column::Sha256.is_in(hashes.iter().cloned()))
        .filter(version_file::Column::VersionId.in_subquery(visible_versions))
        .all(&state.db)
        .await?;
    let versions = model_version::Entity::find()
        .filter(model_version::Column::Id.is_in(files.iter().map(|f| f.version_id)))
        .all(&state.db)
        .await?;
    let models = model::Entity::find()
        .filter(model::Column::Id.is_in(versions.iter().map(|v| v.model_id)))
        .all(&state.db)
        .await?;
    let versions: HashMap<Uuid, model_version::Model> =
        versions.into_iter().map(|v| (v.id, v)).collect();
    let models: HashMap<Uuid, model::Model> = models.into_iter().map(|m| (m.id, m)).collect();
    Ok(files
        .into_iter()
        .filter(|file| {
            let Some(version) = versions.get(&file.version_id) else {
                return false;
            };
            gate::file_hold_reason(version, file).is_none()
                || models
                    .get(&version.model_id)
                    .is_some_and(|m| access::may_read_private(viewer, m))
        })
        .collect())
}

/// Which of `hashes` the caller would have to upload: those the hub does not hold in a
/// version the caller can see (a hash it holds elsewhere is reported missing too, so nothing
/// is learnt about files the caller may not read).
pub async fn missing_blobs(
    state: &AppState,
    viewer: &Viewer,
    hashes: Vec<String>,
) -> AppResult<Vec<String>> {
    if hashes.len() > MAX_HASHES {
        return Err(AppError::bad_input(
            "sha256",
            format!("at most {MAX_HASHES} hashes at once"),
        ));
    }
    let hashes: Vec<String> = hashes
        .into_iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    if let Some(bad) = hashes.iter().find(|h| !is_hash(h)) {
        return Err(AppError::bad_input(
            "sha256",
            format!("`{bad}` is not a SHA-256 in hex"),
        ));
    }
    let held: BTreeSet<String> = readable(state, viewer, &hashes)
        .await?
        .into_iter()
        .map(|f| f.sha256)
        .collect();
    let mut seen = BTreeSet::new();
    Ok(hashes
        .into_iter()
        .filter(|h| !held.contains(h) && seen.insert(h.clone()))
        .collect())
}

/// Adds files to a draft: `files` uploaded now, and `reuse`d ones the hub holds. A path the
/// draft has already is replaced. Each file is inspected as it arrives (a reused one keeps
/// the verdict it has, when it was made under the current rules for the same kind of file).
pub async fn add_files(
    state: &AppState,
    viewer: &Viewer,
    draft_id: Uuid,
    files: Vec<(FilePath, UploadedFile)>,
    reuse: Vec<Reuse>,
) -> AppResult<version_draft::Model> {
    let (draft, _target) = find_for_edit(state, viewer, draft_id).await?;
    if files.is_empty() && reuse.is_empty() {
        return Err(AppError::bad_input(
            "files",
            "name at least one file or reuse",
        ));
    }
    if reuse.len() > MAX_HASHES {
        return Err(AppError::bad_input(
            "reuse",
            format!("at most {MAX_HASHES} files at once"),
        ));
    }
    file_path::check_set(
        "files",
        files
            .iter()
            .map(|(p, _)| p)
            .chain(reuse.iter().map(|r| &r.path)),
    )?;
    let reused = reused_files(state, viewer, draft.model_id, &reuse).await?;
    // Files replaced at their paths, whose blobs may now be unused.
    let mut replaced = Vec::new();
    if !files.is_empty() {
        let plan = version_upload::plan(state, None, Files::Many(files))?;
        replaced = version_upload::store(
            state,
            &plan,
            Batch::DraftFiles,
            async |txn, found: &Inspected| {
                let mut replaced = Vec::new();
                for (file, report) in plan.files.iter().zip(&found.files) {
                    replaced.extend(
                        put_file(
                            txn,
                            draft.id,
                            DraftEntry {
                                path: &file.path,
                                format: file.format,
                                size: file.upload.blob.size,
                                sha256: &file.upload.blob.sha256,
                                status: report.status().into(),
                                report: report.to_json(),
                                rules: state.inspector.fingerprint(),
                            },
                        )
                        .await?,
                    );
                }
                touch(state, txn, draft.id).await?;
                Ok(replaced)
            },
        )
        .await?;
    }
    if !reused.is_empty() {
        let txn = state.db.begin().await?;
        let hashes: BTreeSet<&str> = reused.iter().map(|r| r.sha256.as_str()).collect();
        for sha256 in hashes {
            blobs::lock(&txn, sha256).await?;
            // Under the lock: a blob still used by a version (or waiting, received, for a
            // commit to the model) stays until this commits.
            let used = version_file::Entity::find()
                .filter(version_file::Column::Sha256.eq(sha256))
                .one(&txn)
                .await?
                .is_some()
                || lfs_object::Entity::find()
                    .filter(lfs_object::Column::ModelId.eq(draft.model_id))
                    .filter(lfs_object::Column::Sha256.eq(sha256))
                    .one(&txn)
                    .await?
                    .is_some();
            if !used {
                return Err(AppError::bad_input(
                    "reuse",
                    format!("no version uses {sha256} any more; upload the file"),
                ));
            }
        }
        for file in &reused {
            replaced.extend(
                put_file(
                    &txn,
                    draft.id,
                    DraftEntry {
                        path: &file.path,
                        format: file.format,
                        size: file.size,
                        sha256: &file.sha256,
                        status: file.report.status().into(),
                        report: file.report.to_json(),
                        rules: state.inspector.fingerprint(),
                    },
                )
                .await?,
            );
        }
        touch(state, &txn, draft.id).await?;
        super::commit_change(state, txn).await?;
    }
    for sha256 in replaced {
        blobs::release(state, &sha256).await;
    }
    version_draft::Entity::find_by_id(draft.id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("draft"))
}

/// A stored file a draft takes by hash: a file of a version the caller may read, or an object
/// received for the draft's model (see [`lfs`]).
struct Source {
    size: u64,
    /// Its format where it is now (an object's: as its content shows).
    format: ModelFormat,
    /// How its report read it, and under which rules.
    read_as: Declared,
    inspection: Option<serde_json::Value>,
    rules: Option<String>,
    object: bool,
}

impl Source {
    fn of_file(file: &version_file::Model) -> AppResult<Self> {
        Ok(Self {
            size: u64::try_from(file.size_bytes).map_err(AppError::internal)?,
            format: file.format,
            read_as: version_upload::declared(file.format, &file.path),
            inspection: file.inspection.clone(),
            rules: file.inspection_rules.clone(),
            object: false,
        })
    }

    fn of_object(object: &lfs_object::Model) -> AppResult<Self> {
        Ok(Self {
            size: u64::try_from(object.size_bytes).map_err(AppError::internal)?,
            format: object.format,
            read_as: version_upload::declared(object.format, ""),
            inspection: object.inspection.clone(),
            rules: object.inspection_rules.clone(),
            object: true,
        })
    }
}

/// A file to put in a draft, found by hash.
struct Reused {
    path: FilePath,
    sha256: String,
    size: u64,
    format: ModelFormat,
    report: Report,
}

/// The files `reuse` names, each found among those the caller may read or the objects received
/// for the model, with its format and verdict at its new path (inspected again when the path
/// changes how it is read, or the rules changed).
async fn reused_files(
    state: &AppState,
    viewer: &Viewer,
    model_id: Uuid,
    reuse: &[Reuse],
) -> AppResult<Vec<Reused>> {
    if reuse.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<String> = reuse
        .iter()
        .map(|r| r.sha256.trim().to_lowercase())
        .collect();
    let mut known: HashMap<String, Source> = HashMap::new();
    for file in readable(state, viewer, &hashes).await? {
        known.insert(file.sha256.clone(), Source::of_file(&file)?);
    }
    let missing: Vec<String> = hashes
        .iter()
        .filter(|h| !known.contains_key(*h))
        .cloned()
        .collect();
    for object in lfs::received(state, model_id, &missing).await?.values() {
        known.insert(object.sha256.clone(), Source::of_object(object)?);
    }
    let mut found = Vec::with_capacity(reuse.len());
    for (entry, sha256) in reuse.iter().zip(&hashes) {
        let Some(source) = known.get(sha256) else {
            return Err(AppError::bad_input(
                "reuse",
                format!(
                    "`{}`: no file you can read has SHA-256 {sha256}; upload it",
                    entry.path
                ),
            ));
        };
        // An object's format is told again with its name (`.keras`, `.onnx`, `.joblib`…).
        let format = if source.object {
            let head = head_of(state, sha256, source.size).await?;
            format::detect(&head, source.size, Some(entry.path.file_name()))
        } else {
            source.format
        };
        let declared = version_upload::declared(format, entry.path.as_str());
        let same_reading = declared == source.read_as
            && source.rules.as_deref() == Some(state.inspector.fingerprint());
        let report = match gate::stored_report(source.inspection.as_ref()) {
            Some(report) if same_reading => report,
            _ => {
                let copy = state
                    .blobs
                    .blob_copy(sha256)
                    .await
                    .map_err(AppError::internal)?;
                state.inspector.inspect(copy, source.size, declared).await
            }
        };
        found.push(Reused {
            path: entry.path.clone(),
            sha256: sha256.clone(),
            size: source.size,
            format,
            report,
        });
    }
    Ok(found)
}

/// The first bytes of a stored blob, for format detection.
async fn head_of(state: &AppState, sha256: &str, size: u64) -> AppResult<Vec<u8>> {
    let end = std::cmp::min(size, crate::storage::HEAD_BYTES as u64);
    let mut bytes = state
        .blobs
        .read(sha256, Some(0..end))
        .await
        .map_err(AppError::internal)?;
    let mut head = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut bytes).await {
        head.extend_from_slice(&chunk.map_err(AppError::internal)?);
    }
    Ok(head)
}

/// One file to put in a draft.
struct DraftEntry<'a> {
    path: &'a FilePath,
    format: ModelFormat,
    size: u64,
    sha256: &'a str,
    status: InspectionStatus,
    report: serde_json::Value,
    rules: &'a str,
}

/// Puts a file in a draft, replacing what the draft had at that path.
async fn put_file(
    txn: &DatabaseTransaction,
    draft_id: Uuid,
    entry: DraftEntry<'_>,
) -> AppResult<Option<String>> {
    let replaced = draft_file::Entity::find()
        .filter(draft_file::Column::DraftId.eq(draft_id))
        .filter(draft_file::Column::PathKey.eq(entry.path.case_key()))
        .one(txn)
        .await?;
    if let Some(old) = &replaced {
        draft_file::Entity::delete_by_id(old.id).exec(txn).await?;
    }
    draft_file::ActiveModel {
        id: Set(Uuid::now_v7()),
        draft_id: Set(draft_id),
        path: Set(entry.path.as_str().to_owned()),
        path_key: Set(entry.path.case_key()),
        format: Set(entry.format),
        size_bytes: Set(i64::try_from(entry.size).map_err(AppError::internal)?),
        sha256: Set(entry.sha256.to_owned()),
        inspection_status: Set(entry.status),
        inspection: Set(Some(entry.report)),
        inspection_rules: Set(Some(entry.rules.to_owned())),
        created_at: Set(super::now()),
    }
    .insert(txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict(format!(
            "`{}` was added to the draft by another request at the same time; add it again",
            entry.path
        )),
        _ => e.into(),
    })?;
    Ok(replaced.map(|old| old.sha256))
}

/// Moves a draft's expiry on after a change.
async fn touch(state: &AppState, txn: &DatabaseTransaction, draft_id: Uuid) -> AppResult<()> {
    version_draft::Entity::update_many()
        .col_expr(
            version_draft::Column::ExpiresAt,
            Expr::value(expiry(state)?),
        )
        .filter(version_draft::Column::Id.eq(draft_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// A draft's files, by path.
pub async fn files_of<C: ConnectionTrait>(
    db: &C,
    draft_id: Uuid,
) -> AppResult<Vec<draft_file::Model>> {
    Ok(draft_file::Entity::find()
        .filter(draft_file::Column::DraftId.eq(draft_id))
        .order_by_asc(draft_file::Column::Path)
        .all(db)
        .await?)
}

/// Makes the draft a version, in one transaction: the version with all its files appears at
/// once, and the draft is gone. Its paths, count and size are checked together first.
pub async fn commit(
    state: &AppState,
    viewer: &Viewer,
    draft_id: Uuid,
) -> AppResult<model_version::Model> {
    let (draft, target) = find_for_edit(state, viewer, draft_id).await?;
    // What the files say together is read before the transaction (it reads blobs), and holds
    // only if the draft's files are still these inside it.
    let before = files_of(&state.db, draft.id).await?;
    let (report, facts) = version_report(state, &before).await?;
    let txn = super::begin_write(state).await?;
    // Blobs first, in hash order, then the draft: the order additions take them in.
    let hashes: BTreeSet<&str> = before.iter().map(|f| f.sha256.as_str()).collect();
    for sha256 in hashes {
        blobs::lock(&txn, sha256).await?;
    }
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Files being added now are in, or wait until the draft is gone.
        version_draft::Entity::find_by_id(draft.id)
            .lock_exclusive()
            .one(&txn)
            .await?;
    }
    let files = files_of(&txn, draft.id).await?;
    // Whoever deletes the draft commits it: a second commit finds nothing.
    let taken = version_draft::Entity::delete_many()
        .filter(version_draft::Column::Id.eq(draft.id))
        .exec(&txn)
        .await?;
    if taken.rows_affected == 0 {
        return Err(AppError::NotFound("draft"));
    }
    let same = |a: &[draft_file::Model], b: &[draft_file::Model]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| a.path == b.path && a.sha256 == b.sha256)
    };
    if !same(&before, &files) {
        return Err(AppError::Conflict(
            "files were added to the draft while it was being committed; commit it again".into(),
        ));
    }
    let version = write_version(state, &txn, &draft, &target, &files, &report, &facts).await?;
    super::commit_change(state, txn).await?;
    tracing::info!(draft_id = %draft.id, version_id = %version.id, files = files.len(), "draft committed");
    Ok(version)
}

/// The report of a version of these draft files, with what they say together.
async fn version_report(
    state: &AppState,
    files: &[draft_file::Model],
) -> AppResult<(Report, Facts)> {
    let reports: Vec<Report> = files
        .iter()
        .map(|f| {
            gate::stored_report(f.inspection.as_ref())
                .unwrap_or_else(|| Report::failed("the stored report cannot be read"))
        })
        .collect();
    let mut facts_of = Vec::with_capacity(files.len());
    for (file, report) in files.iter().zip(&reports) {
        let size = u64::try_from(file.size_bytes).map_err(AppError::internal)?;
        let copy = state.blobs.blob_copy(&file.sha256);
        facts_of.push(FactFile {
            path: &file.path,
            size,
            report,
            bytes: version_facts::read_if_fact(&file.path, size, copy).await?,
        });
    }
    Ok(version_upload::version_report(&facts_of))
}

/// Writes the draft's version in `txn`, which holds the locks of the draft's blobs.
async fn write_version(
    state: &AppState,
    txn: &DatabaseTransaction,
    draft: &version_draft::Model,
    target: &ModelEdit<'_>,
    files: &[draft_file::Model],
    report: &Report,
    facts: &Facts,
) -> AppResult<model_version::Model> {
    if files.is_empty() {
        return Err(AppError::bad_input("draftId", "the draft has no files"));
    }
    let most = state.config.max_files_per_version;
    if files.len() > most {
        return Err(AppError::bad_input(
            "draftId",
            format!(
                "at most {most} files per version; the draft has {}",
                files.len()
            ),
        ));
    }
    let paths: Vec<FilePath> = files
        .iter()
        .map(|f| FilePath::parse("files", &f.path))
        .collect::<AppResult<_>>()?;
    file_path::check_set("files", &paths)?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| u64::try_from(f.size_bytes).map_err(AppError::internal))
        .collect::<AppResult<_>>()?;
    let contents = Contents::of(
        version_upload::main_format(
            draft.format,
            files.iter().map(|f| f.format).zip(sizes.iter().copied()),
        )?,
        None,
        files
            .iter()
            .zip(&sizes)
            .map(|(f, size)| (f.path.as_str(), f.sha256.as_str(), *size)),
    );
    if contents.size > state.config.max_version_bytes {
        return Err(AppError::bad_input(
            "draftId",
            format!(
                "the files come to more than {} bytes",
                state.config.max_version_bytes
            ),
        ));
    }
    let model_id = draft.model_id;
    if let Some(why) = gate::hold_reason(report)
        && state.config.unsafe_uploads == crate::config::UnsafeUploads::Reject
    {
        return Err(AppError::bad_input(
            "draftId",
            format!("the inspection holds this version: {why}; this server refuses such uploads"),
        ));
    }
    if let Some(why) = gate::hold_reason(report)
        && is_listed_locked(txn, model_id).await?
    {
        return Err(AppError::Conflict(format!(
            "the inspection holds this version ({why}); a public or pending model cannot take it"
        )));
    }
    let input = NewVersion {
        version: draft.version.clone(),
        format: draft.format,
        changelog: draft.changelog.clone(),
        metadata: Some(draft.metadata.clone()),
        performance_metrics: Some(draft.performance_metrics.clone()),
    };
    let mut row = versions::version_row(model_id, target.actor(), input, &contents)?;
    versions::record_inspection(state, &mut row, report);
    versions::record_facts(&mut row, facts);
    let version = row
        .insert(txn)
        .await
        .map_err(|e| versions::version_conflict(e, &draft.version))?;
    let now = super::now();
    for file in files {
        version_file::ActiveModel {
            id: Set(Uuid::now_v7()),
            version_id: Set(version.id),
            path: Set(file.path.clone()),
            path_key: Set(file.path_key.clone()),
            format: Set(file.format),
            size_bytes: Set(file.size_bytes),
            sha256: Set(file.sha256.clone()),
            inspection_status: Set(file.inspection_status),
            inspection: Set(file.inspection.clone()),
            inspection_rules: Set(file.inspection_rules.clone()),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
    }
    let model = refresh_current_version(txn, model_id).await?;
    super::events::version_stored(txn, &model, &version, target.actor()).await?;
    audit::record(
        txn,
        Some(target.actor()),
        "version_committed",
        Subject::Version(version.id),
        None,
        Some(serde_json::json!({ "draft_id": draft.id, "files": files.len() })),
    )
    .await?;
    Ok(version)
}

/// Gives a draft up: it and the bytes only it used are gone.
pub async fn discard(state: &AppState, viewer: &Viewer, draft_id: Uuid) -> AppResult<()> {
    let (draft, _target) = find_for_edit(state, viewer, draft_id).await?;
    remove(state, &[draft.id], false).await.map(|_| ())
}

/// Removes drafts (only those expired by now, with `expired_only`) and releases the blobs only
/// they used.
async fn remove(state: &AppState, drafts: &[Uuid], expired_only: bool) -> AppResult<u64> {
    if drafts.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<String> = draft_file::Entity::find()
        .select_only()
        .column(draft_file::Column::Sha256)
        .distinct()
        .filter(draft_file::Column::DraftId.is_in(drafts.iter().copied()))
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut delete = version_draft::Entity::delete_many()
        .filter(version_draft::Column::Id.is_in(drafts.iter().copied()));
    if expired_only {
        // A draft changed since it was found expired lives on.
        delete = delete.filter(version_draft::Column::ExpiresAt.lte(Utc::now()));
    }
    let removed = delete.exec(&state.db).await?.rows_affected;
    state.changes.bump();
    for sha256 in hashes {
        blobs::release(state, &sha256).await;
    }
    Ok(removed)
}

/// The distinct hashes of the files in a model's drafts (to release once the model is gone).
pub(super) async fn file_hashes_of_model<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
) -> AppResult<Vec<String>> {
    let drafts = Query::select()
        .column(version_draft::Column::Id)
        .from(version_draft::Entity)
        .and_where(Expr::col(version_draft::Column::ModelId).eq(model_id))
        .to_owned();
    Ok(draft_file::Entity::find()
        .select_only()
        .column(draft_file::Column::Sha256)
        .distinct()
        .filter(draft_file::Column::DraftId.in_subquery(drafts))
        .into_tuple()
        .all(db)
        .await?)
}

/// Removes every draft past its expiry (run by `gc`); returns how many.
pub async fn expire(state: &AppState) -> AppResult<u64> {
    let expired: Vec<Uuid> = version_draft::Entity::find()
        .select_only()
        .column(version_draft::Column::Id)
        .filter(version_draft::Column::ExpiresAt.lte(Utc::now()))
        .into_tuple()
        .all(&state.db)
        .await?;
    remove(state, &expired, true).await
}

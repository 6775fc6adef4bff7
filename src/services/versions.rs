//! Versions: creating them from uploaded files (stored by [`version_upload`]), finding and
//! deleting them, and which one is a model's current version.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, NotSet,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, sea_query::Expr,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    audit::{self, Subject},
    blobs, gate,
    lineage::Lineage,
    models::write_tags,
    version_facts::Facts,
    version_upload::{self, Batch, Contents, Files},
};
use modelhub_inspect::Report;

use crate::{
    auth::{Scope, Viewer},
    domain::{hub_name, model as rules, version::Version},
    entities::{
        enums::{ApprovalStatus, InspectionStatus, ModelFormat, Visibility},
        model, model_version, version_file,
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// A new version's metadata.
#[derive(Debug, Default)]
pub struct NewVersion {
    pub version: String,
    /// Checked against the file; detected from it when `None`.
    pub format: Option<ModelFormat>,
    pub changelog: Option<String>,
    pub metadata: Option<Value>,
    pub performance_metrics: Option<Value>,
}

/// A new model with its first version.
#[derive(Debug, Default)]
pub struct NewModel {
    pub name: String,
    pub description: Option<String>,
    pub framework: String,
    pub task_type: Option<String>,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub lineage: Lineage,
    pub version: NewVersion,
}

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Maps a unique violation on a model row to a `CONFLICT` about its name.
pub(super) fn name_conflict(err: DbErr, name: &str) -> AppError {
    if is_unique_violation(&err) {
        AppError::Conflict(format!("name: you already have a model named `{name}`"))
    } else {
        err.into()
    }
}

pub(super) fn version_conflict(err: DbErr, version: &str) -> AppError {
    if is_unique_violation(&err) {
        AppError::Conflict(format!("version: {version} already exists for this model"))
    } else {
        err.into()
    }
}

/// Validates a new version's metadata and builds its row for its files (not yet inserted).
pub(super) fn version_row(
    model_id: Uuid,
    uploader: Uuid,
    input: NewVersion,
    contents: &Contents,
) -> AppResult<model_version::ActiveModel> {
    let version = Version::parse("input.version", &input.version)?;
    let id = Uuid::now_v7();
    Ok(model_version::ActiveModel {
        id: Set(id),
        model_id: Set(model_id),
        version: Set(version.label().to_owned()),
        version_key: Set(version.sort_key()),
        format: Set(contents.format),
        size_bytes: Set(i64::try_from(contents.size).map_err(AppError::internal)?),
        sha256: Set(contents.sha256.clone()),
        filename: Set(contents.filename.clone()),
        changelog: Set(rules::text("input.changelog", input.changelog.as_deref())?),
        metadata: Set(rules::json_object("input.metadata", input.metadata)?),
        performance_metrics: Set(rules::json_object(
            "input.performanceMetrics",
            input.performance_metrics,
        )?),
        downloads: Set(0),
        uploaded_by: Set(uploader),
        inspection_status: Set(InspectionStatus::Pending),
        inspection: Set(None),
        withdrawn_at: Set(None),
        withdrawn_reason: Set(None),
        created_at: Set(super::now()),
        released_at: Set(None),
        released_by: Set(None),
        release_reason: Set(None),
        inspection_rules: Set(None),
        digest: Set(contents.digest.clone()),
        file_count: Set(i32::try_from(contents.file_count).map_err(AppError::internal)?),
        readme: Set(None),
        commit_id: Set(hub_name::commit_id(id, &contents.digest)),
    })
}

/// Puts what the files say together on a version row: the model card's text, and its front
/// matter as `metadata.card` (unless the uploader gave a `card` of their own).
pub(super) fn record_facts(row: &mut model_version::ActiveModel, facts: &Facts) {
    row.readme = Set(facts.readme.clone());
    if let (Some(card), Value::Object(metadata)) = (&facts.card, row.metadata.as_ref())
        && !metadata.contains_key("card")
    {
        let mut metadata = metadata.clone();
        metadata.insert("card".into(), card.clone());
        row.metadata = Set(Value::Object(metadata));
    }
}

/// Puts an inspection report, and the rules it was made under, on a version row.
pub(super) fn record_inspection(
    state: &AppState,
    row: &mut model_version::ActiveModel,
    report: &Report,
) {
    row.inspection_rules = Set(Some(state.inspector.fingerprint().to_owned()));
    row.inspection_status = Set(report.status().into());
    row.inspection = Set(Some(report.to_json()));
}

/// listed (pending or approved) model, that the inspection gate released. Returns the model as it
/// is now.
pub(super) async fn refresh_current_version<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
) -> AppResult<model::Model> {
    let model = model::Entity::find_by_id(model_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("model"))?;
    let mut newest = model_version::Entity::find()
        .select_only()
        .column(model_version::Column::Id)
        .filter(model_version::Column::ModelId.eq(model_id))
        .filter(model_version::Column::WithdrawnAt.is_null())
        .order_by_desc(model_version::Column::VersionKey);
    if is_listed(model.approval_status) {
        newest = newest.filter(gate::released_condition());
    }
    let newest: Option<Uuid> = newest.into_tuple().one(db).await?;
    let now = super::now();
    model::Entity::update_many()
        .col_expr(model::Column::CurrentVersionId, Expr::value(newest))
        .col_expr(model::Column::UpdatedAt, Expr::value(now))
        .filter(model::Column::Id.eq(model_id))
        .exec(db)
        .await?;
    Ok(model::Model {
        current_version_id: newest,
        updated_at: now,
        ..model
    })
}

/// Whether a model in this state is listed (public, or waiting to be): the inspection gate
/// keeps its held versions out.
pub(super) fn is_listed(status: ApprovalStatus) -> bool {
    matches!(status, ApprovalStatus::Approved | ApprovalStatus::Pending)
}

/// Whether the model is listed, read under its row's lock in a transaction that has written
/// already (on SQLite that write holds the database's write lock): a publication deciding at
/// the same time either sees what this transaction adds, or is seen by this check.
pub(super) async fn is_listed_locked<C: ConnectionTrait>(
    txn: &C,
    model_id: Uuid,
) -> AppResult<bool> {
    let query = model::Entity::find_by_id(model_id);
    let query = if txn.get_database_backend() == DatabaseBackend::Postgres {
        query.lock_exclusive()
    } else {
        query
    };
    Ok(query
        .one(txn)
        .await?
        .is_some_and(|m| is_listed(m.approval_status)))
}

/// A new model's row: private, a draft, with no versions, description, task, tags or license
/// yet, and its slug left for the transaction that inserts it to choose.
pub(super) fn model_row(owner_id: Uuid, name: &str, framework: String) -> model::ActiveModel {
    let now = super::now();
    model::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner_id),
        name: Set(name.to_owned()),
        slug: NotSet,
        description: Set(None),
        framework: Set(framework),
        task_type: Set(None),
        tags: Set(serde_json::json!([])),
        license: Set(None),
        visibility: Set(Visibility::Private),
        approval_status: Set(ApprovalStatus::Draft),
        review_note: Set(None),
        current_version_id: Set(None),
        base_model_id: Set(None),
        base_model_ref: Set(None),
        base_relation: Set(None),
        datasets: Set(serde_json::json!([])),
        training_run: Set(None),
        downloads: Set(0),
        submitted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Creates a model and its first version from uploaded files (the caller needs WRITE).
pub async fn create_model(
    state: &AppState,
    viewer: &Viewer,
    input: NewModel,
    files: Files,
) -> AppResult<model::Model> {
    let caller = viewer.require(Scope::Write)?;
    let name = rules::name("input.name", &input.name)?;
    let tags = rules::tags("input.tags", &input.tags)?;
    let mut row = model_row(
        caller.user.id,
        &name,
        rules::keyword("input.framework", &input.framework)?,
    );
    row.description = Set(rules::text(
        "input.description",
        input.description.as_deref(),
    )?);
    row.task_type = Set(rules::optional_keyword(
        "input.taskType",
        input.task_type.as_deref(),
    )?);
    row.tags = Set(serde_json::json!(tags));
    row.license = Set(rules::optional_keyword(
        "input.license",
        input.license.as_deref(),
    )?);
    super::lineage::apply(
        &state.db,
        |m| access::can_view(viewer, m),
        &mut row,
        &input.lineage,
    )
    .await?;
    let model_id = *row.id.as_ref();
    let label = input.version.version.clone();
    let plan = version_upload::plan(state, input.version.format, files)?;
    let mut version = version_row(model_id, caller.user.id, input.version, &plan.contents())?;
    let model = version_upload::store(state, &plan, Batch::Version, async |txn, found| {
        let tags = card_defaults(&mut row, tags, &found.facts);
        super::lineage::card_defaults(state, txn, viewer, &mut row, &input.lineage, &found.facts)
            .await?;
        row.slug = Set(super::hub::free_slug(txn, caller.user.id, &name).await?);
        row.insert(txn).await.map_err(|e| name_conflict(e, &name))?;
        write_tags(txn, model_id, &tags).await?;
        record_inspection(state, &mut version, &found.version);
        record_facts(&mut version, &found.facts);
        let version = version
            .insert(txn)
            .await
            .map_err(|e| version_conflict(e, &label))?;
        version_upload::insert_files(txn, state, version.id, &plan, &found.files).await?;
        refresh_current_version(txn, model_id).await?;
        let model = model::Entity::find_by_id(model_id)
            .one(txn)
            .await?
            .ok_or(AppError::NotFound("model"))?;
        super::events::version_stored(txn, &model, &version, caller.user.id).await?;
        Ok(model)
    })
    .await?;
    tracing::info!(model_id = %model.id, owner_id = %caller.user.id, files = plan.files.len(), size = plan.size(), "model created");
    Ok(model)
}

/// Fills a new model's license, task and tags, where its uploader gave none, from the model
/// card of its first version (values that are not valid for those fields are left out).
/// Returns the tags.
pub(super) fn card_defaults(
    row: &mut model::ActiveModel,
    tags: Vec<String>,
    facts: &Facts,
) -> Vec<String> {
    if row.license.as_ref().is_none()
        && let Some(license) = facts.card_text("license")
        && let Ok(license) = rules::optional_keyword("license", Some(&license))
    {
        row.license = Set(license);
    }
    if row.task_type.as_ref().is_none()
        && let Some(task) = facts.card_text("pipeline_tag")
        && let Ok(task) = rules::optional_keyword("taskType", Some(&task))
    {
        row.task_type = Set(task);
    }
    if !tags.is_empty() {
        return tags;
    }
    match rules::tags("tags", &facts.card_tags()) {
        Ok(card) => {
            row.tags = Set(serde_json::json!(card));
            card
        }
        Err(_) => tags,
    }
}

/// Adds a version to a model (owner or administrator, with WRITE).
pub async fn create_version(
    state: &AppState,
    target: ModelEdit<'_>,
    input: NewVersion,
    files: Files,
) -> AppResult<model_version::Model> {
    let model = target.model();
    let label = input.version.clone();
    let plan = version_upload::plan(state, input.format, files)?;
    let mut row = version_row(model.id, target.actor(), input, &plan.contents())?;
    let version = version_upload::store(state, &plan, Batch::Version, async |txn, found| {
        if let Some(why) = gate::hold_reason(&found.version)
            && is_listed_locked(txn, model.id).await?
        {
            return Err(AppError::Conflict(format!(
                "the inspection holds this file ({why}); a public or pending model cannot take it"
            )));
        }
        record_inspection(state, &mut row, &found.version);
        record_facts(&mut row, &found.facts);
        let version = row
            .insert(txn)
            .await
            .map_err(|e| version_conflict(e, &label))?;
        version_upload::insert_files(txn, state, version.id, &plan, &found.files).await?;
        let model = refresh_current_version(txn, model.id).await?;
        super::events::version_stored(txn, &model, &version, target.actor()).await?;
        Ok(version)
    })
    .await?;
    tracing::info!(model_id = %model.id, version_id = %version.id, digest = %version.digest, files = version.file_count, size = version.size_bytes, "version created");
    Ok(version)
}

/// What an upload request would store: a new model, or a version of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTarget {
    NewModel,
    NewVersion(Uuid),
    DraftFiles(Uuid),
}

/// Authorizes an upload before any of its files is read: the caller needs WRITE, may change
/// every model it targets, and has budget for every version it would store (one unit of the
/// upload rate limit each, whichever file they share, taken at once or not at all).
pub async fn authorize_upload(
    state: &AppState,
    viewer: &Viewer,
    targets: &[UploadTarget],
) -> AppResult<()> {
    let caller = viewer.require(Scope::Write)?;
    for target in targets {
        match target {
            UploadTarget::NewModel => {}
            UploadTarget::NewVersion(model_id) => {
                super::models::find_for_edit(state, viewer, *model_id).await?;
            }
            UploadTarget::DraftFiles(draft_id) => {
                super::drafts::find_for_edit(state, viewer, *draft_id).await?;
            }
        }
    }
    let cost = u32::try_from(targets.len().max(1)).unwrap_or(u32::MAX);
    state
        .limiter
        .check_many(
            super::rate_limit::Action::Upload,
            &caller.user.id.to_string(),
            cost,
        )
        .await
}

/// The version with this id, if the viewer may see its model.
pub async fn find(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<Option<(model_version::Model, model::Model)>> {
    let Some(found) = read(state, id).await? else {
        return Ok(None);
    };
    let (version, model) = std::sync::Arc::unwrap_or_clone(found);
    Ok(access::can_view(viewer, &model).then_some((version, model)))
}

/// The same as [`find`], from the version cache where it can be (for downloads: a version's
/// counts there may lag by the cache's time to live, nothing else does).
pub async fn find_cached(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<Option<(model_version::Model, model::Model)>> {
    let generation = state.changes.current();
    let found = match state.versions.as_ref().and_then(|c| c.get(&id, generation)) {
        Some(found) => found,
        None => {
            let Some(found) = read(state, id).await? else {
                return Ok(None);
            };
            if let Some(cache) = &state.versions {
                cache.put(id, generation, found.clone());
            }
            found
        }
    };
    let (version, model) = found.as_ref();
    Ok(access::can_view(viewer, model).then(|| (version.clone(), model.clone())))
}

/// A version and its model, from the database.
pub(super) async fn read(
    state: &AppState,
    id: Uuid,
) -> AppResult<Option<crate::state::FoundVersion>> {
    let Some(version) = model_version::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(None);
    };
    let model = model::Entity::find_by_id(version.model_id)
        .one(&state.db)
        .await?;
    Ok(model.map(|model| std::sync::Arc::new((version, model))))
}

/// Deletes a version (owner or administrator) and its file if no other version uses it; the
/// model's current version moves to the newest remaining one. Refused while an alias points to
/// it.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<()> {
    let (version, model) = find(state, viewer, id)
        .await?
        .ok_or(AppError::NotFound("model version"))?;
    let target = access::edit(viewer, Some(model))?;
    let model = target.model();
    let txn = super::begin_write(state).await?;
    super::aliases::ensure_unaliased(&txn, version.id).await?;
    let hashes = file_hashes(&txn, [version.id]).await?;
    model_version::Entity::delete_by_id(version.id)
        .exec(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            // An alias set on it meanwhile, which the check above could not see yet.
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => AppError::Conflict(
                "an alias points to this version: move or remove it first".into(),
            ),
            _ => e.into(),
        })?;
    refresh_current_version(&txn, model.id).await?;
    let details = serde_json::json!({ "model_id": model.id, "version": version.version });
    audit::record(
        &txn,
        Some(target.actor()),
        "version_deleted",
        Subject::Version(version.id),
        None,
        Some(details),
    )
    .await?;
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %model.id, version_id = %version.id, "version deleted");
    for sha256 in hashes {
        blobs::release(state, &sha256).await;
    }
    Ok(())
}

/// The distinct hashes of the files of these versions (whose blobs to release once they are
/// deleted).
pub(super) async fn file_hashes<C: ConnectionTrait>(
    db: &C,
    versions: impl IntoIterator<Item = Uuid>,
) -> AppResult<Vec<String>> {
    Ok(version_file::Entity::find()
        .select_only()
        .column(version_file::Column::Sha256)
        .distinct()
        .filter(version_file::Column::VersionId.is_in(versions))
        .into_tuple()
        .all(db)
        .await?)
}

/// The versions of each of `models`, newest first: one statement.
pub async fn of_models<C: ConnectionTrait>(
    db: &C,
    models: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<model_version::Model>>, DbErr> {
    let rows = model_version::Entity::find()
        .filter(model_version::Column::ModelId.is_in(models.iter().copied()))
        .order_by_desc(model_version::Column::VersionKey)
        .all(db)
        .await?;
    let mut grouped: std::collections::HashMap<Uuid, Vec<model_version::Model>> =
        models.iter().map(|model| (*model, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.model_id).or_default().push(row);
    }
    Ok(grouped)
}

/// Pages of several versions' files, by path, that start after `after` and whose paths start
/// with `prefix`: up to `limit` of each, in one statement (one indexed search per version,
/// joined with `UNION ALL`).
pub async fn files_of_versions(
    state: &AppState,
    versions: &[Uuid],
    limit: u64,
    after: Option<&str>,
    prefix: Option<&str>,
) -> Result<Vec<version_file::Model>, DbErr> {
    let pages: Vec<_> = versions
        .iter()
        .map(|version| {
            let mut rows =
                version_file::Entity::find().filter(version_file::Column::VersionId.eq(*version));
            if let Some(after) = after {
                rows = rows.filter(version_file::Column::Path.gt(after));
            }
            if let Some(prefix) = prefix {
                rows = rows.filter(path_starts_with(prefix));
            }
            rows.order_by_asc(version_file::Column::Path).limit(limit)
        })
        .collect();
    let mut rows = super::pagination::pages_in_one(&state.db, pages).await?;
    // The union's order is not its parts'.
    rows.sort_by(|a, b| (a.version_id, &a.path).cmp(&(b.version_id, &b.path)));
    Ok(rows)
}

/// The condition "the path starts with `prefix`" (byte for byte, unlike `LIKE`).
fn path_starts_with(prefix: &str) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{ExprTrait, Func};
    // `substr` takes 32-bit integers on PostgreSQL; paths are at most 1,024 bytes.
    let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    Expr::expr(
        Func::cust("substr")
            .arg(Expr::col(version_file::Column::Path))
            .arg(1)
            .arg(chars),
    )
    .eq(prefix)
}

/// How many files of each of `versions` have paths starting with `prefix`: one statement.
pub async fn count_files(
    state: &AppState,
    versions: &[Uuid],
    prefix: &str,
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    version_file::Entity::find()
        .select_only()
        .column(version_file::Column::VersionId)
        .column_as(version_file::Column::Id.count(), "files")
        .filter(version_file::Column::VersionId.is_in(versions.iter().copied()))
        .filter(path_starts_with(prefix))
        .group_by(version_file::Column::VersionId)
        .into_tuple()
        .all(&state.db)
        .await
}

/// The files at `(version, path)`, in one statement.
pub async fn files_at(
    state: &AppState,
    keys: &[(Uuid, String)],
) -> Result<Vec<version_file::Model>, DbErr> {
    let rows = version_file::Entity::find()
        .filter(version_file::Column::VersionId.is_in(keys.iter().map(|(v, _)| *v)))
        .filter(version_file::Column::Path.is_in(keys.iter().map(|(_, p)| p.clone())))
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            keys.iter()
                .any(|(v, p)| *v == row.version_id && *p == row.path)
        })
        .collect())
}

//! Models and versions in GraphQL: the types, the queries (lists, lookups) and the mutations
//! (uploads, changes, deletions).

use std::sync::Arc;

use async_graphql::{
    Context, ID, InputObject, Json, Object, Result, SimpleObject,
    connection::{Connection, Edge},
    dataloader::Loader,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    RequestContext,
    accounts::User,
    aliases::{AliasMove, ModelAlias},
    context::loaders,
    loaders::{Cached, ChildPage, FilePage, LoadError, Loaders},
    scalars::{BigInt, parse_id},
    upload::{FileUpload, Upload, files_of, forget},
};
use crate::{
    domain::lineage::Relation,
    entities::{
        alias_move,
        enums::{ApprovalStatus, ModelFormat, Visibility},
        model, model_version, version_file,
    },
    error::AppError,
    services::{
        access, admin, downloads,
        lineage::{BaseModel, Lineage},
        models::{self, ModelChanges, ModelFilter, ModelSortField, SortDirection},
        pagination::{Cursor, Page, SortValue, page_size},
        versions::{self, NewModel, NewVersion},
    },
};

/// The total size of a list, beside its page.
#[derive(SimpleObject)]
pub struct ListTotal {
    /// How many items the whole list has.
    total_count: BigInt,
}

/// A page of a list, as a Relay connection.
pub type ConnectionOf<N> = Connection<String, N, ListTotal>;

/// Turns a service page into a connection.
pub fn connection<T, N: async_graphql::OutputType>(
    page: Page<T>,
    node: impl Fn(T) -> N,
) -> ConnectionOf<N> {
    let mut connection = Connection::with_additional_fields(
        page.has_previous,
        page.has_next,
        ListTotal {
            total_count: BigInt(page.total.unwrap_or_default() as i64),
        },
    );
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, item)| Edge::new(cursor.encode(), node(item))),
    );
    connection
}

pub(super) fn load_error(err: std::sync::Arc<sea_orm::DbErr>) -> AppError {
    AppError::internal(err.to_string())
}

/// A page of what hangs off `parent`, newest first, through loaders that batch it with the
/// same page of every sibling in a list (and its total, when asked for).
pub(super) async fn newest_page<T, R, C>(
    ctx: &Context<'_>,
    rows: &Cached<R>,
    counts: &Cached<C>,
    parent: Uuid,
    (first, after): (Option<i32>, Option<String>),
    id_of: impl Fn(&T) -> Uuid,
) -> Result<Page<T>>
where
    T: Clone + Send + Sync + 'static,
    R: Loader<ChildPage, Value = Vec<T>, Error = LoadError>,
    C: Loader<Uuid, Value = u64, Error = LoadError>,
{
    let size = page_size(first)?;
    let after = match after.map(|a| Cursor::decode("after", &a)).transpose()? {
        Some(Cursor {
            value: SortValue::None,
            id,
        }) => Some(id),
        Some(_) => {
            return Err(AppError::bad_input("after", "does not belong to this sort order").into());
        }
        None => None,
    };
    let key = ChildPage {
        parent,
        limit: size as u64 + 1,
        after,
    };
    let want_total = ctx.look_ahead().field("totalCount").exists();
    let (found, total) = tokio::join!(rows.load_one(key), async {
        match want_total {
            true => counts.load_one(parent).await,
            false => Ok(None),
        }
    });
    let found = found.map_err(load_error)?.unwrap_or_default();
    let total = total.map_err(load_error)?;
    Ok(Page::from_rows(
        found,
        size,
        after.is_some(),
        total,
        |row| Cursor {
            value: SortValue::None,
            id: id_of(row),
        },
    ))
}

/// A stored model: its metadata, owner, publication state and versions.
pub struct Model(pub model::Model);

impl Model {
    /// The model's aliases, as loaded for this request.
    async fn loaded_aliases(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::entities::model_alias::Model>> {
        Ok(loaders(ctx)?
            .aliases_of_model
            .load_one(self.0.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default())
    }
}

/// The strings of a JSON array column (tags, datasets).
fn strings(array: &Value) -> Vec<&str> {
    array
        .as_array()
        .map(|all| all.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What a model was made from.
pub struct ModelBase {
    model_id: Option<Uuid>,
    reference: Option<String>,
    relation: Option<Relation>,
}

#[Object(name = "BaseModel")]
impl ModelBase {
    /// The model of this hub it was made from, if the caller may see it.
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        let Some(id) = self.model_id else {
            return Ok(None);
        };
        let model = loaders(ctx)?
            .models
            .load_one(id)
            .await
            .map_err(load_error)?;
        Ok(model
            .filter(|m| access::can_view(ctx.viewer(), m))
            .map(Model))
    }

    /// What it was made from outside this hub (e.g. `meta-llama/Llama-3.1-8B`), or the
    /// `owner/name` of a base model deleted since.
    async fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// How it was made from it.
    async fn relation(&self) -> Option<Relation> {
        self.relation
    }
}

#[Object]
impl Model {
    /// The model's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The display name, unique among its owner's models.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The repository name in the Hugging Face protocol (`owner/slug`): made from the name
    /// when the model was created (letters, digits, `_`, `.` and `-`), unique among its
    /// owner's models, and kept when the model is renamed.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// What the model does.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The ML framework, e.g. `scikit-learn`, `pytorch`.
    async fn framework(&self) -> &str {
        &self.0.framework
    }

    /// The ML task, e.g. `classification`.
    async fn task_type(&self) -> Option<&str> {
        self.0.task_type.as_deref()
    }

    /// Lower-case tags.
    async fn tags(&self) -> Vec<&str> {
        strings(&self.0.tags)
    }

    /// The license, e.g. `mit`.
    async fn license(&self) -> Option<&str> {
        self.0.license.as_deref()
    }

    /// The account that owns the model.
    async fn owner(&self, ctx: &Context<'_>) -> Result<User> {
        let owner = loaders(ctx)?
            .users
            .load_one(self.0.owner_id)
            .await
            .map_err(load_error)?
            .ok_or_else(|| AppError::internal("a model's owner is missing"))?;
        Ok(User::new(owner))
    }

    /// PRIVATE (owner and administrators) or PUBLIC (everyone).
    async fn visibility(&self) -> Visibility {
        self.0.visibility
    }

    /// Where the model stands in the publication workflow.
    async fn approval_status(&self) -> ApprovalStatus {
        self.0.approval_status
    }

    /// The reviewer's note or rejection reason (owner and administrators).
    async fn review_note(&self, ctx: &Context<'_>) -> Option<&str> {
        access::may_read_private(ctx.viewer(), &self.0)
            .then_some(self.0.review_note.as_deref())
            .flatten()
    }

    /// The newest version (highest semver) that is not withdrawn.
    async fn current_version(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        let Some(id) = self.0.current_version_id else {
            return Ok(None);
        };
        let version = loaders(ctx)?
            .versions
            .load_one(id)
            .await
            .map_err(load_error)?;
        Ok(version.map(ModelVersion))
    }

    /// The versions, newest semver first.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<ModelVersion>> {
        let size = page_size(first)?;
        let after = after.map(|a| Cursor::decode("after", &a)).transpose()?;
        let all = loaders(ctx)?
            .versions_of_model
            .load_one(self.0.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default();
        let page = Page::from_sorted(all, size, after.as_ref(), |v| v.id);
        Ok(connection(page, ModelVersion))
    }

    /// One version by its label (`v1.0.0` and `1.0.0` are the same version).
    async fn version(&self, ctx: &Context<'_>, version: String) -> Result<Option<ModelVersion>> {
        let key = crate::domain::version::Version::parse("version", &version)?.sort_key();
        let all = loaders(ctx)?
            .versions_of_model
            .load_one(self.0.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default();
        Ok(all
            .into_iter()
            .find(|v| v.version_key == key)
            .map(ModelVersion))
    }

    /// What the model was made from, when known.
    async fn base_model(&self) -> Option<ModelBase> {
        let model = &self.0;
        (model.base_model_id.is_some() || model.base_model_ref.is_some()).then(|| ModelBase {
            model_id: model.base_model_id,
            reference: model.base_model_ref.clone(),
            relation: model.base_relation.as_deref().and_then(Relation::parse),
        })
    }

    /// The datasets it was trained on (names or links).
    async fn datasets(&self) -> Vec<&str> {
        strings(&self.0.datasets)
    }

    /// A link to its training run.
    async fn training_run(&self) -> Option<&str> {
        self.0.training_run.as_deref()
    }

    /// The models made from this one that the caller may see (fine-tunes, adapters,
    /// quantisations, merges), newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn derivatives(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<Model>> {
        let loaders = loaders(ctx)?;
        let page = newest_page(
            ctx,
            &loaders.derivatives,
            &loaders.derivative_counts,
            self.0.id,
            (first, after),
            |m: &model::Model| m.id,
        )
        .await?;
        Ok(connection(page, Model))
    }

    /// The model's aliases, by name.
    async fn aliases(&self, ctx: &Context<'_>) -> Result<Vec<ModelAlias>> {
        Ok(self
            .loaded_aliases(ctx)
            .await?
            .into_iter()
            .map(ModelAlias)
            .collect())
    }

    /// The alias with this name, if the model has it.
    async fn alias(&self, ctx: &Context<'_>, name: String) -> Result<Option<ModelAlias>> {
        Ok(self
            .loaded_aliases(ctx)
            .await?
            .into_iter()
            .find(|alias| alias.name == name.trim())
            .map(ModelAlias))
    }

    /// Every move of the model's aliases, newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn alias_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<AliasMove>> {
        let loaders = loaders(ctx)?;
        let page = newest_page(
            ctx,
            &loaders.alias_moves,
            &loaders.alias_move_counts,
            self.0.id,
            (first, after),
            |m: &alias_move::Model| m.id,
        )
        .await?;
        Ok(connection(page, AliasMove))
    }

    /// Downloads of all versions.
    async fn downloads(&self) -> BigInt {
        BigInt(self.0.downloads)
    }

    /// Downloads per day over the last `days` days (1–365), oldest first, days without any
    /// included (owner and administrators).
    async fn download_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: i32,
    ) -> Result<Vec<super::admin::DailyCount>> {
        if !access::may_read_private(ctx.viewer(), &self.0) {
            return Err(AppError::Forbidden(
                "download statistics are for the model's owner and administrators".into(),
            )
            .into());
        }
        if !(1..=365).contains(&days) {
            return Err(AppError::bad_input("days", "must be between 1 and 365").into());
        }
        let stats =
            admin::model_downloads_per_day(&ctx.state().db, self.0.id, i64::from(days)).await?;
        Ok(stats.into_iter().map(Into::into).collect())
    }

    /// When publication was last requested.
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.0.submitted_at
    }

    /// When the model was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the model or its versions last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One uploaded file of a model.
pub struct ModelVersion(pub model_version::Model);

#[Object]
impl ModelVersion {
    /// The version's id (also in its download URL).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The model it belongs to.
    async fn model(&self, ctx: &Context<'_>) -> Result<Model> {
        let model = loaders(ctx)?
            .models
            .load_one(self.0.model_id)
            .await
            .map_err(load_error)?;
        // Loaders read rows as they are; whether the caller may see one is the policy's.
        Ok(Model(access::visible(ctx.viewer(), model)?))
    }

    /// The version label, e.g. `v1.0.0`; unique per model, ordered as semver.
    async fn version(&self) -> &str {
        &self.0.version
    }

    /// The names of the model's aliases that point to this version.
    async fn aliases(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        Ok(loaders(ctx)?
            .aliases_of_version
            .load_one(self.0.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default())
    }

    /// The file format (for a version of several files, its main file's: the declared
    /// format, or that of its largest model file).
    async fn format(&self) -> ModelFormat {
        self.0.format
    }

    /// The file size in bytes (for a version of several files, their sum).
    async fn size_bytes(&self) -> BigInt {
        BigInt(self.0.size_bytes)
    }

    /// The model card: the text of the version's root `README.md` (its YAML front matter is
    /// also in `metadata.card`).
    async fn readme(&self) -> Option<&str> {
        self.0.readme.as_deref()
    }

    /// How many files the version has.
    async fn file_count(&self) -> i32 {
        self.0.file_count
    }

    /// The SHA-256 (lower-case hex) of the version's manifest: one line per file, sorted by
    /// path (byte order), each `<sha256> <size> <path>` and a newline. Versions with the same
    /// files at the same paths have the same digest.
    async fn digest(&self) -> &str {
        &self.0.digest
    }

    /// The version's commit id in the Hugging Face protocol (40 hex characters): the first
    /// 40 of the SHA-256 of `"modelhub commit\n<id>\n<digest>\n"`.
    async fn commit_id(&self) -> &str {
        &self.0.commit_id
    }

    /// The version's files by path (byte order), optionally only those whose path starts with
    /// `prefix` (e.g. `tokenizer/`).
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn files(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        prefix: Option<String>,
    ) -> Result<ConnectionOf<ModelFile>> {
        let size = page_size(first)?;
        let after = match after.map(|a| Cursor::decode("after", &a)).transpose()? {
            Some(Cursor {
                value: SortValue::Text(path),
                ..
            }) => Some(path),
            Some(_) => {
                return Err(AppError::bad_input("after", "does not belong to this list").into());
            }
            None => None,
        };
        let prefix = prefix.filter(|p| !p.is_empty());
        let loaders = loaders(ctx)?;
        let key = FilePage {
            version: self.0.id,
            limit: size as u64 + 1,
            after: after.clone(),
            prefix: prefix.clone(),
        };
        let rows = loaders
            .files_of_version
            .load_one(key)
            .await
            .map_err(load_error)?
            .unwrap_or_default();
        // Without a prefix the total is the version's file count, kept on its row.
        let total = match (ctx.look_ahead().field("totalCount").exists(), prefix) {
            (false, _) => None,
            (true, None) => Some(u64::try_from(self.0.file_count).unwrap_or_default()),
            (true, Some(prefix)) => Some(
                loaders
                    .file_counts
                    .load_one((self.0.id, prefix))
                    .await
                    .map_err(load_error)?
                    .unwrap_or_default(),
            ),
        };
        let page = Page::from_rows(rows, size, after.is_some(), total, |f| Cursor {
            value: SortValue::Text(f.path.clone()),
            id: f.id,
        });
        // One copy of the version for the whole page (its metadata and report can be large).
        let version = Arc::new(self.0.clone());
        Ok(connection(page, |file| ModelFile {
            file,
            version: version.clone(),
        }))
    }

    /// The file at `path`, if the version has one there.
    async fn file(&self, ctx: &Context<'_>, path: String) -> Result<Option<ModelFile>> {
        let file = loaders(ctx)?
            .files
            .load_one((self.0.id, path))
            .await
            .map_err(load_error)?;
        Ok(file.map(|file| ModelFile {
            file,
            version: Arc::new(self.0.clone()),
        }))
    }

    /// The file size in megabytes (MiB), as the seed API reported it.
    async fn size_mb(&self) -> f64 {
        (self.0.size_bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
    }

    /// The SHA-256 of the file (lower-case hex); also the download's `ETag`.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }

    /// The name of the uploaded file.
    async fn filename(&self) -> Option<&str> {
        self.0.filename.as_deref()
    }

    /// What changed in this version.
    async fn changelog(&self) -> Option<&str> {
        self.0.changelog.as_deref()
    }

    /// Free-form metadata (parameters, training data…).
    async fn metadata(&self) -> Json<Value> {
        Json(self.0.metadata.clone())
    }

    /// Evaluation results, e.g. `{"accuracy": 0.975}`.
    async fn performance_metrics(&self) -> Json<Value> {
        Json(self.0.performance_metrics.clone())
    }

    /// A signed link to the file that works without an Authorization header, for a limited
    /// time (`MODELHUB_DOWNLOAD_URL_TTL_SECS`).
    async fn download_url(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(downloads::signed_url(
            ctx.state(),
            self.0.id,
            None,
            ctx.viewer(),
        )?)
    }

    /// Downloads of this version.
    async fn downloads(&self) -> BigInt {
        BigInt(self.0.downloads)
    }

    /// Who uploaded it.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let user = loaders(ctx)?
            .users
            .load_one(self.0.uploaded_by)
            .await
            .map_err(load_error)?;
        Ok(user.map(User::new))
    }

    /// When it was uploaded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// What the static inspection of the file found.
    async fn inspection(&self) -> super::inspection::Inspection {
        super::inspection::Inspection::of(&self.0)
    }

    /// Whether the inspection gate holds the file: it downloads only for the model's owner and
    /// administrators, with `acceptRisk=true`, and the model cannot be made public while a
    /// held version is not withdrawn. Released are SAFE files and UNKNOWN or ERROR files an
    /// administrator released with a reason; UNSAFE files are always held.
    async fn held(&self) -> bool {
        !crate::services::gate::is_released(&self.0)
    }

    /// Why the file is held, if it is.
    async fn hold_reason(&self) -> Option<String> {
        crate::services::gate::version_hold_reason(&self.0)
    }

    /// An administrator's release of this held (UNKNOWN or ERROR) version, if there was one.
    async fn release(&self) -> Option<VersionRelease> {
        Some(VersionRelease {
            reason: self.0.release_reason.clone()?,
            released_at: self.0.released_at?,
            released_by: self.0.released_by?,
        })
    }

    /// When an administrator withdrew it (it no longer downloads).
    async fn withdrawn_at(&self) -> Option<DateTime<Utc>> {
        self.0.withdrawn_at
    }

    /// Why it was withdrawn.
    async fn withdrawn_reason(&self) -> Option<&str> {
        self.0.withdrawn_reason.as_deref()
    }
}

/// One file of a version.
pub struct ModelFile {
    file: version_file::Model,
    version: Arc<model_version::Model>,
}

#[Object]
impl ModelFile {
    /// The relative path in the version, `/`-separated.
    async fn path(&self) -> &str {
        &self.file.path
    }

    /// The size in bytes.
    async fn size_bytes(&self) -> BigInt {
        BigInt(self.file.size_bytes)
    }

    /// The SHA-256 (lower-case hex); also the file download's `ETag`.
    async fn sha256(&self) -> &str {
        &self.file.sha256
    }

    /// The format its content and name say.
    async fn format(&self) -> ModelFormat {
        self.file.format
    }

    /// What the static inspection of this file found.
    async fn inspection(&self) -> super::inspection::Inspection {
        super::inspection::Inspection::of_file(&self.file)
    }

    /// Whether the inspection gate holds this file: SAFE files are served, UNKNOWN and ERROR
    /// ones once an administrator released the version, UNSAFE ones only to the model's owner
    /// and administrators with `acceptRisk=true`.
    async fn held(&self) -> bool {
        crate::services::gate::file_hold_reason(&self.version, &self.file).is_some()
    }

    /// Why the file is held, if it is.
    async fn hold_reason(&self) -> Option<String> {
        crate::services::gate::file_hold_reason(&self.version, &self.file)
    }

    /// A signed link to the file (`/files/{versionId}/{path}`) that works without an
    /// Authorization header, for a limited time.
    async fn download_url(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(downloads::signed_url(
            ctx.state(),
            self.version.id,
            Some(&self.file.path),
            ctx.viewer(),
        )?)
    }
}

/// An administrator's release of a version the inspection gate held.
pub struct VersionRelease {
    reason: String,
    released_at: DateTime<Utc>,
    released_by: Uuid,
}

#[Object]
impl VersionRelease {
    /// Why it was released, as the administrator wrote it.
    async fn reason(&self) -> &str {
        &self.reason
    }

    /// When.
    async fn released_at(&self) -> DateTime<Utc> {
        self.released_at
    }

    /// By whom.
    async fn released_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let user = loaders(ctx)?
            .users
            .load_one(self.released_by)
            .await
            .map_err(load_error)?;
        Ok(user.map(User::new))
    }
}

/// A new model and its first version (sent with the file).
#[derive(InputObject)]
pub struct CreateModelInput {
    /// Display name, unique among the owner's models.
    name: String,
    description: Option<String>,
    /// e.g. `scikit-learn`, `pytorch`, `tensorflow`.
    framework: String,
    /// The first version, e.g. `v1.0.0`.
    version: String,
    /// Checked against the file's content; detected from it when omitted.
    format: Option<ModelFormat>,
    /// e.g. `classification`.
    task_type: Option<String>,
    #[graphql(default)]
    tags: Vec<String>,
    license: Option<String>,
    changelog: Option<String>,
    /// A JSON object (at most 64 KiB).
    metadata: Option<Json<Value>>,
    /// A JSON object (at most 64 KiB).
    performance_metrics: Option<Json<Value>>,
    /// What it was made from; else the model card's `base_model`, if any.
    base_model: Option<BaseModelInput>,
    /// The datasets it was trained on (names or links); else the model card's `datasets`.
    datasets: Option<Vec<String>>,
    /// A link to its training run (an experiment tracker's page).
    training_run: Option<String>,
}

/// What a model was made from: one of its `modelId` (a model here you may see) or
/// `reference` (anything else, e.g. `meta-llama/Llama-3.1-8B`); neither clears it.
#[derive(InputObject)]
pub struct BaseModelInput {
    model_id: Option<ID>,
    reference: Option<String>,
    relation: Option<Relation>,
}

/// The lineage an input gives.
fn lineage_of(
    base: Option<BaseModelInput>,
    datasets: Option<Vec<String>>,
    training_run: Option<String>,
) -> Result<Lineage> {
    let base = base
        .map(|base| -> Result<BaseModel> {
            Ok(BaseModel {
                model_id: base
                    .model_id
                    .map(|id| parse_id("baseModel.modelId", &id))
                    .transpose()?,
                reference: base.reference,
                relation: base.relation,
            })
        })
        .transpose()?;
    Ok(Lineage {
        base,
        datasets,
        training_run,
    })
}

/// A new version (sent with the file).
#[derive(InputObject)]
pub struct CreateVersionInput {
    /// e.g. `v1.1.0`; must be new for the model.
    version: String,
    /// Checked against the file's content; detected from it when omitted.
    format: Option<ModelFormat>,
    changelog: Option<String>,
    /// A JSON object (at most 64 KiB).
    metadata: Option<Json<Value>>,
    /// A JSON object (at most 64 KiB).
    performance_metrics: Option<Json<Value>>,
}

impl From<CreateVersionInput> for NewVersion {
    fn from(input: CreateVersionInput) -> Self {
        new_version(
            input.version,
            input.format,
            input.changelog,
            input.metadata,
            input.performance_metrics,
        )
    }
}

/// Changes to a model; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateModelInput {
    name: Option<String>,
    description: Option<String>,
    framework: Option<String>,
    task_type: Option<String>,
    /// Replaces all tags.
    tags: Option<Vec<String>>,
    license: Option<String>,
    base_model: Option<BaseModelInput>,
    /// Replaces the datasets.
    datasets: Option<Vec<String>>,
    /// An empty string clears it.
    training_run: Option<String>,
}

/// What to narrow a model list to; all given conditions apply.
#[derive(InputObject, Default)]
#[graphql(name = "ModelFilter")]
pub struct ModelFilterInput {
    /// Text in the name or description (case-insensitive).
    search: Option<String>,
    framework: Option<String>,
    task_type: Option<String>,
    /// Models with all of these tags.
    #[graphql(default)]
    tags: Vec<String>,
    /// The owner's username.
    owner: Option<String>,
    /// Models made from this model (fine-tunes, adapters, quantisations, merges).
    base_model: Option<ID>,
    license: Option<String>,
    /// Models with a version in this format.
    format: Option<ModelFormat>,
    /// Only models whose current version was inspected and found SAFE.
    #[graphql(default)]
    safe_only: bool,
}

/// The order of a model list.
#[derive(InputObject)]
pub struct ModelSort {
    #[graphql(default_with = "ModelSortField::CreatedAt")]
    field: ModelSortField,
    #[graphql(default_with = "SortDirection::Desc")]
    direction: SortDirection,
}

impl TryFrom<ModelFilterInput> for ModelFilter {
    type Error = async_graphql::Error;

    fn try_from(input: ModelFilterInput) -> Result<Self> {
        Ok(Self {
            search: input.search,
            framework: input.framework,
            task_type: input.task_type,
            tags: input.tags,
            owner: input.owner,
            owner_id: None,
            base_model: input
                .base_model
                .map(|id| parse_id("filter.baseModel", &id))
                .transpose()?,
            license: input.license,
            format: input.format,
            safe_only: input.safe_only,
        })
    }
}

fn new_version(
    version: String,
    format: Option<ModelFormat>,
    changelog: Option<String>,
    metadata: Option<Json<Value>>,
    performance_metrics: Option<Json<Value>>,
) -> NewVersion {
    NewVersion {
        version,
        format,
        changelog,
        metadata: metadata.map(|j| j.0),
        performance_metrics: performance_metrics.map(|j| j.0),
    }
}

/// The caller's right to change model `id` (see [`crate::services::access::edit`]).
pub async fn edit<'c>(
    ctx: &'c Context<'_>,
    id: Uuid,
) -> Result<crate::services::access::ModelEdit<'c>> {
    Ok(models::find_for_edit(ctx.state(), ctx.viewer(), id).await?)
}

/// Lists a page of models for the viewer.
pub async fn list_models(
    ctx: &Context<'_>,
    filter: ModelFilter,
    sort: Option<ModelSort>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<ConnectionOf<Model>> {
    let size = page_size(first)?;
    let after = after.map(|a| Cursor::decode("after", &a)).transpose()?;
    let order = sort.map_or((ModelSortField::CreatedAt, SortDirection::Desc), |s| {
        (s.field, s.direction)
    });
    let look_ahead = ctx.look_ahead();
    let with_total = look_ahead.field("totalCount").exists();
    let page = models::list(
        ctx.state(),
        ctx.viewer(),
        &filter,
        order,
        size,
        after,
        with_total,
    )
    .await?;
    prefetch(ctx, &look_ahead.field("edges").field("node"), &page).await?;
    Ok(connection(page, Model))
}

/// Loads, in parallel and without the DataLoaders' batching delay, the relations the query
/// selects on a page of models, so that their resolvers find them cached.
async fn prefetch(
    ctx: &Context<'_>,
    node: &async_graphql::Lookahead<'_>,
    page: &Page<model::Model>,
) -> Result<()> {
    let loaders = loaders(ctx)?;
    let models = page.items.iter().map(|(_, m)| m);
    let owners: Vec<Uuid> = if node.field("owner").exists() {
        models.clone().map(|m| m.owner_id).collect()
    } else {
        Vec::new()
    };
    let with_versions: Vec<Uuid> =
        if node.field("versions").exists() || node.field("version").exists() {
            models.clone().map(|m| m.id).collect()
        } else {
            Vec::new()
        };
    // The current versions are among all versions: read them separately only when those are
    // not read anyway.
    let current: Vec<Uuid> = if node.field("currentVersion").exists() && with_versions.is_empty() {
        models.filter_map(|m| m.current_version_id).collect()
    } else {
        Vec::new()
    };
    let (owners, current, versions) = tokio::join!(
        Loaders::prime(&loaders.users, owners),
        Loaders::prime(&loaders.versions, current),
        Loaders::prime(&loaders.versions_of_model, with_versions.clone()),
    );
    owners.and(current).and(versions).map_err(load_error)?;
    if !with_versions.is_empty() && node.field("currentVersion").exists() {
        let all = loaders
            .versions_of_model
            .load_many(with_versions)
            .await
            .map_err(load_error)?;
        loaders
            .versions
            .feed_many(all.into_values().flatten().map(|v| (v.id, v)))
            .await;
    }
    Ok(())
}

/// Model queries.
#[derive(Default)]
pub struct ModelQuery;

#[Object]
impl ModelQuery {
    /// Models the caller may see: approved public models, the caller's own, and (for
    /// administrators) all.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn models(
        &self,
        ctx: &Context<'_>,
        filter: Option<ModelFilterInput>,
        sort: Option<ModelSort>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<Model>> {
        list_models(
            ctx,
            filter.unwrap_or_default().try_into()?,
            sort,
            first,
            after,
        )
        .await
    }

    /// A model by id; null if it does not exist or the caller may not see it.
    async fn model(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Model>> {
        let id = parse_id("id", &id)?;
        Ok(models::find(ctx.state(), ctx.viewer(), id)
            .await?
            .map(Model))
    }

    /// A model by its owner's username and its name.
    async fn model_by_name(
        &self,
        ctx: &Context<'_>,
        owner: String,
        name: String,
    ) -> Result<Option<Model>> {
        Ok(
            models::find_by_name(ctx.state(), ctx.viewer(), &owner, &name)
                .await?
                .map(Model),
        )
    }

    /// A version by id; null if it does not exist or the caller may not see its model.
    async fn model_version(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ModelVersion>> {
        let id = parse_id("id", &id)?;
        Ok(versions::find(ctx.state(), ctx.viewer(), id)
            .await?
            .map(|(version, _)| ModelVersion(version)))
    }
}

/// Model mutations.
#[derive(Default)]
pub struct ModelMutation;

#[Object]
impl ModelMutation {
    /// Uploads a new model with its first version (multipart request): one `file`, or
    /// several `files` at their paths. The model starts PRIVATE and DRAFT.
    async fn create_model(
        &self,
        ctx: &Context<'_>,
        input: CreateModelInput,
        file: Option<Upload>,
        files: Option<Vec<FileUpload>>,
    ) -> Result<Model> {
        let (files, resumable) = files_of(ctx, file, files).await?;
        let new = NewModel {
            name: input.name,
            description: input.description,
            framework: input.framework,
            task_type: input.task_type,
            tags: input.tags,
            license: input.license,
            lineage: lineage_of(input.base_model, input.datasets, input.training_run)?,
            version: new_version(
                input.version,
                input.format,
                input.changelog,
                input.metadata,
                input.performance_metrics,
            ),
        };
        let created = versions::create_model(ctx.state(), ctx.viewer(), new, files).await?;
        forget(ctx, &resumable).await;
        Ok(Model(created))
    }

    /// Uploads a new version of a model (owner or administrator; multipart request): one
    /// `file`, or several `files` at their paths.
    async fn create_model_version(
        &self,
        ctx: &Context<'_>,
        model_id: ID,
        input: CreateVersionInput,
        file: Option<Upload>,
        files: Option<Vec<FileUpload>>,
    ) -> Result<ModelVersion> {
        let model_id = parse_id("modelId", &model_id)?;
        let (files, resumable) = files_of(ctx, file, files).await?;
        let created =
            versions::create_version(ctx.state(), edit(ctx, model_id).await?, input.into(), files)
                .await?;
        forget(ctx, &resumable).await;
        Ok(ModelVersion(created))
    }

    /// Changes a model's metadata (owner or administrator).
    async fn update_model(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateModelInput,
    ) -> Result<Model> {
        let id = parse_id("id", &id)?;
        let changes = ModelChanges {
            name: input.name,
            description: input.description,
            framework: input.framework,
            task_type: input.task_type,
            tags: input.tags,
            license: input.license,
            lineage: lineage_of(input.base_model, input.datasets, input.training_run)?,
        };
        Ok(Model(
            models::update(ctx.state(), edit(ctx, id).await?, changes).await?,
        ))
    }

    /// Deletes a model, its versions and their files (owner or administrator).
    async fn delete_model(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id("id", &id)?;
        models::delete(ctx.state(), edit(ctx, id).await?).await?;
        Ok(true)
    }

    /// Deletes one version and its file unless another version shares it (owner or
    /// administrator). The current version moves to the newest remaining one.
    async fn delete_model_version(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id("id", &id)?;
        versions::delete(ctx.state(), ctx.viewer(), id).await?;
        Ok(true)
    }
}

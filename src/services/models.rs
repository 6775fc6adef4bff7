//! Models: finding them (with visibility, filters, sorting and keyset pages), changing their
//! metadata, and deleting them with their files.

use async_graphql::Enum;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query},
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    audit::{self, Subject},
    pagination::{Cursor, Page, SortValue},
    versions,
};
use crate::{
    auth::Viewer,
    domain::model as rules,
    entities::{
        enums::{EventKind, InspectionStatus, ModelFormat},
        model, model_tag, model_version, user,
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// What a model list may be narrowed to.
#[derive(Debug, Default, Clone)]
pub struct ModelFilter {
    /// Words in the name or description (case-insensitive).
    pub search: Option<String>,
    pub framework: Option<String>,
    pub task_type: Option<String>,
    /// Models carrying all of these tags.
    pub tags: Vec<String>,
    /// The owner's username.
    pub owner: Option<String>,
    /// The owner's id.
    pub owner_id: Option<Uuid>,
    /// Models made from this one (see [`super::lineage`]).
    pub base_model: Option<Uuid>,
    pub license: Option<String>,
    /// Models with at least one version in this format.
    pub format: Option<ModelFormat>,
    /// Only models whose current version was inspected and found SAFE.
    pub safe_only: bool,
}

/// What a model list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
pub enum ModelSortField {
    /// Total downloads.
    Downloads,
    /// Creation time.
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Name.
    Name,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    #[default]
    Desc,
}

/// Changes to a model's metadata; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ModelChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub framework: Option<String>,
    pub task_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub license: Option<String>,
    pub lineage: super::lineage::Lineage,
}

/// The model with this id, if the viewer may see it.
pub async fn find(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<Option<model::Model>> {
    let found = model::Entity::find_by_id(id).one(&state.db).await?;
    Ok(found.filter(|m| access::can_view(viewer, m)))
}

/// The model `owner/name`, if the viewer may see it.
pub async fn find_by_name(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    name: &str,
) -> AppResult<Option<model::Model>> {
    let found = model::Entity::find()
        .filter(model::Column::Name.eq(name.trim()))
        .filter(
            model::Column::OwnerId.in_subquery(
                Query::select()
                    .column(user::Column::Id)
                    .from(user::Entity)
                    .and_where(user::Column::Username.eq(owner.trim().to_lowercase()))
                    .to_owned(),
            ),
        )
        .one(&state.db)
        .await?;
    Ok(found.filter(|m| access::can_view(viewer, m)))
}

/// The right to change the model with this id (see [`access::edit`]).
pub async fn find_for_edit<'v>(
    state: &AppState,
    viewer: &'v Viewer,
    id: Uuid,
) -> AppResult<ModelEdit<'v>> {
    access::edit(viewer, model::Entity::find_by_id(id).one(&state.db).await?)
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn filter_condition(filter: &ModelFilter) -> AppResult<Condition> {
    let mut condition = Condition::all();
    if let Some(search) = rules::lookup("filter.search", filter.search.as_deref())? {
        let pattern = like_pattern(&search);
        condition = condition.add(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(model::Column::Name)))
                        .like(LikeExpr::new(pattern.clone()).escape('\\')),
                )
                .add(
                    Expr::expr(Func::lower(Expr::col(model::Column::Description)))
                        .like(LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    if let Some(framework) =
        rules::optional_keyword("filter.framework", filter.framework.as_deref())?
    {
        condition = condition.add(model::Column::Framework.eq(framework));
    }
    if let Some(task) = rules::optional_keyword("filter.taskType", filter.task_type.as_deref())? {
        condition = condition.add(model::Column::TaskType.eq(task));
    }
    if let Some(license) = rules::optional_keyword("filter.license", filter.license.as_deref())? {
        condition = condition.add(model::Column::License.eq(license));
    }
    for tag in rules::tags("filter.tags", &filter.tags)? {
        condition = condition.add(
            model::Column::Id.in_subquery(
                Query::select()
                    .column(model_tag::Column::ModelId)
                    .from(model_tag::Entity)
                    .and_where(model_tag::Column::Tag.eq(tag))
                    .to_owned(),
            ),
        );
    }
    if let Some(owner) = rules::lookup("filter.owner", filter.owner.as_deref())? {
        condition = condition.add(
            model::Column::OwnerId.in_subquery(
                Query::select()
                    .column(user::Column::Id)
                    .from(user::Entity)
                    .and_where(user::Column::Username.eq(owner.to_lowercase()))
                    .to_owned(),
            ),
        );
    }
    if filter.safe_only {
        condition = condition.add(
            model::Column::CurrentVersionId.in_subquery(
                Query::select()
                    .column(model_version::Column::Id)
                    .from(model_version::Entity)
                    .and_where(model_version::Column::InspectionStatus.eq(InspectionStatus::Safe))
                    .to_owned(),
            ),
        );
    }
    if let Some(owner_id) = filter.owner_id {
        condition = condition.add(model::Column::OwnerId.eq(owner_id));
    }
    if let Some(base) = filter.base_model {
        condition = condition.add(model::Column::BaseModelId.eq(base));
    }
    if let Some(format) = filter.format {
        condition = condition.add(
            model::Column::Id.in_subquery(
                Query::select()
                    .column(model_version::Column::ModelId)
                    .from(model_version::Entity)
                    .and_where(model_version::Column::Format.eq(format))
                    .to_owned(),
            ),
        );
    }
    Ok(condition)
}

/// The sort value of a row for the given order.
fn sort_value(field: ModelSortField, model: &model::Model) -> SortValue {
    match field {
        ModelSortField::Downloads => SortValue::Int(model.downloads),
        ModelSortField::CreatedAt => SortValue::None,
        ModelSortField::UpdatedAt => SortValue::Time(model.updated_at),
        ModelSortField::Name => SortValue::Text(model.name.clone()),
    }
}

/// The keyset condition "after `cursor`" for a column sorted in `direction`, ties broken by id.
fn after_condition(
    column: model::Column,
    value: sea_orm::Value,
    id: Uuid,
    direction: SortDirection,
) -> Condition {
    let (beyond, id_beyond) = match direction {
        SortDirection::Asc => (column.gt(value.clone()), model::Column::Id.gt(id)),
        SortDirection::Desc => (column.lt(value.clone()), model::Column::Id.lt(id)),
    };
    Condition::any()
        .add(beyond)
        .add(Condition::all().add(column.eq(value)).add(id_beyond))
}

/// One page of the models the viewer may see: one statement, and one more for the total
/// when `with_total` asks for it.
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    filter: &ModelFilter,
    (field, direction): (ModelSortField, SortDirection),
    size: usize,
    after: Option<Cursor>,
    with_total: bool,
) -> AppResult<Page<model::Model>> {
    let base = model::Entity::find()
        .filter(access::visible_condition(
            viewer,
            state.db.get_database_backend(),
        ))
        .filter(filter_condition(filter)?);
    let total = if with_total {
        Some(super::pagination::total(state, base.clone()).await?)
    } else {
        None
    };
    let order = match direction {
        SortDirection::Asc => sea_orm::Order::Asc,
        SortDirection::Desc => sea_orm::Order::Desc,
    };
    let column = match field {
        ModelSortField::Downloads => Some(model::Column::Downloads),
        ModelSortField::CreatedAt => None,
        ModelSortField::UpdatedAt => Some(model::Column::UpdatedAt),
        ModelSortField::Name => Some(model::Column::Name),
    };
    let mut query = base;
    if let Some(cursor) = &after {
        let bad_cursor = || AppError::bad_input("after", "does not belong to this sort order");
        query = match (column, &cursor.value) {
            (None, SortValue::None) => query.filter(match direction {
                SortDirection::Asc => model::Column::Id.gt(cursor.id),
                SortDirection::Desc => model::Column::Id.lt(cursor.id),
            }),
            (Some(col @ model::Column::Downloads), SortValue::Int(v)) => {
                query.filter(after_condition(col, (*v).into(), cursor.id, direction))
            }
            (Some(col @ model::Column::UpdatedAt), SortValue::Time(v)) => {
                query.filter(after_condition(col, (*v).into(), cursor.id, direction))
            }
            (Some(col @ model::Column::Name), SortValue::Text(v)) => {
                query.filter(after_condition(col, v.clone().into(), cursor.id, direction))
            }
            _ => return Err(bad_cursor()),
        };
    }
    if let Some(col) = column {
        query = query.order_by(col, order.clone());
    }
    let rows = query
        .order_by(model::Column::Id, order)
        .limit(size as u64 + 1)
        .all(&state.db)
        .await?;
    Ok(Page::from_rows(rows, size, after.is_some(), total, |m| {
        Cursor {
            value: sort_value(field, m),
            id: m.id,
        }
    }))
}

/// What a list of models hangs off, for the pages of several at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelLink {
    /// An account's models.
    Owner,
    /// A model's derivatives (the models made from it).
    Base,
}

impl ModelLink {
    fn column(self) -> model::Column {
        match self {
            Self::Owner => model::Column::OwnerId,
            Self::Base => model::Column::BaseModelId,
        }
    }

    /// What `model` hangs off by this link.
    pub fn parent_of(self, model: &model::Model) -> Option<Uuid> {
        match self {
            Self::Owner => Some(model.owner_id),
            Self::Base => model.base_model_id,
        }
    }
}

/// Pages of the models the viewer may see of several `parents`, newest first, in one
/// statement.
pub async fn newest_of(
    state: &AppState,
    viewer: &Viewer,
    link: ModelLink,
    parents: &[Uuid],
    limit: u64,
    before: Option<Uuid>,
) -> Result<Vec<model::Model>, sea_orm::DbErr> {
    super::pagination::newest_of_parents(
        &state.db,
        visible_to(state, viewer),
        link.column(),
        model::Column::Id,
        parents,
        limit,
        before,
    )
    .await
}

/// How many models the viewer may see each of `parents` has: one statement.
pub async fn count_of(
    state: &AppState,
    viewer: &Viewer,
    link: ModelLink,
    parents: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sea_orm::DbErr> {
    super::pagination::count_of_parents(
        &state.db,
        visible_to(state, viewer),
        link.column(),
        parents,
    )
    .await
}

/// The models the viewer may see.
fn visible_to(state: &AppState, viewer: &Viewer) -> sea_orm::Select<model::Entity> {
    model::Entity::find().filter(access::visible_condition(
        viewer,
        state.db.get_database_backend(),
    ))
}

/// Rewrites a model's tag rows to `tags`.
pub(super) async fn write_tags<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
    tags: &[String],
) -> AppResult<()> {
    model_tag::Entity::delete_many()
        .filter(model_tag::Column::ModelId.eq(model_id))
        .exec(db)
        .await?;
    if !tags.is_empty() {
        model_tag::Entity::insert_many(tags.iter().map(|tag| model_tag::ActiveModel {
            model_id: Set(model_id),
            tag: Set(tag.clone()),
        }))
        .exec(db)
        .await?;
    }
    Ok(())
}

/// Changes a model's metadata (owner or administrator).
pub async fn update(
    state: &AppState,
    target: ModelEdit<'_>,
    changes: ModelChanges,
) -> AppResult<model::Model> {
    let existing = target.model();
    let id = existing.id;
    let mut active: model::ActiveModel = existing.clone().into();
    if let Some(name) = &changes.name {
        active.name = Set(rules::name("input.name", name)?);
    }
    if let Some(description) = &changes.description {
        active.description = Set(rules::text("input.description", Some(description))?);
    }
    if let Some(framework) = &changes.framework {
        active.framework = Set(rules::keyword("input.framework", framework)?);
    }
    if let Some(task) = &changes.task_type {
        active.task_type = Set(rules::optional_keyword("input.taskType", Some(task))?);
    }
    if let Some(license) = &changes.license {
        active.license = Set(rules::optional_keyword("input.license", Some(license))?);
    }
    let tags = changes
        .tags
        .as_deref()
        .map(|t| rules::tags("input.tags", t))
        .transpose()?;
    if let Some(tags) = &tags {
        active.tags = Set(serde_json::json!(tags));
    }
    active.updated_at = Set(super::now());
    // In the write transaction: a base model is checked for cycles under the lineage lock.
    let txn = super::begin_write(state).await?;
    super::lineage::apply(&txn, |m| target.may_see(m), &mut active, &changes.lineage).await?;
    let updated = model::Entity::update(active)
        .exec(&txn)
        .await
        .map_err(|e| {
            versions::name_conflict(e, changes.name.as_deref().unwrap_or(&existing.name))
        })?;
    if let Some(tags) = &tags {
        write_tags(&txn, id, tags).await?;
    }
    if target.by_other() {
        // An administrator changing someone else's model.
        let fields: Vec<&str> = [
            ("name", changes.name.is_some()),
            ("description", changes.description.is_some()),
            ("framework", changes.framework.is_some()),
            ("taskType", changes.task_type.is_some()),
            ("license", changes.license.is_some()),
            ("tags", changes.tags.is_some()),
            ("baseModel", changes.lineage.base.is_some()),
            ("datasets", changes.lineage.datasets.is_some()),
            ("trainingRun", changes.lineage.training_run.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect();
        audit::record(
            &txn,
            Some(target.actor()),
            "model_edited_by_admin",
            Subject::Model(id),
            None,
            Some(serde_json::json!({ "owner_id": existing.owner_id, "fields": fields })),
        )
        .await?;
    }
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %id, "model updated");
    Ok(updated)
}

/// Deletes a model, its versions, and every file no other version uses.
pub async fn delete(state: &AppState, target: ModelEdit<'_>) -> AppResult<()> {
    let model = target.model();
    let id = model.id;
    let txn = super::begin_write(state).await?;
    let versions: Vec<Uuid> = model_version::Entity::find()
        .select_only()
        .column(model_version::Column::Id)
        .filter(model_version::Column::ModelId.eq(id))
        .into_tuple()
        .all(&txn)
        .await?;
    let mut hashes = versions::file_hashes(&txn, versions.iter().copied()).await?;
    hashes.extend(super::drafts::file_hashes_of_model(&txn, id).await?);
    hashes.extend(super::lfs::hashes_of_model(&txn, id).await?);
    hashes.sort();
    hashes.dedup();
    let owner = user::Entity::find_by_id(model.owner_id)
        .one(&txn)
        .await?
        .map_or_else(|| model.owner_id.to_string(), |u| u.username);
    super::lineage::orphan_derivatives(&txn, model, &owner).await?;
    super::events::record(
        &txn,
        super::events::Change {
            kind: EventKind::ModelDeleted,
            model,
            version: None,
            actor: Some(target.actor()),
            data: serde_json::json!({ "versions": versions.len() }),
        },
    )
    .await?;
    super::webhooks::retire_of_model(&txn, id).await?;
    model::Entity::delete_by_id(id).exec(&txn).await?;
    let details = serde_json::json!({ "name": model.name, "owner_id": model.owner_id });
    audit::record(
        &txn,
        Some(target.actor()),
        "model_deleted",
        Subject::Model(id),
        None,
        Some(details),
    )
    .await?;
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %id, "model deleted");
    for sha256 in hashes {
        super::blobs::release(state, &sha256).await;
    }
    Ok(())
}

//! Aliases: a model's named pointers to its versions (`production`, `champion`, …), set and
//! moved by whoever may change the model — a protected alias only by an administrator or a
//! PROMOTE token — and named wherever a version is (`modelVersionByRef`, Hugging Face
//! revisions, `/files/{owner}/{name}@{alias}/…`). Every move is kept in the model's alias
//! history and in the audit log, in the transaction that makes it.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{OnConflict, Query},
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    audit::{self, Subject},
};
use crate::{
    auth::Viewer,
    domain::{alias::AliasName, version::Version},
    entities::{alias_move, enums::EventKind, model, model_alias, model_version},
    error::{AppError, AppResult},
    state::AppState,
};

/// The most aliases one model may have.
pub const MAX_PER_MODEL: u64 = 100;

const MOVED_MEANWHILE: &str = "the alias was moved by another request meanwhile; try again";

/// Points the model's alias `name` at its version `version_id`, creating the alias or moving
/// it. Pointing it where it already points changes nothing.
pub async fn set(
    state: &AppState,
    target: ModelEdit<'_>,
    name: &str,
    version_id: Uuid,
) -> AppResult<model_alias::Model> {
    let alias = AliasName::parse("alias", name)?;
    access::ensure_may_move_alias(&target, &alias, &state.config.protected_aliases)?;
    let model = target.model();
    let txn = super::begin_write(state).await?;
    // Locked against a withdrawal until this commits (on SQLite the write lock already is):
    // either the withdrawal sees this alias and takes it off, or this sees the withdrawal.
    let version = model_version::Entity::find_by_id(version_id)
        .filter(model_version::Column::ModelId.eq(model.id));
    let version = if txn.get_database_backend() == DatabaseBackend::Postgres {
        version.lock_shared()
    } else {
        version
    };
    let version = version
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::bad_input("versionId", "is not a version of this model"))?;
    if version.withdrawn_at.is_some() {
        return Err(AppError::Conflict(format!(
            "version {} is withdrawn: an alias cannot point to it",
            version.version
        )));
    }
    let existing = model_alias::Entity::find_by_id((model.id, alias.to_string()))
        .one(&txn)
        .await?;
    if let Some(existing) = existing.as_ref().filter(|e| e.version_id == version.id) {
        return Ok(existing.clone());
    }
    let now = super::now();
    let row = model_alias::Model {
        model_id: model.id,
        name: alias.to_string(),
        version_id: version.id,
        updated_by: Some(target.actor()),
        updated_at: now,
    };
    let previous = existing.map(|e| e.version_id);
    let changed = match previous {
        // Moved only from where it was read: a concurrent move makes this one fail.
        Some(previous) => {
            model_alias::Entity::update_many()
                .set(model_alias::ActiveModel {
                    version_id: Set(row.version_id),
                    updated_by: Set(row.updated_by),
                    updated_at: Set(row.updated_at),
                    ..Default::default()
                })
                .filter(model_alias::Column::ModelId.eq(model.id))
                .filter(model_alias::Column::Name.eq(alias.as_str()))
                .filter(model_alias::Column::VersionId.eq(previous))
                .exec(&txn)
                .await?
                .rows_affected
        }
        None => {
            let count = model_alias::Entity::find()
                .filter(model_alias::Column::ModelId.eq(model.id))
                .count(&txn)
                .await?;
            if count >= MAX_PER_MODEL {
                return Err(AppError::bad_input(
                    "alias",
                    format!("a model has at most {MAX_PER_MODEL} aliases"),
                ));
            }
            model_alias::Entity::insert(model_alias::ActiveModel {
                model_id: Set(row.model_id),
                name: Set(row.name.clone()),
                version_id: Set(row.version_id),
                updated_by: Set(row.updated_by),
                updated_at: Set(row.updated_at),
            })
            .on_conflict(
                OnConflict::columns([model_alias::Column::ModelId, model_alias::Column::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?
        }
    };
    if changed == 0 {
        return Err(AppError::Conflict(MOVED_MEANWHILE.into()));
    }
    record_move(
        &txn,
        Move {
            model,
            actor: target.actor(),
            alias: alias.as_str(),
            to: Some(&version),
            from: previous,
            note: None,
        },
    )
    .await?;
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %model.id, alias = %alias, version_id = %version.id, "alias moved");
    Ok(row)
}

/// Removes the model's alias `name` (`NOT_FOUND` if it has none of that name).
pub async fn remove(state: &AppState, target: ModelEdit<'_>, name: &str) -> AppResult<()> {
    let alias = AliasName::parse("alias", name)?;
    access::ensure_may_move_alias(&target, &alias, &state.config.protected_aliases)?;
    let model = target.model();
    let txn = super::begin_write(state).await?;
    let existing = model_alias::Entity::find_by_id((model.id, alias.to_string()))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("alias"))?;
    let deleted = model_alias::Entity::delete_many()
        .filter(model_alias::Column::ModelId.eq(model.id))
        .filter(model_alias::Column::Name.eq(alias.as_str()))
        .filter(model_alias::Column::VersionId.eq(existing.version_id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::Conflict(MOVED_MEANWHILE.into()));
    }
    record_move(
        &txn,
        Move {
            model,
            actor: target.actor(),
            alias: alias.as_str(),
            to: None,
            from: Some(existing.version_id),
            note: None,
        },
    )
    .await?;
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %model.id, alias = %alias, "alias removed");
    Ok(())
}

/// Takes every alias off a version being withdrawn, in the withdrawal's transaction (each
/// removal kept in the history and the audit log, with its event), so no name resolves to it.
pub(super) async fn release_withdrawn<C: ConnectionTrait>(
    db: &C,
    model: &model::Model,
    version_id: Uuid,
    actor: Uuid,
) -> AppResult<()> {
    let taken_off = model_alias::Entity::delete_many()
        .filter(model_alias::Column::VersionId.eq(version_id))
        .exec_with_returning(db)
        .await?;
    for alias in &taken_off {
        record_move(
            db,
            Move {
                model,
                actor,
                alias: &alias.name,
                to: None,
                from: Some(version_id),
                note: Some("the version was withdrawn"),
            },
        )
        .await?;
    }
    Ok(())
}

/// A move of one alias: of which model, by whom, and why when it was not asked for.
struct Move<'a> {
    model: &'a model::Model,
    actor: Uuid,
    alias: &'a str,
    to: Option<&'a model_version::Model>,
    from: Option<Uuid>,
    note: Option<&'a str>,
}

/// Keeps a move in the alias history and the audit log, and writes its event.
async fn record_move<C: ConnectionTrait>(db: &C, change: Move<'_>) -> AppResult<()> {
    let Move {
        model,
        actor,
        alias,
        to,
        from,
        note,
    } = change;
    let now = super::now();
    alias_move::ActiveModel {
        id: Set(Uuid::now_v7()),
        model_id: Set(model.id),
        alias: Set(alias.to_owned()),
        version_id: Set(to.map(|v| v.id)),
        previous_version_id: Set(from),
        moved_by: Set(Some(actor)),
        moved_at: Set(now),
    }
    .insert(db)
    .await?;
    let details = serde_json::json!({
        "alias": alias,
        "version_id": to.map(|v| v.id),
        "version": to.map(|v| v.version.as_str()),
        "previous_version_id": from,
    });
    let action = if to.is_some() {
        "alias_moved"
    } else {
        "alias_removed"
    };
    audit::record(
        db,
        Some(actor),
        action,
        Subject::Model(model.id),
        note,
        Some(details),
    )
    .await?;
    super::events::record(
        db,
        super::events::Change {
            kind: EventKind::AliasMoved,
            model,
            version: to,
            actor: Some(actor),
            data: serde_json::json!({
                "alias": alias,
                "previousVersionId": from,
                "removed": to.is_none(),
            }),
        },
    )
    .await
}

/// Refuses to delete a version an alias points to (`CONFLICT`, naming the aliases).
pub async fn ensure_unaliased<C: ConnectionTrait>(db: &C, version_id: Uuid) -> AppResult<()> {
    let names: Vec<String> = model_alias::Entity::find()
        .select_only()
        .column(model_alias::Column::Name)
        .filter(model_alias::Column::VersionId.eq(version_id))
        .order_by_asc(model_alias::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    Err(AppError::Conflict(format!(
        "alias {} points to this version: move or remove it first",
        names.join(", ")
    )))
}

/// The version of `model` that `reference` names: an alias, or a version string (`v1.2.0` and
/// `1.2.0` name the same version). One statement.
pub async fn resolve(
    state: &AppState,
    model: &model::Model,
    reference: &str,
) -> AppResult<Option<model_version::Model>> {
    let versions =
        model_version::Entity::find().filter(model_version::Column::ModelId.eq(model.id));
    let found = if let Ok(alias) = AliasName::parse("ref", reference) {
        versions
            .filter(
                model_version::Column::Id.in_subquery(
                    Query::select()
                        .column(model_alias::Column::VersionId)
                        .from(model_alias::Entity)
                        .and_where(model_alias::Column::ModelId.eq(model.id))
                        .and_where(model_alias::Column::Name.eq(alias.as_str()))
                        .to_owned(),
                ),
            )
            .one(&state.db)
            .await?
    } else if let Ok(version) = Version::parse("ref", reference) {
        versions
            .filter(model_version::Column::VersionKey.eq(version.sort_key()))
            .one(&state.db)
            .await?
    } else {
        None
    };
    Ok(found)
}

/// The version of model `owner/name` (if the viewer may see it) that `reference` names, as a
/// Hugging Face revision does: `main`, a version string, an alias or a commit id.
pub async fn version_by_ref(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    name: &str,
    reference: &str,
) -> AppResult<Option<model_version::Model>> {
    let Some(model) = super::models::find_by_name(state, viewer, owner, name).await? else {
        return Ok(None);
    };
    match super::hub::revision(state, &model, reference).await {
        Ok(version) => Ok(Some(version)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The aliases of each of these models, by name: one statement.
pub async fn of_models<C: ConnectionTrait>(
    db: &C,
    models: &[Uuid],
) -> Result<HashMap<Uuid, Vec<model_alias::Model>>, DbErr> {
    let rows = model_alias::Entity::find()
        .filter(model_alias::Column::ModelId.is_in(models.iter().copied()))
        .order_by_asc(model_alias::Column::Name)
        .all(db)
        .await?;
    let mut grouped: HashMap<Uuid, Vec<model_alias::Model>> =
        models.iter().map(|id| (*id, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.model_id).or_default().push(row);
    }
    Ok(grouped)
}

/// The names of the aliases pointing to each of these versions, in order: one statement.
pub async fn names_of_versions<C: ConnectionTrait>(
    db: &C,
    versions: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, DbErr> {
    let rows: Vec<(Uuid, String)> = model_alias::Entity::find()
        .select_only()
        .column(model_alias::Column::VersionId)
        .column(model_alias::Column::Name)
        .filter(model_alias::Column::VersionId.is_in(versions.iter().copied()))
        .order_by_asc(model_alias::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    let mut grouped: HashMap<Uuid, Vec<String>> =
        versions.iter().map(|id| (*id, Vec::new())).collect();
    for (version, name) in rows {
        grouped.entry(version).or_default().push(name);
    }
    Ok(grouped)
}

/// Pages of several models' alias histories, newest move first, in one statement (the
/// caller has checked that the viewer may see the models).
pub async fn histories(
    state: &AppState,
    models: &[Uuid],
    limit: u64,
    before: Option<Uuid>,
) -> Result<Vec<alias_move::Model>, sea_orm::DbErr> {
    super::pagination::newest_of_parents(
        &state.db,
        alias_move::Entity::find(),
        alias_move::Column::ModelId,
        alias_move::Column::Id,
        models,
        limit,
        before,
    )
    .await
}

/// How many alias moves each of `models` has: one statement.
pub async fn history_lengths(
    state: &AppState,
    models: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sea_orm::DbErr> {
    super::pagination::count_of_parents(
        &state.db,
        alias_move::Entity::find(),
        alias_move::Column::ModelId,
        models,
    )
    .await
}

//! The catalog as the Hugging Face protocol names it: a model is the repository `owner/slug`
//! and its versions are revisions (`main` for the current one, a version string, or a commit
//! id). Lookups ask the access policy: to a caller who may not see a model, it does not exist.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    domain::hub_name,
    entities::{model, model_version, user, version_file},
    error::{AppError, AppResult},
    services::access,
    state::AppState,
};

/// What the protocol's `X-Error-Code` says was not found.
pub const REPOSITORY: &str = "repository";
pub const REVISION: &str = "revision";

/// The lock class of an owner's new slugs ("SLUG"; see [`super::serialize`]).
const SLUGS_LOCK: i32 = 0x534c_5547;

/// A free slug for a new model of `owner` called `name`: its [`hub_name::slug`], or that
/// with `-2`, `-3`… when another of the owner's models has it (ignoring case). In `db`'s
/// transaction, the owner's other creations wait until it ends, so two cannot pick one slug.
pub async fn free_slug<C: ConnectionTrait>(db: &C, owner: Uuid, name: &str) -> AppResult<String> {
    super::serialize(db, SLUGS_LOCK, &owner.to_string()).await?;
    let base = hub_name::slug(name);
    // `_` in a LIKE pattern matches any character: a few more candidates, checked below.
    let taken: HashSet<String> = model::Entity::find()
        .select_only()
        .column(model::Column::Slug)
        .filter(model::Column::OwnerId.eq(owner))
        .filter(
            Expr::expr(Func::lower(Expr::col(model::Column::Slug)))
                .like(format!("{}%", base.to_ascii_lowercase())),
        )
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .map(|slug| slug.to_ascii_lowercase())
        .collect();
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate.to_ascii_lowercase()) {
        candidate = hub_name::numbered(&base, n);
        n += 1;
    }
    Ok(candidate)
}

/// The model `owner/name` (the name compared without case), if the viewer may see it.
pub async fn repository(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    name: &str,
) -> AppResult<model::Model> {
    Ok(repository_and_owner(state, viewer, owner, name).await?.0)
}

/// The same, with its owner's login.
pub async fn repository_and_owner(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    name: &str,
) -> AppResult<(model::Model, String)> {
    let not_found = AppError::NotFound(REPOSITORY);
    let Some(owner) = user::Entity::find()
        .filter(user::Column::Username.eq(owner.to_ascii_lowercase()))
        .one(&state.db)
        .await?
    else {
        return Err(not_found);
    };
    let model = model::Entity::find()
        .filter(model::Column::OwnerId.eq(owner.id))
        .filter(
            Expr::expr(Func::lower(Expr::col(model::Column::Slug))).eq(name.to_ascii_lowercase()),
        )
        .one(&state.db)
        .await?;
    let model = access::visible(viewer, model).map_err(|_| not_found)?;
    Ok((model, owner.username))
}

/// The version a revision names: `main` is the current version, a commit id the version with
/// that id, anything else an alias or a version string (`v1.2.0` and `1.2.0` name the same
/// version).
pub async fn revision(
    state: &AppState,
    model: &model::Model,
    revision: &str,
) -> AppResult<model_version::Model> {
    let versions =
        model_version::Entity::find().filter(model_version::Column::ModelId.eq(model.id));
    let found = if revision == "main" {
        match model.current_version_id {
            Some(id) => {
                versions
                    .filter(model_version::Column::Id.eq(id))
                    .one(&state.db)
                    .await?
            }
            None => None,
        }
    } else if hub_name::is_commit_id(revision) {
        versions
            .filter(model_version::Column::CommitId.eq(revision))
            .one(&state.db)
            .await?
    } else {
        super::aliases::resolve(state, model, revision).await?
    };
    found.ok_or(AppError::NotFound(REVISION))
}

/// A version's files, by path (byte order).
pub async fn files<C: ConnectionTrait>(
    db: &C,
    version_id: Uuid,
) -> AppResult<Vec<version_file::Model>> {
    Ok(version_file::Entity::find()
        .filter(version_file::Column::VersionId.eq(version_id))
        .order_by_asc(version_file::Column::Path)
        .all(db)
        .await?)
}

/// A model's versions, newest first, each with its uploader's login.
pub async fn history(
    state: &AppState,
    model: &model::Model,
) -> AppResult<Vec<(model_version::Model, String)>> {
    let versions = model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model.id))
        .order_by_desc(model_version::Column::CreatedAt)
        .order_by_desc(model_version::Column::Id)
        .all(&state.db)
        .await?;
    let logins = logins(state, versions.iter().map(|v| v.uploaded_by)).await?;
    Ok(versions
        .into_iter()
        .map(|v| {
            let login = logins.get(&v.uploaded_by).cloned().unwrap_or_default();
            (v, login)
        })
        .collect())
}

/// The logins of these accounts, in one statement.
pub async fn logins(
    state: &AppState,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<HashMap<Uuid, String>> {
    text_by_id::<user::Entity>(state, user::Column::Id, user::Column::Username, ids).await
}

/// The commit ids of these versions, in one statement.
pub async fn commit_ids(
    state: &AppState,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<HashMap<Uuid, String>> {
    let (id, commit) = (model_version::Column::Id, model_version::Column::CommitId);
    text_by_id::<model_version::Entity>(state, id, commit, ids).await
}

/// One text column of the rows with these ids, by id.
async fn text_by_id<E: EntityTrait>(
    state: &AppState,
    id: E::Column,
    text: E::Column,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<HashMap<Uuid, String>> {
    let ids: HashSet<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(E::find()
        .select_only()
        .column(id)
        .column(text)
        .filter(id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect())
}

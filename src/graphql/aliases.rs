//! Aliases in GraphQL: the `ModelAlias` and `AliasMove` types, `modelVersionByRef`, and the
//! mutations that set and remove aliases (see [`crate::services::aliases`]).

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::{
    RequestContext,
    accounts::User,
    context::loaders,
    models::{Model, ModelVersion, edit, load_error},
    scalars::parse_id,
};
use crate::{
    entities::{alias_move, model_alias},
    error::AppError,
    services::aliases,
};

/// A version by id, as loaded for this request (`None` once deleted).
async fn version(ctx: &Context<'_>, id: Option<uuid::Uuid>) -> Result<Option<ModelVersion>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let version = loaders(ctx)?
        .versions
        .load_one(id)
        .await
        .map_err(load_error)?;
    Ok(version.map(ModelVersion))
}

/// A user by id, as loaded for this request.
async fn user(ctx: &Context<'_>, id: Option<uuid::Uuid>) -> Result<Option<User>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let user = loaders(ctx)?.users.load_one(id).await.map_err(load_error)?;
    Ok(user.map(User::new))
}

/// A model's named pointer to one of its versions (`production`, `champion`, …).
pub struct ModelAlias(pub model_alias::Model);

#[Object]
impl ModelAlias {
    /// The alias, e.g. `production`.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The version it points to.
    async fn version(&self, ctx: &Context<'_>) -> Result<ModelVersion> {
        version(ctx, Some(self.0.version_id))
            .await?
            .ok_or_else(|| AppError::internal("an alias points to a missing version").into())
    }

    /// Whether only administrators and PROMOTE tokens may move it (the deployment's
    /// `MODELHUB_PROTECTED_ALIASES`).
    async fn protected(&self, ctx: &Context<'_>) -> bool {
        ctx.state()
            .config
            .protected_aliases
            .iter()
            .any(|name| name.as_str() == self.0.name)
    }

    /// Who moved it last.
    async fn updated_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        user(ctx, self.0.updated_by).await
    }

    /// When it was moved last.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One move of an alias: where it pointed before and after.
pub struct AliasMove(pub alias_move::Model);

#[Object]
impl AliasMove {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The alias moved.
    async fn alias(&self) -> &str {
        &self.0.alias
    }

    /// The version it points to since; null when it was removed (or that version is gone).
    async fn version(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        version(ctx, self.0.version_id).await
    }

    /// The version it pointed to before; null when the alias was new (or that version is
    /// gone).
    async fn previous_version(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        version(ctx, self.0.previous_version_id).await
    }

    /// Who moved it.
    async fn moved_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        user(ctx, self.0.moved_by).await
    }

    async fn moved_at(&self) -> DateTime<Utc> {
        self.0.moved_at
    }
}

#[derive(Default)]
pub struct AliasQuery;

#[Object]
impl AliasQuery {
    /// The version of model `owner/name` that `ref` names: a version string (`v1.2.0`), an
    /// alias (`production`), `main` (the current version) or a commit id. Null when there is
    /// none, or the caller may not see the model.
    async fn model_version_by_ref(
        &self,
        ctx: &Context<'_>,
        owner: String,
        name: String,
        #[graphql(name = "ref")] reference: String,
    ) -> Result<Option<ModelVersion>> {
        let found =
            aliases::version_by_ref(ctx.state(), ctx.viewer(), &owner, &name, &reference).await?;
        Ok(found.map(ModelVersion))
    }
}

#[derive(Default)]
pub struct AliasMutation;

#[Object]
impl AliasMutation {
    /// Points the model's alias at one of its versions, creating or moving it (owner or
    /// administrator; a protected alias only an administrator or a PROMOTE token). Kept in the
    /// model's `aliasHistory` and the audit log.
    async fn set_alias(
        &self,
        ctx: &Context<'_>,
        model_id: ID,
        alias: String,
        version_id: ID,
    ) -> Result<ModelAlias> {
        let model_id = parse_id("modelId", &model_id)?;
        let version_id = parse_id("versionId", &version_id)?;
        let target = edit(ctx, model_id).await?;
        Ok(ModelAlias(
            aliases::set(ctx.state(), target, &alias, version_id).await?,
        ))
    }

    /// Removes the model's alias (same rights as `setAlias`).
    async fn remove_alias(&self, ctx: &Context<'_>, model_id: ID, alias: String) -> Result<Model> {
        let model_id = parse_id("modelId", &model_id)?;
        let target = edit(ctx, model_id).await?;
        let model = target.model().clone();
        aliases::remove(ctx.state(), target, &alias).await?;
        Ok(Model(model))
    }
}

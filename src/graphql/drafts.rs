//! Version drafts in GraphQL: versions too big for one request, gathered over many and
//! committed at once; and which blobs a client need not send again.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::{
    RequestContext,
    models::{CreateVersionInput, Model, ModelVersion, edit},
    scalars::{BigInt, parse_id},
    upload::{FileUpload, at_paths, forget},
};
use crate::{
    domain::file_path::FilePath,
    entities::{enums::ModelFormat, version_draft},
    error::AppError,
    services::{
        drafts::{self, Reuse},
        models,
    },
};

/// A version being gathered: files added over any number of requests, none visible until
/// the draft is committed. It expires after its last change (`MODELHUB_DRAFT_TTL_HOURS`).
pub struct VersionDraft(version_draft::Model);

#[Object]
impl VersionDraft {
    /// The draft's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The version it will be.
    async fn version(&self) -> &str {
        &self.0.version
    }

    /// The model it belongs to.
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        Ok(models::find(ctx.state(), ctx.viewer(), self.0.model_id)
            .await?
            .map(Model))
    }

    /// Its files so far, by path.
    async fn files(&self, ctx: &Context<'_>) -> Result<Vec<DraftFile>> {
        Ok(drafts::files_of(&ctx.state().db, self.0.id)
            .await?
            .into_iter()
            .map(|f| DraftFile {
                path: f.path,
                size_bytes: BigInt(f.size_bytes),
                sha256: f.sha256,
                format: f.format,
            })
            .collect())
    }

    /// When it was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it is given up unless changed again.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}

/// A file in a draft.
#[derive(async_graphql::SimpleObject)]
pub struct DraftFile {
    path: String,
    size_bytes: BigInt,
    sha256: String,
    format: ModelFormat,
}

/// A file the hub holds, by its SHA-256, to put in a draft at `path` without sending it.
#[derive(InputObject)]
pub struct ReuseFile {
    path: String,
    sha256: String,
}

/// Draft and blob queries.
#[derive(Default)]
pub struct DraftQuery;

#[Object]
impl DraftQuery {
    /// A draft the caller may change (its model's owner or an administrator).
    async fn version_draft(&self, ctx: &Context<'_>, id: ID) -> Result<VersionDraft> {
        let id = parse_id("id", &id)?;
        let (draft, _) = drafts::find_for_edit(ctx.state(), ctx.viewer(), id).await?;
        Ok(VersionDraft(draft))
    }

    /// Which of these SHA-256s the caller would have to upload: those not in a version it
    /// can see (at most 10,000 at once). Files it can see can be reused in a draft.
    async fn missing_blobs(&self, ctx: &Context<'_>, sha256: Vec<String>) -> Result<Vec<String>> {
        Ok(drafts::missing_blobs(ctx.state(), ctx.viewer(), sha256).await?)
    }
}

/// Draft mutations.
#[derive(Default)]
pub struct DraftMutation;

#[Object]
impl DraftMutation {
    /// Starts a draft of a new version (owner or administrator).
    async fn create_version_draft(
        &self,
        ctx: &Context<'_>,
        model_id: ID,
        input: CreateVersionInput,
    ) -> Result<VersionDraft> {
        let model_id = parse_id("modelId", &model_id)?;
        let target = edit(ctx, model_id).await?;
        Ok(VersionDraft(
            drafts::create(ctx.state(), &target, input.into()).await?,
        ))
    }

    /// Adds files to a draft: `files` sent with the request (multipart), and `reuse`d ones
    /// the hub holds (see `missingBlobs`). A path the draft has already gets the new file.
    async fn add_draft_files(
        &self,
        ctx: &Context<'_>,
        draft_id: ID,
        files: Option<Vec<FileUpload>>,
        #[graphql(default)] reuse: Vec<ReuseFile>,
    ) -> Result<VersionDraft> {
        let draft_id = parse_id("draftId", &draft_id)?;
        let (uploaded, resumable) = at_paths(ctx, files.unwrap_or_default()).await?;
        let reuse = reuse
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Reuse {
                    path: FilePath::parse(&format!("reuse[{i}].path"), &r.path)?,
                    sha256: r.sha256,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let draft = drafts::add_files(ctx.state(), ctx.viewer(), draft_id, uploaded, reuse).await?;
        forget(ctx, &resumable).await;
        Ok(VersionDraft(draft))
    }

    /// Makes the draft a version: all its files appear at once, and the draft is gone.
    async fn commit_draft(&self, ctx: &Context<'_>, draft_id: ID) -> Result<ModelVersion> {
        let draft_id = parse_id("draftId", &draft_id)?;
        Ok(ModelVersion(
            drafts::commit(ctx.state(), ctx.viewer(), draft_id).await?,
        ))
    }

    /// Gives a draft up, with the bytes only it used.
    async fn discard_draft(&self, ctx: &Context<'_>, draft_id: ID) -> Result<bool> {
        let draft_id = parse_id("draftId", &draft_id)?;
        drafts::discard(ctx.state(), ctx.viewer(), draft_id).await?;
        Ok(true)
    }
}

//! Downloads: who may fetch a version's file, and signed links for header-less clients
//! (browsers, wget). Downloads are counted in `download_counts`.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{access, accounts, gate, versions};
use crate::{
    auth::Viewer,
    config::UnsafeUploads,
    entities::{model, model_version, version_file},
    error::{AppError, AppResult},
    state::AppState,
};

/// A version whose file the caller may fetch, with its model.
#[derive(Debug, Clone)]
pub struct Grant {
    pub version: model_version::Model,
    pub model: model::Model,
    /// Who is downloading, if known.
    pub user_id: Option<Uuid>,
    /// Whether they may take a held file at their own risk: the owner or an administrator,
    /// signed in (never through a signed link).
    pub may_accept_risk: bool,
}

/// How a download request proves it may read the file.
pub enum Credentials<'a> {
    /// The caller's bearer token (or none, for public models).
    Viewer(&'a Viewer),
    /// A signed `?token=` from `ModelVersion.downloadUrl` or `ModelFile.downloadUrl`, used
    /// for the file at `path` (none: the version as a whole).
    SignedLink {
        token: &'a str,
        path: Option<&'a str>,
    },
}

/// A signed, expiring URL for a version's file, or for its file at `path`.
pub fn signed_url(
    state: &AppState,
    version_id: Uuid,
    path: Option<&str>,
    viewer: &Viewer,
) -> AppResult<String> {
    let ttl =
        chrono::Duration::from_std(state.config.download_url_ttl).map_err(AppError::internal)?;
    let token = state.jwt.issue_download(
        version_id,
        path,
        viewer.authenticated().map(|a| (a.user.id, &a.credential)),
        Utc::now() + ttl,
    )?;
    let mut url = state.config.public_url.clone();
    url.set_path(&format!("/files/{version_id}"));
    if let Some(path) = path {
        url.path_segments_mut()
            .map_err(|()| AppError::internal("the public URL cannot take a path"))?
            .extend(path.split('/'));
    }
    url.set_query(Some(&format!("token={token}")));
    Ok(url.into())
}

/// Whether the caller knowingly asks for a file the inspection gate holds (`?acceptRisk=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptRisk(pub bool);

/// A version the inspection gate holds (see [`gate`]) is served only to its model's owner or
/// an administrator, and only when they accept the risk (unless the policy is `allow`).
pub fn ensure_risk_accepted(state: &AppState, grant: &Grant, accept: AcceptRisk) -> AppResult<()> {
    ensure_accepted(
        state,
        grant,
        gate::version_hold_reason(&grant.version),
        accept,
    )
}

/// The same rule for one file of the version, by the file's own verdict.
pub fn ensure_file_risk_accepted(
    state: &AppState,
    grant: &Grant,
    file: &version_file::Model,
    accept: AcceptRisk,
) -> AppResult<()> {
    ensure_accepted(
        state,
        grant,
        gate::file_hold_reason(&grant.version, file),
        accept,
    )
}

fn ensure_accepted(
    state: &AppState,
    grant: &Grant,
    held: Option<String>,
    accept: AcceptRisk,
) -> AppResult<()> {
    if state.config.unsafe_uploads == UnsafeUploads::Allow {
        return Ok(());
    }
    let Some(why) = held else {
        return Ok(());
    };
    if !grant.may_accept_risk {
        return Err(AppError::Forbidden(format!(
            "version {} is held by the inspection gate: {why}; only the model's owner or an administrator can download it",
            grant.version.version
        )));
    }
    if !accept.0 {
        return Err(AppError::Forbidden(format!(
            "version {} is held by the inspection gate: {why}; add acceptRisk=true to download it anyway",
            grant.version.version
        )));
    }
    Ok(())
}

fn ensure_downloadable(version: &model_version::Model) -> AppResult<()> {
    if version.withdrawn_at.is_some() {
        return Err(AppError::Forbidden(format!(
            "version {} was withdrawn: {}",
            version.version,
            version
                .withdrawn_reason
                .as_deref()
                .unwrap_or("no reason given")
        )));
    }
    Ok(())
}

/// The right of `viewer` to download `version` of `model`, both already read (a Hugging Face
/// revision): the rule of [`authorize_version`], without reading them again.
pub fn grant_found(
    viewer: &Viewer,
    model: model::Model,
    version: model_version::Model,
) -> AppResult<Grant> {
    access::ensure_may_read(viewer)?;
    if !access::can_view(viewer, &model) || version.model_id != model.id {
        return Err(AppError::NotFound("model version"));
    }
    let grant = Grant {
        may_accept_risk: access::may_read_private(viewer, &model),
        version,
        model,
        user_id: viewer.user_id(),
    };
    ensure_downloadable(&grant.version)?;
    Ok(grant)
}

/// Checks that the credentials may download version `version_id`.
pub async fn authorize_version(
    state: &AppState,
    credentials: Credentials<'_>,
    version_id: Uuid,
) -> AppResult<Grant> {
    let grant = match credentials {
        Credentials::Viewer(viewer) => {
            access::ensure_may_read(viewer)?;
            let (version, model) = versions::find_cached(state, viewer, version_id)
                .await?
                .ok_or(AppError::NotFound("model version"))?;
            return grant_found(viewer, model, version);
        }
        Credentials::SignedLink { token, path } => {
            let claims = state.jwt.verify_download(token)?;
            // A link for one file of a version opens that file only.
            let other_file = claims.path.is_some() && claims.path.as_deref() != path;
            if claims.sub != version_id || other_file {
                return Err(AppError::Forbidden("this link is for another file".into()));
            }
            let (version, model) = versions::read(state, version_id)
                .await?
                .map(std::sync::Arc::unwrap_or_clone)
                .ok_or(AppError::NotFound("model version"))?;
            // The link carries its holder's rights, checked again now: a model made private,
            // an account disabled, or the credential that made the link revoked or its
            // session ended since, closes it.
            let holder = match claims.uid {
                Some(uid) => {
                    match accounts::link_holder(state, uid, claims.tid, claims.sep).await {
                        Ok(Viewer::User(holder)) => Some(holder.user),
                        Ok(Viewer::Anonymous) | Err(AppError::Unauthenticated(_)) => {
                            return Err(AppError::NotFound("model version"));
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => None,
            };
            if !access::link_may_view(holder.as_ref(), &model) {
                return Err(AppError::NotFound("model version"));
            }
            Grant {
                // A link can be passed on: it never carries the right to take a held file.
                may_accept_risk: false,
                version,
                model,
                user_id: claims.uid,
            }
        }
    };
    ensure_downloadable(&grant.version)?;
    Ok(grant)
}

/// The files of the granted version, by path.
pub async fn files_of_version(
    state: &AppState,
    grant: &Grant,
) -> AppResult<Vec<version_file::Model>> {
    super::hub::files(&state.db, grant.version.id).await
}

/// The file at `path` of the granted version.
pub async fn file_of(
    state: &AppState,
    grant: &Grant,
    path: &str,
) -> AppResult<version_file::Model> {
    version_file::Entity::find()
        .filter(version_file::Column::VersionId.eq(grant.version.id))
        .filter(version_file::Column::Path.eq(path))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("file"))
}

/// Checks that the viewer may download the current version of model `model_id`.
pub async fn authorize_current(
    state: &AppState,
    viewer: &Viewer,
    model_id: Uuid,
) -> AppResult<Grant> {
    access::ensure_may_read(viewer)?;
    let model = access::visible(
        viewer,
        model::Entity::find_by_id(model_id).one(&state.db).await?,
    )?;
    let version_id = model
        .current_version_id
        .ok_or(AppError::NotFound("current version"))?;
    authorize_version(state, Credentials::Viewer(viewer), version_id).await
}

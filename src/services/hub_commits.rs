//! Writing through the Hugging Face protocol: creating a repository (an empty model), telling
//! the client how to send each file, and commits. A commit makes a new version of the model
//! from its current one: files not mentioned carry over, the commit's files are added or
//! replace theirs, deletions remove; it goes through a version draft, so the files are checked,
//! inspected, gated and audited as on GraphQL, and the version appears whole or not at all.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    approvals,
    drafts::{self, Reuse},
    hub, lfs,
    lineage::Lineage,
    models,
    version_facts::Facts,
    versions::{self, NewVersion},
};
use crate::{
    auth::{Scope, Viewer},
    domain::{file_path::FilePath, hub_name, model as rules, version::Version},
    entities::{enums::ApprovalStatus, model, model_version, version_file},
    error::{AppError, AppResult},
    graphql::UploadedFile,
    state::AppState,
};

/// The framework of a model created through the protocol, until someone says otherwise.
const UNKNOWN_FRAMEWORK: &str = "unknown";
/// The git blob id of an empty file, which the client compares an empty file's with.
const EMPTY_BLOB_OID: &str = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";

/// Creates the caller's model `name` (a repository name, which becomes its name and slug),
/// private and without versions. `namespace`, if given, must be the caller's login.
pub async fn create_repository(
    state: &AppState,
    viewer: &Viewer,
    namespace: Option<&str>,
    name: &str,
) -> AppResult<model::Model> {
    let caller = viewer.require(Scope::Write)?;
    if let Some(namespace) = namespace
        && !namespace.eq_ignore_ascii_case(&caller.user.username)
    {
        return Err(AppError::Forbidden(format!(
            "you can create repositories under your own name only ({}), not `{namespace}`",
            caller.user.username
        )));
    }
    if !hub_name::is_repo_name(name) {
        return Err(AppError::bad_input(
            "name",
            "a repository name is 1 to 96 letters, digits, `_`, `.` and `-`",
        ));
    }
    let mut row = versions::model_row(caller.user.id, name, UNKNOWN_FRAMEWORK.to_owned());
    let txn = super::begin_write(state).await?;
    if hub::free_slug(&txn, caller.user.id, name).await? != name {
        return Err(AppError::Conflict(format!(
            "you already have a repository named `{name}`"
        )));
    }
    row.slug = Set(name.to_owned());
    let model = model::Entity::insert(row)
        .exec_with_returning(&txn)
        .await
        .map_err(|e| versions::name_conflict(e, name))?;
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %model.id, owner_id = %caller.user.id, "repository created");
    Ok(model)
}

/// How the client is to send one file of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMode {
    pub path: String,
    /// Through the LFS transfer (every file with content), or inline in the commit.
    pub lfs: bool,
    /// The id of the file now at the path (its SHA-256, or for an empty file its git blob
    /// id), which the client compares with its own to skip an unchanged file.
    pub oid: Option<String>,
}

/// The files of the model's current version (none for a model without versions).
async fn current_files(
    state: &AppState,
    model: &model::Model,
) -> AppResult<(Option<model_version::Model>, Vec<version_file::Model>)> {
    if model.current_version_id.is_none() {
        return Ok((None, Vec::new()));
    }
    let version = hub::revision(state, model, "main").await?;
    let files = hub::files(&state.db, version.id).await?;
    Ok((Some(version), files))
}

/// Commits go to `main`, the model's current version.
fn ensure_main(revision: &str) -> AppResult<()> {
    if revision != "main" {
        return Err(AppError::bad_input(
            "revision",
            "commits go to `main`: each makes a new version",
        ));
    }
    Ok(())
}

/// Checks a commit before its body is read: it goes to `main`, and the caller has a unit of
/// the upload rate limit left (a commit stores a version, as an upload does).
pub async fn authorize(state: &AppState, target: &ModelEdit<'_>, revision: &str) -> AppResult<()> {
    ensure_main(revision)?;
    state
        .limiter
        .check_many(
            super::rate_limit::Action::Upload,
            &target.actor().to_string(),
            1,
        )
        .await
}

/// How each of `files` (path, size) is to be sent in a commit to `main` of the model.
pub async fn upload_modes(
    state: &AppState,
    target: &ModelEdit<'_>,
    revision: &str,
    files: &[(String, u64)],
) -> AppResult<Vec<UploadMode>> {
    ensure_main(revision)?;
    let (_, current) = current_files(state, target.model()).await?;
    let by_key: BTreeMap<String, &version_file::Model> =
        current.iter().map(|f| (f.path_key.clone(), f)).collect();
    files
        .iter()
        .map(|(path, size)| {
            let parsed = FilePath::parse("files.path", path)?;
            let now = by_key.get(&parsed.case_key());
            let lfs = *size > 0;
            let oid = now.and_then(|f| match (lfs, f.size_bytes) {
                (true, _) => Some(f.sha256.clone()),
                (false, 0) => Some(EMPTY_BLOB_OID.to_owned()),
                (false, _) => None,
            });
            Ok(UploadMode {
                path: path.clone(),
                lfs,
                oid,
            })
        })
        .collect()
}

/// What a commit puts at a path.
pub enum Content {
    /// Bytes sent inline, already staged.
    Inline(UploadedFile),
    /// An object sent through the LFS transfer, or one the hub holds where the caller may
    /// read, with the size the client gave.
    Lfs { sha256: String, size: Option<u64> },
}

/// One change of a commit.
pub enum Operation {
    Add(FilePath, Content),
    DeleteFile(String),
    DeleteFolder(String),
}

/// A commit as the client sends it.
pub struct Commit {
    pub summary: String,
    pub description: String,
    /// The commit the client based its changes on: refused if `main` has moved since.
    pub parent: Option<String>,
    pub operations: Vec<Operation>,
    /// Asks for the model's publication (the protocol's pull request).
    pub create_pr: bool,
}

/// A commit made: the new version, and whether publication was requested.
pub struct Committed {
    pub version: model_version::Model,
    pub publication_requested: bool,
}

/// The version a commit makes: the one its summary starts with (`v1.3.0: new tokenizer`),
/// else the one after the model's highest.
async fn version_label(state: &AppState, model_id: Uuid, summary: &str) -> AppResult<String> {
    let named = summary
        .split_whitespace()
        .next()
        .map(|word| word.trim_end_matches([':', ',', ';']))
        .and_then(|word| Version::parse("summary", word).ok());
    if let Some(version) = named {
        return Ok(version.label().to_owned());
    }
    let highest = model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id))
        .order_by_desc(model_version::Column::VersionKey)
        .one(&state.db)
        .await?;
    Ok(match highest {
        Some(v) => Version::parse("version", &v.version)?
            .next_patch()
            .label()
            .to_owned(),
        None => "1.0.0".to_owned(),
    })
}

/// Where each path of the new version comes from.
enum Source {
    Carried(String),
    Inline(UploadedFile),
    Lfs(String),
}

/// Refuses a commit naming an LFS object the hub does not hold for the caller and the model,
/// or with another size than the one held.
async fn ensure_objects_held(
    state: &AppState,
    viewer: &Viewer,
    model_id: Uuid,
    operations: &[Operation],
) -> AppResult<()> {
    let named: Vec<(&FilePath, lfs::Wanted, Option<u64>)> = operations
        .iter()
        .filter_map(|op| match op {
            Operation::Add(path, Content::Lfs { sha256, size }) => Some((
                path,
                lfs::Wanted {
                    oid: sha256.clone(),
                    size: size.unwrap_or(0),
                },
                *size,
            )),
            _ => None,
        })
        .collect();
    let wanted: Vec<lfs::Wanted> = named.iter().map(|(_, w, _)| w.clone()).collect();
    let held = lfs::held(state, viewer, model_id, &wanted).await?;
    for (path, wanted, claimed) in &named {
        match (held.get(&wanted.oid), claimed) {
            (None, _) => {
                return Err(AppError::bad_input(
                    "lfsFile",
                    format!(
                        "`{path}`: object {} was not uploaded; send it through LFS first",
                        wanted.oid
                    ),
                ));
            }
            (Some(size), Some(claimed)) if size != claimed => {
                return Err(AppError::bad_input(
                    "lfsFile",
                    format!(
                        "`{path}`: object {} has {size} bytes, not {claimed}",
                        wanted.oid
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes the commit a new version of the model (see the module's comment).
pub async fn commit(
    state: &AppState,
    viewer: &Viewer,
    target: ModelEdit<'_>,
    revision: &str,
    commit: Commit,
) -> AppResult<Committed> {
    ensure_main(revision)?;
    let model = target.model().clone();
    let (parent, current) = current_files(state, &model).await?;
    if let Some(expected) = &commit.parent
        && parent.as_ref().map(|p| &p.commit_id) != Some(expected)
    {
        return Err(AppError::Conflict(format!(
            "`main` has moved on since {expected}; fetch it and commit again"
        )));
    }
    ensure_objects_held(state, viewer, model.id, &commit.operations).await?;
    let mut files: BTreeMap<String, (FilePath, Source)> = BTreeMap::new();
    for file in current {
        let path = FilePath::parse("files", &file.path)?;
        files.insert(file.path_key, (path, Source::Carried(file.sha256)));
    }
    for operation in commit.operations {
        match operation {
            Operation::Add(path, content) => {
                let source = match content {
                    Content::Inline(upload) => Source::Inline(upload),
                    Content::Lfs { sha256, .. } => Source::Lfs(sha256),
                };
                files.insert(path.case_key(), (path, source));
            }
            Operation::DeleteFile(path) => {
                let key = FilePath::parse("deletedFile", &path)?.case_key();
                if files.remove(&key).is_none() {
                    return Err(AppError::NotFound("file"));
                }
            }
            Operation::DeleteFolder(folder) => {
                let folder = FilePath::parse("deletedFolder", folder.trim_matches('/'))?;
                let prefix = format!("{}/", folder.case_key());
                let before = files.len();
                files.retain(|key, _| !key.starts_with(&prefix));
                if files.len() == before {
                    return Err(AppError::NotFound("folder"));
                }
            }
        }
    }
    if files.is_empty() {
        return Err(AppError::bad_input(
            "operations",
            "a version needs at least one file; this commit would leave none",
        ));
    }
    let mut changelog = commit.summary.trim().to_owned();
    if !commit.description.trim().is_empty() {
        changelog = format!("{changelog}\n\n{}", commit.description.trim());
    }
    let label = version_label(state, model.id, &commit.summary).await?;
    let (mut inline, mut reuse, mut received) = (Vec::new(), Vec::new(), Vec::new());
    for (_, (path, source)) in files {
        match source {
            Source::Inline(upload) => inline.push((path, upload)),
            Source::Carried(sha256) => reuse.push(Reuse { path, sha256 }),
            Source::Lfs(sha256) => {
                received.push(sha256.clone());
                reuse.push(Reuse { path, sha256 });
            }
        }
    }
    let draft = drafts::create(
        state,
        &target,
        NewVersion {
            version: label,
            changelog: (!changelog.is_empty()).then_some(changelog),
            ..NewVersion::default()
        },
    )
    .await?;
    let made = async {
        drafts::add_files(state, viewer, draft.id, inline, reuse).await?;
        drafts::commit(state, viewer, draft.id).await
    }
    .await;
    let version = match made {
        Ok(version) => version,
        Err(e) => {
            if let Err(discard) = drafts::discard(state, viewer, draft.id).await
                && !matches!(discard, AppError::NotFound(_))
            {
                tracing::warn!(draft_id = %draft.id, error = %discard.message(), "could not discard a failed commit's draft");
            }
            return Err(e);
        }
    };
    lfs::forget(state, model.id, received).await?;
    if parent.is_none() {
        adopt_card(state, viewer, model.id, &version).await?;
    }
    let mut publication_requested = false;
    if commit.create_pr {
        let fresh = model::Entity::find_by_id(model.id).one(&state.db).await?;
        let target = access::edit(viewer, fresh)?;
        if matches!(
            target.model().approval_status,
            ApprovalStatus::Draft | ApprovalStatus::Rejected
        ) {
            approvals::request_publication(state, target).await?;
            publication_requested = true;
        }
    }
    tracing::info!(model_id = %model.id, version_id = %version.id, version = %version.version, "hub commit");
    Ok(Committed {
        version,
        publication_requested,
    })
}

/// Fills a model made by `create_repo` from the model card of its first version, as
/// `createModel` does: its framework (the card's `library_name`), and its license, task,
/// tags and lineage where it has none.
async fn adopt_card(
    state: &AppState,
    viewer: &Viewer,
    model_id: Uuid,
    version: &model_version::Model,
) -> AppResult<()> {
    let Some(card) = version.metadata.get("card") else {
        return Ok(());
    };
    let facts = Facts {
        card: Some(card.clone()),
        ..Facts::default()
    };
    let txn = super::begin_write(state).await?;
    let Some(model) = model::Entity::find_by_id(model_id).one(&txn).await? else {
        return Ok(());
    };
    let tags: Vec<String> = serde_json::from_value(model.tags.clone()).unwrap_or_default();
    let mut row = model.clone().into_active_model();
    if model.framework == UNKNOWN_FRAMEWORK
        && let Some(library) = facts.card_text("library_name")
        && let Ok(framework) = rules::keyword("framework", &library)
    {
        row.framework = Set(framework);
    }
    let adopted = versions::card_defaults(&mut row, tags.clone(), &facts);
    super::lineage::card_defaults(state, &txn, viewer, &mut row, &Lineage::default(), &facts)
        .await?;
    row.update(&txn).await?;
    if adopted != tags {
        models::write_tags(&txn, model_id, &adopted).await?;
    }
    super::commit_change(state, txn).await
}

/// How many versions the model has (the number of a commit's "pull request").
pub async fn version_count(state: &AppState, model_id: Uuid) -> AppResult<u64> {
    Ok(model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id))
        .count(&state.db)
        .await?)
}

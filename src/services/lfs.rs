//! The Git LFS transfer of the Hugging Face protocol's upload path: a batch question says, per
//! object, whether the hub already holds it where the caller may read it or where to send it —
//! in one `PUT`, or in parts of [`PART_BYTES`] and a completion call. Clients send the bytes
//! without credentials, so each address carries a signed link naming the model, object and
//! step, made for the caller and checked again (account, credential, right to change the
//! model) before a byte is read. An object received is hashed, inspected and kept for its
//! model as an `lfs_objects` row, which holds its blob until a commit puts it in a version or
//! it expires (`MODELHUB_DRAFT_TTL_HOURS`, then `gc` frees it).

use std::collections::HashMap;

use chrono::Utc;
use futures_util::StreamExt;
use modelhub_inspect::Report;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
    sea_query::OnConflict,
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    accounts, blobs, drafts, gate, version_upload,
};
use crate::{
    auth::{
        Credential, Viewer,
        jwt::{LfsClaims, LfsStep},
    },
    config::UnsafeUploads,
    domain::format,
    entities::{enums::InspectionStatus, lfs_object, model},
    error::{AppError, AppResult},
    state::AppState,
    storage::{Part, StagedBlob, Upload},
};

/// The size of the parts an object larger than this is sent in (larger for objects that
/// would take more than [`MAX_PARTS`] parts).
pub const PART_BYTES: u64 = 64 * 1024 * 1024;
/// Most parts an object is sent in.
const MAX_PARTS: u64 = 100;
/// Most objects one batch question may name (the client asks about 256 at a time).
pub const MAX_OBJECTS: usize = 256;

/// The size of the parts an object of `size` bytes is sent in.
fn part_bytes(size: u64) -> u64 {
    PART_BYTES.max(size.div_ceil(MAX_PARTS))
}

/// An object the client wants to send.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub oid: String,
    pub size: u64,
}

/// What to do with one object of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The hub holds it where the caller may read it: nothing to send.
    Held,
    /// Send it in one `PUT` to this address.
    Whole(String),
    /// Send part `n` (of `chunk_size` bytes, the last one shorter) to `parts[n - 1]`, then
    /// post the parts' `ETag`s to `complete`.
    Parts {
        chunk_size: u64,
        parts: Vec<String>,
        complete: String,
    },
    /// The object cannot be taken: an LFS error code and why.
    Refused(u16, String),
}

/// Whether `oid` is a SHA-256 in lower-case hex.
pub fn is_oid(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The objects of model `model_id` received and not expired, among `hashes`.
async fn objects_of<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
    hashes: impl IntoIterator<Item = String>,
) -> AppResult<Vec<lfs_object::Model>> {
    Ok(lfs_object::Entity::find()
        .filter(lfs_object::Column::ModelId.eq(model_id))
        .filter(lfs_object::Column::Sha256.is_in(hashes))
        .filter(lfs_object::Column::ExpiresAt.gt(Utc::now()))
        .all(db)
        .await?)
}

/// The model's received objects with these hashes, by hash (for a commit).
pub(super) async fn received(
    state: &AppState,
    model_id: Uuid,
    hashes: &[String],
) -> AppResult<HashMap<String, lfs_object::Model>> {
    Ok(objects_of(&state.db, model_id, hashes.iter().cloned())
        .await?
        .into_iter()
        .map(|o| (o.sha256.clone(), o))
        .collect())
}

/// The sizes of the wanted objects the hub holds where a commit by `viewer` to the model can
/// take them from: files the viewer may read, and objects received for the model.
pub(super) async fn held(
    state: &AppState,
    viewer: &Viewer,
    model_id: Uuid,
    wanted: &[Wanted],
) -> AppResult<HashMap<String, u64>> {
    let hashes: Vec<String> = wanted
        .iter()
        .filter(|w| is_oid(&w.oid))
        .map(|w| w.oid.clone())
        .collect();
    let mut held: HashMap<String, u64> = drafts::readable(state, viewer, &hashes)
        .await?
        .into_iter()
        .filter_map(|f| Some((f.sha256, u64::try_from(f.size_bytes).ok()?)))
        .collect();
    for object in objects_of(&state.db, model_id, hashes).await? {
        if let Ok(size) = u64::try_from(object.size_bytes) {
            held.insert(object.sha256, size);
        }
    }
    Ok(held)
}

/// Answers a batch question about objects to send to the model `target` names, whose
/// repository address is `repo_url` (`{public}/{owner}/{name}`).
pub async fn batch(
    state: &AppState,
    viewer: &Viewer,
    target: &ModelEdit<'_>,
    repo_url: &str,
    wanted: &[Wanted],
) -> AppResult<Vec<Answer>> {
    if wanted.len() > MAX_OBJECTS {
        return Err(AppError::bad_input(
            "objects",
            format!("at most {MAX_OBJECTS} objects at once"),
        ));
    }
    let model = target.model();
    let held = held(state, viewer, model.id, wanted).await?;
    let auth = viewer.require(crate::auth::Scope::Write)?;
    let (tid, sep) = match auth.credential {
        Credential::ApiToken(id) => (Some(id), None),
        Credential::Session(epoch) => (None, Some(epoch)),
    };
    let ttl = chrono::Duration::from_std(state.config.draft_ttl).map_err(AppError::internal)?;
    let exp = (Utc::now() + ttl).timestamp();
    let link = |w: &Wanted, step: LfsStep| -> AppResult<String> {
        let token = state.jwt.issue_lfs(LfsClaims {
            sub: model.id,
            uid: auth.user.id,
            tid,
            sep,
            oid: w.oid.clone(),
            size: w.size,
            step,
            iss: String::new(),
            aud: String::new(),
            exp,
        })?;
        let part = match step {
            LfsStep::Part(n) => format!("/{n}"),
            LfsStep::Whole | LfsStep::Complete => String::new(),
        };
        Ok(format!(
            "{repo_url}.git/info/lfs/objects/{}{part}?token={token}",
            w.oid
        ))
    };
    let most = state.config.max_upload_bytes;
    wanted
        .iter()
        .map(|w| {
            if !is_oid(&w.oid) {
                return Ok(Answer::Refused(
                    422,
                    format!("`{}` is not a SHA-256 in lower-case hex", w.oid),
                ));
            }
            if w.size > most {
                return Ok(Answer::Refused(
                    422,
                    format!("the object is larger than this server's limit of {most} bytes"),
                ));
            }
            match held.get(&w.oid) {
                Some(size) if *size == w.size => return Ok(Answer::Held),
                Some(size) => {
                    return Ok(Answer::Refused(
                        422,
                        format!("an object with this oid has {size} bytes, not {}", w.size),
                    ));
                }
                None => {}
            }
            if w.size <= PART_BYTES {
                return Ok(Answer::Whole(link(w, LfsStep::Whole)?));
            }
            let chunk_size = part_bytes(w.size);
            let parts = (1..=w.size.div_ceil(chunk_size))
                .map(|n| {
                    link(
                        w,
                        LfsStep::Part(u32::try_from(n).map_err(AppError::internal)?),
                    )
                })
                .collect::<AppResult<Vec<_>>>()?;
            Ok(Answer::Parts {
                chunk_size,
                parts,
                complete: link(w, LfsStep::Complete)?,
            })
        })
        .collect()
}

/// A checked upload link: its holder may change the model, and sends this object.
#[derive(Debug)]
pub struct Sending {
    pub model_id: Uuid,
    pub uploader: Uuid,
    pub oid: String,
    pub size: u64,
    pub step: LfsStep,
}

impl Sending {
    /// Where this object's parts are kept.
    pub fn parts_key(&self) -> String {
        format!("{}/{}", self.model_id, self.oid)
    }

    /// The most bytes this step may send.
    pub fn limit(&self) -> u64 {
        match self.step {
            LfsStep::Whole => self.size,
            LfsStep::Part(_) => part_bytes(self.size),
            LfsStep::Complete => 0,
        }
    }
}

/// Checks an upload link for object `oid` and `step` before any byte is read: the link is
/// genuine and unexpired, its holder's account and credential still good, and the holder may
/// still change the model.
pub async fn authorize(
    state: &AppState,
    token: &str,
    oid: &str,
    step: LfsStep,
) -> AppResult<Sending> {
    let claims = state.jwt.verify_lfs(token)?;
    if claims.oid != oid || claims.step != step {
        return Err(AppError::Forbidden(
            "this link is for another object or step".into(),
        ));
    }
    let viewer = accounts::link_holder(state, claims.uid, claims.tid, claims.sep).await?;
    let model = model::Entity::find_by_id(claims.sub).one(&state.db).await?;
    let target = access::edit(&viewer, model)?;
    Ok(Sending {
        model_id: target.model().id,
        uploader: target.actor(),
        oid: claims.oid,
        size: claims.size,
        step,
    })
}

/// Keeps a received part of the object.
pub async fn keep_part(
    state: &AppState,
    sending: &Sending,
    received: StagedBlob,
) -> AppResult<Part> {
    let LfsStep::Part(number) = sending.step else {
        return Err(AppError::internal("keep_part takes a part's link"));
    };
    let chunk = part_bytes(sending.size);
    let expected = sending
        .size
        .saturating_sub(u64::from(number.saturating_sub(1)) * chunk)
        .min(chunk);
    if received.size != expected {
        state.blobs.discard(&received).await;
        return Err(AppError::bad_input(
            "part",
            format!(
                "part {number} has {} bytes; it should have {expected}",
                received.size
            ),
        ));
    }
    state
        .blobs
        .keep_part(&sending.parts_key(), number, &received)
        .await
        .map_err(AppError::internal)
}

/// Completes an object sent in parts: `claimed` are the parts' numbers and `ETag`s, which
/// must be every part, each as received; the parts are read back in order into one upload,
/// which is then kept like an object sent whole.
pub async fn complete(
    state: &AppState,
    sending: &Sending,
    claimed: &[(u32, String)],
) -> AppResult<lfs_object::Model> {
    let count = sending.size.div_ceil(part_bytes(sending.size));
    let numbers: Vec<u64> = claimed.iter().map(|(n, _)| u64::from(*n)).collect();
    if numbers != (1..=count).collect::<Vec<_>>() {
        return Err(AppError::bad_input(
            "parts",
            format!("name parts 1 to {count}, in order, once each"),
        ));
    }
    let key = sending.parts_key();
    let kept = state.blobs.parts(&key).await.map_err(AppError::internal)?;
    let mut parts: Vec<Part> = Vec::with_capacity(claimed.len());
    for (number, etag) in claimed {
        let etag = etag.trim_start_matches("W/").trim_matches('"');
        let Some(part) = kept
            .iter()
            .find(|p| p.number == *number && p.sha256 == etag)
        else {
            return Err(AppError::bad_input(
                "parts",
                format!("part {number} with ETag {etag} was not received; send it again"),
            ));
        };
        parts.push(part.clone());
    }
    let mut upload = state
        .blobs
        .begin_upload()
        .await
        .map_err(AppError::internal)?;
    if let Err(e) = join(state, &key, parts, &mut upload).await {
        upload.abort().await;
        return Err(e);
    }
    let staged = upload.finish().await.map_err(AppError::internal)?;
    let object = keep(state, sending, staged).await?;
    state.blobs.remove_parts(&key).await;
    Ok(object)
}

/// Writes the parts, in order, into `upload`.
async fn join(state: &AppState, key: &str, parts: Vec<Part>, upload: &mut Upload) -> AppResult<()> {
    for part in parts {
        let mut bytes = state
            .blobs
            .read_part(key, &part)
            .await
            .map_err(AppError::internal)?;
        while let Some(chunk) = bytes.next().await {
            upload
                .write(chunk.map_err(AppError::internal)?)
                .await
                .map_err(AppError::internal)?;
        }
    }
    Ok(())
}

/// Keeps an object received whole (or joined from its parts) for the model: its bytes must
/// be the object the link names. It is inspected as its content shows (its path is known at
/// the commit, which inspects it again where the path changes how it is read).
pub async fn keep(
    state: &AppState,
    sending: &Sending,
    staged: StagedBlob,
) -> AppResult<lfs_object::Model> {
    let outcome = keep_staged(state, sending, &staged).await;
    state.blobs.discard(&staged).await;
    if outcome.is_err() {
        blobs::release(state, &staged.sha256).await;
    }
    outcome
}

async fn keep_staged(
    state: &AppState,
    sending: &Sending,
    staged: &StagedBlob,
) -> AppResult<lfs_object::Model> {
    if staged.size != sending.size || staged.sha256 != sending.oid {
        return Err(AppError::bad_input(
            "object",
            format!(
                "the bytes sent ({} bytes, SHA-256 {}) are not the object named ({} bytes, {})",
                staged.size, staged.sha256, sending.size, sending.oid
            ),
        ));
    }
    let format = format::detect(&staged.head, staged.size, None);
    let report: Report =
        version_upload::inspect_staged(state, staged, version_upload::declared(format, "")).await?;
    if let Some(why) = gate::hold_reason(&report)
        && state.config.unsafe_uploads == UnsafeUploads::Reject
    {
        return Err(AppError::bad_input(
            "object",
            format!("the inspection holds this file: {why}; this server refuses such uploads"),
        ));
    }
    state
        .blobs
        .prepare(staged)
        .await
        .map_err(AppError::internal)?;
    let txn = blobs::begin_with(state, [staged]).await?;
    let now = super::now();
    let expires =
        now + chrono::Duration::from_std(state.config.draft_ttl).map_err(AppError::internal)?;
    let row = lfs_object::ActiveModel {
        id: Set(Uuid::now_v7()),
        model_id: Set(sending.model_id),
        sha256: Set(staged.sha256.clone()),
        size_bytes: Set(i64::try_from(staged.size).map_err(AppError::internal)?),
        format: Set(format),
        inspection_status: Set(InspectionStatus::from(report.status())),
        inspection: Set(Some(report.to_json())),
        inspection_rules: Set(Some(state.inspector.fingerprint().to_owned())),
        uploaded_by: Set(sending.uploader),
        created_at: Set(now),
        expires_at: Set(expires),
    };
    lfs_object::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([lfs_object::Column::ModelId, lfs_object::Column::Sha256])
                .update_columns([
                    lfs_object::Column::Format,
                    lfs_object::Column::InspectionStatus,
                    lfs_object::Column::Inspection,
                    lfs_object::Column::InspectionRules,
                    lfs_object::Column::UploadedBy,
                    lfs_object::Column::ExpiresAt,
                ])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
    let object = lfs_object::Entity::find()
        .filter(lfs_object::Column::ModelId.eq(sending.model_id))
        .filter(lfs_object::Column::Sha256.eq(&staged.sha256))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal("an object just kept is missing"))?;
    txn.commit().await?;
    tracing::info!(model_id = %sending.model_id, sha256 = %object.sha256, size = object.size_bytes, "lfs object received");
    Ok(object)
}

/// Whether the object is where a commit by `viewer` to the model can take it from.
pub async fn verify(
    state: &AppState,
    viewer: &Viewer,
    target: &ModelEdit<'_>,
    wanted: &Wanted,
) -> AppResult<()> {
    let held = held(
        state,
        viewer,
        target.model().id,
        std::slice::from_ref(wanted),
    )
    .await?;
    match held.get(&wanted.oid) {
        Some(size) if *size == wanted.size => Ok(()),
        _ => Err(AppError::NotFound("object")),
    }
}

/// Drops the model's received objects that a committed version now holds.
pub(super) async fn forget(state: &AppState, model_id: Uuid, hashes: Vec<String>) -> AppResult<()> {
    if hashes.is_empty() {
        return Ok(());
    }
    lfs_object::Entity::delete_many()
        .filter(lfs_object::Column::ModelId.eq(model_id))
        .filter(lfs_object::Column::Sha256.is_in(hashes))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The distinct hashes of a model's received objects (to release once the model is gone).
pub(super) async fn hashes_of_model<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
) -> AppResult<Vec<String>> {
    Ok(lfs_object::Entity::find()
        .select_only()
        .column(lfs_object::Column::Sha256)
        .distinct()
        .filter(lfs_object::Column::ModelId.eq(model_id))
        .into_tuple()
        .all(db)
        .await?)
}

/// Removes the objects past their expiry and frees the blobs nothing else uses (run by
/// `gc`); returns how many went.
pub async fn expire(state: &AppState) -> AppResult<u64> {
    let txn = state.db.begin().await?;
    let expired: Vec<(Uuid, String)> = lfs_object::Entity::find()
        .select_only()
        .column(lfs_object::Column::Id)
        .column(lfs_object::Column::Sha256)
        .filter(lfs_object::Column::ExpiresAt.lte(Utc::now()))
        .into_tuple()
        .all(&txn)
        .await?;
    let removed = lfs_object::Entity::delete_many()
        .filter(lfs_object::Column::Id.is_in(expired.iter().map(|(id, _)| *id)))
        .filter(lfs_object::Column::ExpiresAt.lte(Utc::now()))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    for (_, sha256) in expired {
        blobs::release(state, &sha256).await;
    }
    Ok(removed)
}

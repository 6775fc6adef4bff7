//! Resumable uploads (the tus 1.0 protocol, at `/uploads/`): for a large file over a flaky
//! link. The upload announces its length; each `PATCH` streams bytes from the offset reached
//! into a segment object of its own (in the blob store, outside any one process's staging
//! area), and the row records the segments and the file's SHA-256 so far (its internal state),
//! so a cut connection, a restart or another replica continues where the bytes stopped, and
//! every byte is hashed once, as it arrives. A segment is hashed on its own as well only to
//! answer an `Upload-Checksum`. When the last byte arrives, the file's SHA-256 is known and the
//! segments are joined into one object (a single segment already is one; on S3, S3 copies
//! them). A finished upload waits, owned by its uploader, for a version or draft to take it by
//! `uploadId`, or until it expires (`MODELHUB_DRAFT_TTL_HOURS` after its last byte; `gc`
//! removes it).

use futures_util::{Stream, StreamExt};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{access, rate_limit::Action};
use crate::{
    auth::Viewer,
    entities::resumable_upload,
    error::{AppError, AppResult},
    graphql::UploadedFile,
    state::AppState,
    storage::{BlobStore, HEAD_BYTES, PartialSha256, StagedBlob},
};

/// What the resumable uploads are called in errors.
const WHAT: &str = "upload";

/// Where some of an upload's bytes are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Segment {
    key: String,
    size: u64,
}

impl Segment {
    fn path(&self) -> object_store::path::Path {
        self.key.as_str().into()
    }
}

fn segments_of(row: &resumable_upload::Model) -> AppResult<Vec<Segment>> {
    serde_json::from_value(row.segments.clone()).map_err(AppError::internal)
}

fn segments_value(segments: &[Segment]) -> AppResult<serde_json::Value> {
    serde_json::to_value(segments).map_err(AppError::internal)
}

/// The stored form of the file's hash after `offset` bytes: `{offset}:{state}`.
fn hash_state_text(offset: u64, hash: &PartialSha256) -> String {
    format!("{offset}:{}", hash.to_text())
}

/// The SHA-256 of the bytes received so far, to be continued: as the row keeps it, or, for an
/// upload whose state is missing, unreadable (another version of the hash) or of fewer bytes
/// than the upload has (bytes appended by a replica that kept no state, during an upgrade),
/// hashed again from its segments.
async fn received_hash(
    state: &AppState,
    row: &resumable_upload::Model,
) -> AppResult<PartialSha256> {
    let kept = row.hash_state.as_deref().and_then(|text| {
        let (offset, hash) = text.split_once(':')?;
        (offset.parse::<i64>().ok()? == row.offset).then_some(())?;
        PartialSha256::from_text(hash)
    });
    if let Some(hash) = kept {
        return Ok(hash);
    }
    let mut hash = PartialSha256::default();
    for segment in segments_of(row)? {
        let mut bytes = state
            .blobs
            .read_object(&segment.path(), None)
            .await
            .map_err(AppError::internal)?;
        while let Some(chunk) = bytes.next().await {
            hash.update(&chunk.map_err(AppError::internal)?);
        }
    }
    Ok(hash)
}

fn expiry(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    super::now()
        + chrono::Duration::from_std(state.config.draft_ttl).unwrap_or(chrono::Duration::MAX)
}

/// What a `PATCH` came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// The bytes were kept: the upload is now at `offset`, and expires at `expires_at`.
    At {
        offset: u64,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The bytes did not have the SHA-256 the request named: dropped; the upload stays at
    /// `offset`.
    ChecksumMismatch { offset: u64 },
}

/// Starts an upload of `length` bytes for the caller (who may upload: a unit of the upload rate
/// limit is taken now).
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    length: u64,
    filename: Option<String>,
) -> AppResult<resumable_upload::Model> {
    let owner = access::ensure_may_upload(viewer)?;
    if length > state.config.max_upload_bytes {
        return Err(AppError::PayloadTooLarge {
            limit: state.config.max_upload_bytes,
        });
    }
    state
        .limiter
        .check(Action::Upload, &owner.to_string())
        .await?;
    let now = super::now();
    let row = resumable_upload::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner),
        length: Set(i64::try_from(length).map_err(AppError::internal)?),
        offset: Set(0),
        segments: Set(serde_json::json!([])),
        hash_state: Set(None),
        filename: Set(filename.filter(|f| !f.is_empty())),
        sha256: Set(None),
        created_at: Set(now),
        expires_at: Set(expiry(state)),
    }
    .insert(&state.db)
    .await?;
    if length == 0 {
        // Nothing to send: the empty file is complete at once.
        let whole = BlobStore::resumable_path(row.id, "whole");
        let upload = state
            .blobs
            .begin_segment(whole.clone(), PartialSha256::default(), false)
            .await
            .map_err(AppError::internal)?;
        let staged = upload.finish_segment().await.map_err(AppError::internal)?;
        let mut active: resumable_upload::ActiveModel = row.into();
        active.segments = Set(segments_value(&[Segment {
            key: whole.to_string(),
            size: 0,
        }])?);
        active.sha256 = Set(Some(staged.file.finish()));
        return Ok(active.update(&state.db).await?);
    }
    Ok(row)
}

/// The caller's upload `id`, unexpired (`NOT_FOUND` for anyone else's).
pub async fn find(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<resumable_upload::Model> {
    let owner = access::ensure_may_upload(viewer)?;
    resumable_upload::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|row| access::holds_upload(owner, row.owner_id))
        .filter(|row| row.expires_at > chrono::Utc::now())
        .ok_or(AppError::NotFound(WHAT))
}

/// Appends `body` at `offset` (which must be where the upload is). Bytes that arrive before the
/// connection is cut are kept, unless the request named a `checksum` they cannot be checked
/// against. The last byte completes the upload.
pub async fn append<E>(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    offset: u64,
    checksum: Option<String>,
    mut body: impl Stream<Item = Result<bytes::Bytes, E>> + Unpin,
) -> AppResult<Appended> {
    let row = find(state, viewer, id).await?;
    let at = u64::try_from(row.offset).map_err(AppError::internal)?;
    let length = u64::try_from(row.length).map_err(AppError::internal)?;
    if offset != at || row.sha256.is_some() {
        return Err(AppError::Conflict(format!(
            "the upload is at byte {at} of {length}, not {offset}"
        )));
    }
    let key = BlobStore::resumable_path(id, &format!("{offset:020}-{}", Uuid::new_v4().simple()));
    let mut upload = state
        .blobs
        .begin_segment(key, received_hash(state, &row).await?, checksum.is_some())
        .await
        .map_err(AppError::internal)?;
    let room = length - offset;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            cut = true;
            break;
        };
        if upload.size() + chunk.len() as u64 > room {
            upload.abort().await;
            return Err(AppError::bad_input(
                "body",
                format!("more bytes than the {room} left of the upload's length"),
            ));
        }
        if let Err(e) = upload.write(chunk).await {
            upload.abort().await;
            return Err(AppError::internal(e));
        }
    }
    let staged = upload.finish_segment().await.map_err(AppError::internal)?;
    if staged.size == 0 || (cut && checksum.is_some()) {
        state.blobs.delete_object(&staged.path).await;
        return Ok(Appended::At {
            offset,
            expires_at: row.expires_at,
        });
    }
    if checksum.is_some_and(|sum| staged.sha256.as_ref() != Some(&sum)) {
        state.blobs.delete_object(&staged.path).await;
        return Ok(Appended::ChecksumMismatch { offset });
    }
    let mut segments = segments_of(&row)?;
    segments.push(Segment {
        key: staged.path.to_string(),
        size: staged.size,
    });
    let reached = offset + staged.size;
    // The last byte completes the file's hash; until then its state is kept.
    let (hash_state, sha256) = if reached == length {
        (None, Some(staged.file.finish()))
    } else {
        (Some(hash_state_text(reached, &staged.file)), None)
    };
    let segments = segments_value(&segments)?;
    let expires_at = expiry(state);
    // Kept only if no other request moved the upload on meanwhile.
    let moved = resumable_upload::Entity::update_many()
        .col_expr(
            resumable_upload::Column::Offset,
            Expr::value(reached as i64),
        )
        .col_expr(
            resumable_upload::Column::Segments,
            Expr::value(segments.clone()),
        )
        .col_expr(
            resumable_upload::Column::HashState,
            Expr::value(hash_state.clone()),
        )
        .col_expr(
            resumable_upload::Column::Sha256,
            Expr::value(sha256.clone()),
        )
        .col_expr(resumable_upload::Column::ExpiresAt, Expr::value(expires_at))
        .filter(resumable_upload::Column::Id.eq(id))
        .filter(resumable_upload::Column::Offset.eq(row.offset))
        .exec(&state.db)
        .await?;
    if moved.rows_affected == 0 {
        state.blobs.delete_object(&staged.path).await;
        return Err(AppError::Conflict(
            "another request appended to the upload meanwhile".into(),
        ));
    }
    if reached == length {
        let row = resumable_upload::Model {
            offset: reached as i64,
            segments,
            hash_state,
            sha256,
            ..row
        };
        complete(state, &row).await?;
    }
    Ok(Appended::At {
        offset: reached,
        expires_at,
    })
}

/// Makes a fully received upload one object with a known SHA-256: joins its segments (S3
/// copies them itself where it can) and records the result.
async fn complete(
    state: &AppState,
    row: &resumable_upload::Model,
) -> AppResult<resumable_upload::Model> {
    let segments = segments_of(row)?;
    let sha256 = match &row.sha256 {
        Some(_) if segments.len() == 1 => return Ok(row.clone()),
        Some(sha256) => sha256.clone(),
        // Its last byte arrived before the file's hash was kept.
        None => received_hash(state, row).await?.finish(),
    };
    let whole = match segments.as_slice() {
        [only] => only.clone(),
        _ => {
            let key = BlobStore::resumable_path(row.id, "whole");
            let parts: Vec<_> = segments.iter().map(|s| (s.path(), s.size)).collect();
            state
                .blobs
                .join(&parts, &key)
                .await
                .map_err(AppError::internal)?;
            Segment {
                key: key.to_string(),
                size: u64::try_from(row.length).map_err(AppError::internal)?,
            }
        }
    };
    let mut active: resumable_upload::ActiveModel = row.clone().into();
    active.segments = Set(segments_value(std::slice::from_ref(&whole))?);
    active.hash_state = Set(None);
    active.sha256 = Set(Some(sha256));
    let row = active.update(&state.db).await?;
    for segment in segments.iter().filter(|s| s.key != whole.key) {
        state.blobs.delete_object(&segment.path()).await;
    }
    Ok(row)
}

/// The caller's finished upload `id` as a file for a version or draft (`field` names it in
/// errors): still where it was received, to be moved to its content address with the rest.
pub async fn take(
    state: &AppState,
    viewer: &Viewer,
    field: &str,
    id: Uuid,
) -> AppResult<UploadedFile> {
    let mut row = find(state, viewer, id)
        .await
        .map_err(|_| AppError::bad_input(field, format!("no finished upload {id} of yours")))?;
    if row.offset < row.length {
        return Err(AppError::bad_input(
            field,
            format!("upload {id} has {} of its {} bytes", row.offset, row.length),
        ));
    }
    // Its last byte arrived but the join did not finish (or did not start): finish it now.
    row = complete(state, &row).await?;
    let [segment] = segments_of(&row)?
        .try_into()
        .map_err(|_| AppError::internal(format!("finished upload {id} is not one object")))?;
    let mut blob = StagedBlob {
        staging_path: segment.path(),
        sha256: row.sha256.clone().unwrap_or_default(),
        size: segment.size,
        head: Vec::new(),
    };
    let head_end = std::cmp::min(blob.size, HEAD_BYTES as u64);
    if head_end > 0 {
        let mut bytes = state
            .blobs
            .read_object(&blob.staging_path, Some(0..head_end))
            .await
            .map_err(AppError::internal)?;
        while let Some(chunk) = bytes.next().await {
            blob.head
                .extend_from_slice(&chunk.map_err(AppError::internal)?);
        }
    }
    Ok(UploadedFile {
        filename: row.filename,
        content_type: None,
        blob,
    })
}

/// Forgets uploads a version or draft has taken (their bytes moved to their content address,
/// or were already there: what is left goes).
pub async fn consumed(state: &AppState, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    resumable_upload::Entity::delete_many()
        .filter(resumable_upload::Column::Id.is_in(ids.iter().copied()))
        .exec(&state.db)
        .await?;
    for id in ids {
        state.blobs.delete_resumable(*id).await;
    }
    Ok(())
}

/// Ends the caller's upload `id` and removes its bytes (tus termination).
pub async fn terminate(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<()> {
    let row = find(state, viewer, id).await?;
    consumed(state, &[row.id]).await
}

/// Removes the uploads past their expiry, with their bytes; how many.
pub async fn expire(state: &AppState) -> AppResult<u64> {
    let expired: Vec<Uuid> = resumable_upload::Entity::find()
        .filter(resumable_upload::Column::ExpiresAt.lte(chrono::Utc::now()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    consumed(state, &expired).await?;
    Ok(expired.len() as u64)
}
